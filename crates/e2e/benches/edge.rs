//! Edge gateway benchmarks: the same real runner (pool agent's embedded runner, `/bin/sh` on a PTY)
//! reached through three paths, measured in one run so the figures are ratios, not absolutes:
//!
//! - **direct**: the runner joined to the native room host (`edgeshell-room-host`, Rust, loopback) —
//!   the baseline without the edge;
//! - **edge**: the runner and the browser through `wrangler dev` (workerd), the Worker and the
//!   `SessionRoom` Durable Object with hibernatable sockets (`ROOM_HIBERNATION=on`);
//! - **edge, no hibernation**: the same with sockets kept by the object (`ROOM_HIBERNATION=off`).
//!
//! Figures: echo round trip (a typed byte until the PTY's echo arrives), output throughput (median of
//! three), attach
//! latency (WebSocket open until the first output byte, with a token and with a resume ticket, whose
//! difference includes the edge's token check), the token check alone (a refusal after a full check
//! minus a refusal before it, and inside the isolate with `/internal/verify-cost`), session start (a new session until its first prompt byte at an
//! attached browser: through the edge a real mint with placement and the pool starting the runner;
//! directly the runner started by hand; the slowest starts broken into phases), the memory per connected
//! idle agent in a pool room, and the Worker's `.wasm` size.
//!
//! `cargo xtask bench` runs the full version; under `cargo test` it runs once with tiny counts against
//! the edge only, as a smoke test.

// A benchmark prints its report.
#![allow(clippy::print_stdout)]

use edgeshell_core::ids::{RegionId, SessionId, Subject};
use edgeshell_core::issue::Issuer;
use edgeshell_core::jwks::KeySet;
use edgeshell_core::protocol::{CloseCode, Credential};
use edgeshell_core::room::RoomConfig;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::sign;
use edgeshell_e2e::{vector_jwk, Stack, StackOptions};
use edgeshell_keys::RsaSigner;
use edgeshell_room_host::browser::{AttachError, Browser};
use edgeshell_room_host::{Options, RoomHost};
use std::time::{Duration, Instant};

#[path = "edge/attach.rs"]
mod attach;

use attach::{attach_latencies, tui_fresh_attach, TuiAttach};

const WAIT: Duration = Duration::from_secs(60);

struct Sizes {
    echoes: usize,
    bytes: u64,
    attaches: usize,
    starts: usize,
    refusals: usize,
    idle_agents: usize,
}

/// A way to get a fresh session with a runner, and fresh attach tokens for it.
enum Path {
    Direct(Box<Direct>),
    Edge(Box<Stack>),
}

/// The native room with runners started by hand.
struct Direct {
    room: RoomHost,
    signer: RsaSigner,
    runners: Vec<tokio::process::Child>,
}

struct Session {
    attach_url: String,
    id: SessionId,
}

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    )
}

fn entropy() -> [u8; 16] {
    let mut e = [0u8; 16];
    e.copy_from_slice(
        &std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos().to_le_bytes(),
    );
    e
}

const TOKEN_ISSUER: &str = "edgeshell-bench-direct";

impl Path {
    async fn direct() -> Path {
        let signer = RsaSigner::from_secret(&vector_jwk("pyjwt-rs256.json").unwrap()).unwrap();
        let keys = KeySet::from_keys(vec![signer.verifying_key().clone()]).unwrap();
        let room = RoomHost::start(Options { issuer: TOKEN_ISSUER.into(), keys, config: RoomConfig::default() })
            .await
            .unwrap();
        Path::Direct(Box::new(Direct { room, signer, runners: Vec::new() }))
    }

    async fn edge(hibernation: bool) -> Path {
        let options = StackOptions {
            edge_vars: vec![("ROOM_HIBERNATION", if hibernation { "on" } else { "off" }.into())],
            ..StackOptions::default()
        };
        Path::Edge(Box::new(Stack::start(options).await.unwrap()))
    }

    async fn session(&mut self) -> (Session, String) {
        match self {
            Path::Direct(direct) => {
                let Direct { room, signer, runners } = direct.as_mut();
                let id = edgeshell_core::issue::session_id(entropy());
                let region = RegionId::new("eu").unwrap();
                let join = sign(
                    &Issuer::new(TOKEN_ISSUER).join(
                        (&id, &region),
                        edgeshell_core::lifetime::Terms::lasting(now(), 3600),
                        entropy(),
                        now(),
                    ),
                    signer,
                )
                .unwrap();
                let bin = edgeshell_stack::paths::workspace_bin("edgeshell-pool-agent").unwrap();
                let token_file = std::env::temp_dir().join(format!("edgeshell-bench-join-{}", id.as_str()));
                std::fs::write(&token_file, join).unwrap();
                let runner = tokio::process::Command::new(bin)
                    .arg("runner")
                    .env("EDGESHELL_JOIN_URL", room.join_url(&id))
                    .env("EDGESHELL_JOIN_TOKEN_FILE", &token_file)
                    .env("EDGESHELL_SESSION_COMMAND", "/bin/sh")
                    .env("EDGESHELL_LOG", "warn")
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                runners.push(runner);
                let session = Session { attach_url: room.attach_url(&id), id };
                let token = self.token(&session).await;
                (session, token)
            }
            Path::Edge(stack) => {
                let s = stack.mint("bench").await.unwrap();
                (Session { attach_url: s.ws_url, id: s.id }, s.token.into_exposed())
            }
        }
    }

    async fn token(&self, session: &Session) -> String {
        match self {
            Path::Direct(direct) => {
                let signer = &direct.signer;
                let user = Subject::new("bench").unwrap();
                let claims = Issuer::new(TOKEN_ISSUER).attach(
                    &user,
                    (&session.id, &RegionId::new("eu").unwrap()),
                    edgeshell_core::lifetime::Terms::lasting(now(), 3600),
                    entropy(),
                    now(),
                );
                sign(&claims, signer).unwrap()
            }
            Path::Edge(stack) => stack.attach_token("bench", &session.id).await.unwrap(),
        }
    }
}

impl Path {
    /// Ends a session made by [`Path::session`]: its runner stops.
    async fn end(&mut self, session: &Session) {
        match self {
            Path::Direct(direct) => {
                if let Some(mut runner) = direct.runners.pop() {
                    let _ = runner.kill().await;
                }
            }
            Path::Edge(stack) => {
                let path = format!("/api/sessions/{}", session.id);
                let (status, body) =
                    stack.call(reqwest::Method::DELETE, &path, "bench", serde_json::Value::Null).await.unwrap();
                assert_eq!(status, 200, "ending {}: {body}", session.id);
            }
        }
    }
}

/// A new session until its first output byte (the shell's prompt) reaches an attached browser, `n`
/// times: (the whole, of which getting the session and its token). Through the edge the session comes
/// from the control plane's mint (placement, three signatures, the pool starting the runner); directly,
/// the runner is started by hand and the token signed natively.
/// Session starts: the whole (new session -> first prompt byte) sorted, the session-and-token part
/// sorted, and each start's phases in order (session, attach open, first byte) for the slow ones.
async fn session_starts(path: &mut Path, n: usize) -> (Vec<Duration>, Vec<Duration>, Vec<[Duration; 3]>) {
    let (mut whole, mut mint, mut phases) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let started = Instant::now();
        let (session, token) = path.session().await;
        let minted = started.elapsed();
        mint.push(minted);
        let mut browser = attach(&session.attach_url, Credential::Token(token)).await;
        let opened = started.elapsed();
        browser.step_until(WAIT, |b| !b.output.is_empty()).await;
        let first = started.elapsed();
        whole.push(first);
        phases.push([minted, opened - minted, first - opened]);
        drop(browser);
        path.end(&session).await;
    }
    whole.sort();
    mint.sort();
    (whole, mint, phases)
}

async fn attach(url: &str, credential: Credential) -> Browser {
    Browser::attach(url, &credential).await.unwrap_or_else(|e| panic!("attach to {url}: {e:?}"))
}

/// A browser on a fresh session whose shell is ready.
async fn ready(path: &mut Path) -> (Session, Browser) {
    let (session, token) = path.session().await;
    let mut browser = attach(&session.attach_url, Credential::Token(token)).await;
    settle(&mut browser).await;
    (session, browser)
}

/// Waits until the shell has printed everything and shows its prompt.
async fn settle(browser: &mut Browser) {
    let from = browser.output.len();
    browser.input(b"PS1='> '; echo s''ettled\n").await;
    browser.expect_from(from, "settled\r\n> ", WAIT).await;
}

/// Typed byte -> its echo, `n` times.
async fn echo_rtts(browser: &mut Browser, n: usize) -> Vec<Duration> {
    let mut rtts = Vec::with_capacity(n);
    for i in 0..n {
        let from = browser.output.len();
        let byte = b'a' + (i % 26) as u8;
        let sent = Instant::now();
        browser.input(&[byte]).await;
        while browser.output.len() <= from {
            assert!(browser.step().await, "closed during echo");
        }
        rtts.push(sent.elapsed());
        assert_eq!(browser.output[from], byte);
    }
    browser.input(b"\x15").await; // Ctrl-U: drop the typed line.
    settle(browser).await;
    rtts.sort();
    rtts
}

/// MB/s of `bytes` of output, from the first byte to the marker after it.
async fn throughput(browser: &mut Browser, bytes: u64) -> f64 {
    let from = browser.output.len();
    browser
        .input(format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {bytes}; echo; echo do''ne\n").as_bytes())
        .await;
    assert!(browser.step_until(WAIT, |b| b.output.len() > from + 100).await);
    let started = Instant::now();
    let start_len = browser.output.len();
    browser.expect_from(start_len, "done", WAIT * 4).await;
    (browser.output.len() - start_len) as f64 / started.elapsed().as_secs_f64() / 1e6
}

/// The token check alone, per attach, `n` times each, interleaved: refusals of a correctly signed token
/// for another session (parsed, key found, signature verified, claims checked, then refused with
/// `Forbidden`) against refusals of a credential that does not parse as a token (refused before any of
/// that, `Unauthorized`). Both are answered by the gateway alone (no room, no runner) on the same path
/// otherwise, so the difference of their medians is what checking a token costs at attach. (A token
/// refused for its session is not consumed: one-time use is the room's, after the check.)
async fn verify_costs(path: &mut Path, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (session, token) = path.session().await;
    let other = edgeshell_core::issue::session_id(entropy());
    let url = session.attach_url.replace(session.id.as_str(), other.as_str());
    let (mut verified, mut unparsed) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let signed = Credential::Token(token);
    let garbage = Credential::Token("not-a-token".into());
    for _ in 0..n {
        for (credential, code, into) in
            [(&signed, CloseCode::Forbidden, &mut verified), (&garbage, CloseCode::Unauthorized, &mut unparsed)]
        {
            let opened = Instant::now();
            match Browser::attach(&url, credential).await {
                // The gateway accepts and closes (browsers cannot read a refused upgrade's status); the
                // native room refuses the upgrade itself.
                Err(AttachError::Closed(got, _)) if got == code => into.push(opened.elapsed()),
                Err(AttachError::Refused(status)) if status == code.http_status() => into.push(opened.elapsed()),
                Err(other) => panic!("expected a refusal with {code:?}, got {other:?}"),
                Ok(_) => panic!("a token for another session attached"),
            }
        }
    }
    path.end(&session).await;
    verified.sort();
    unparsed.sort();
    (verified, unparsed)
}

/// The token check inside the isolate, per check: `POST /internal/verify-cost` with `n = 1` and
/// `n = 201` (a valid attach token for its session), `rounds` times each, interleaved; the difference
/// of the medians over 200. `None` for the native room, which has no such route.
async fn isolate_verify_cost(path: &mut Path, rounds: usize) -> Option<f64> {
    let (session, token) = path.session().await;
    let Path::Edge(stack) = &*path else { return None };
    let client = reqwest::Client::new();
    let url = format!("{}/internal/verify-cost", stack.edge.url);
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (n, into) in [(1u32, &mut one), (201, &mut many)] {
            let body = serde_json::json!({ "token": token, "session": session.id.as_str(), "n": n });
            let started = Instant::now();
            let answer = client.post(&url).bearer_auth(edgeshell_e2e::INTERNAL_KEY).json(&body).send().await.unwrap();
            let answer: serde_json::Value = answer.json().await.unwrap();
            into.push(started.elapsed());
            assert_eq!(answer["passed"], n, "every check passes: {answer}");
        }
    }
    path.end(&session).await;
    one.sort();
    many.sort();
    Some((pct(&many, 0.5) - pct(&one, 0.5)) / 200.0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

struct Figures {
    name: &'static str,
    echo: Vec<Duration>,
    mbps: f64,
    attach_token: Vec<Duration>,
    attach_ticket: Vec<Duration>,
    tui: TuiAttach,
    start: Vec<Duration>,
    start_session: Vec<Duration>,
    start_phases: Vec<[Duration; 3]>,
    verified: Vec<Duration>,
    unparsed: Vec<Duration>,
    in_isolate: Option<f64>,
    /// Bytes of the edge's resident memory per connected idle pool agent.
    agent_memory: Option<f64>,
}

/// Memory per connected idle agent in a region's pool room: the resident memory of `wrangler dev` and
/// its workerd with `n` more agents connected (each said hello and reports every 2 s), minus before,
/// per agent. Includes `wrangler dev`'s local proxy, which production does not have: an upper bound.
async fn pool_room_memory(stack: &Stack, n: usize) -> f64 {
    use edgeshell_core::pool_api::{AgentMessage, AgentReport, AGENT_HEADER};
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let key = stack.pool_key("eu").unwrap();
    let url = format!("{}/pools/eu/connect", stack.edge_ws());
    // Full, so placement never picks them.
    let report = AgentReport { capacity: 0, load: 0, draining: false, runners: vec![] };
    let status = serde_json::to_string(&AgentMessage::Status(report.clone())).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = stack.edge.resident_bytes();
    let mut agents = Vec::with_capacity(n);
    for i in 0..n {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {}", key.expose()).parse().unwrap());
        request.headers_mut().insert(AGENT_HEADER, format!("bench-idle-{i}").parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the pool room takes the agent");
        let hello = serde_json::to_string(&AgentMessage::Hello(report.clone())).unwrap();
        socket.send(Message::text(hello)).await.unwrap();
        agents.push(socket);
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for socket in &mut agents {
            socket.send(Message::text(status.clone())).await.unwrap();
        }
    }
    let after = stack.edge.resident_bytes();
    drop(agents);
    after.saturating_sub(before) as f64 / n as f64
}

async fn measure(name: &'static str, mut path: Path, sizes: &Sizes) -> Figures {
    let (session, mut browser) = ready(&mut path).await;
    // Warm up: the first round trips include the isolate's and the object's first use.
    echo_rtts(&mut browser, 20).await;
    let echo = echo_rtts(&mut browser, sizes.echoes).await;
    // The median of three runs: one stream on a shared 2-core machine varies by 2x from run to run.
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(throughput(&mut browser, sizes.bytes).await);
    }
    runs.sort_by(f64::total_cmp);
    let mbps = runs[1];
    let (attach_token, attach_ticket) = attach_latencies(&mut path, sizes.attaches).await;
    let tui = tui_fresh_attach(&mut path).await;
    drop(browser);
    path.end(&session).await;
    let (start, start_session, start_phases) = session_starts(&mut path, sizes.starts).await;
    let (verified, unparsed) = verify_costs(&mut path, sizes.refusals).await;
    let in_isolate = isolate_verify_cost(&mut path, (sizes.refusals / 20).max(2)).await;
    let agent_memory = match &path {
        Path::Edge(stack) => Some(pool_room_memory(stack, sizes.idle_agents).await),
        Path::Direct(_) => None,
    };
    Figures {
        name,
        echo,
        mbps,
        attach_token,
        attach_ticket,
        tui,
        start,
        start_session,
        start_phases,
        verified,
        unparsed,
        in_isolate,
        agent_memory,
    }
}

fn report(all: &[Figures]) {
    let base = &all[0];
    println!(
        "\n{:<24} {:>9} {:>9} {:>10} {:>10} {:>9} {:>11} {:>11}",
        "path", "echo p50", "echo p99", "+p50", "+p99", "MB/s", "attach p50", "resume p50"
    );
    for f in all {
        println!(
            "{:<24} {:>7.2}ms {:>7.2}ms {:>+8.2}ms {:>+8.2}ms {:>9.1} {:>9.2}ms {:>9.2}ms",
            f.name,
            pct(&f.echo, 0.5),
            pct(&f.echo, 0.99),
            pct(&f.echo, 0.5) - pct(&base.echo, 0.5),
            pct(&f.echo, 0.99) - pct(&base.echo, 0.99),
            f.mbps,
            pct(&f.attach_token, 0.5),
            pct(&f.attach_ticket, 0.5),
        );
    }
    for f in all {
        println!(
            "{}: fresh attach (open -> screen drawn) p50 {:.2} ms, p99 {:.2} ms; resume with a ticket p50 {:.2} ms, p99 {:.2} ms ({:.2}x)",
            f.name,
            pct(&f.attach_token, 0.5),
            pct(&f.attach_token, 0.99),
            pct(&f.attach_ticket, 0.5),
            pct(&f.attach_ticket, 0.99),
            pct(&f.attach_token, 0.5) / pct(&f.attach_ticket, 0.5),
        );
        println!(
            "{}: fresh attach to an 80x24 TUI after {} bytes of output: {} bytes (snapshot and the output after it) vs {} bytes of raw replay ({:.2}x), drawn in {:.1} ms",
            f.name,
            f.tui.total,
            f.tui.fresh_bytes,
            f.tui.replay_bytes,
            f.tui.fresh_bytes as f64 / f.tui.replay_bytes as f64,
            f.tui.drawn.as_secs_f64() * 1e3,
        );
    }
    for f in &all[1..] {
        println!(
            "{}: throughput ratio {:.2} of {}; token check at attach ≈ {:.2} ms (attach with a token minus resume with a ticket, p50)",
            f.name,
            f.mbps / base.mbps,
            base.name,
            pct(&f.attach_token, 0.5) - pct(&f.attach_ticket, 0.5),
        );
    }
    for f in all {
        println!(
            "{}: session start (new session -> first prompt byte) p50 {:.1} ms, p99 {:.1} ms ({:.1}x {}), of which the session and its token p50 {:.1} ms",
            f.name,
            pct(&f.start, 0.5),
            pct(&f.start, 0.99),
            pct(&f.start, 0.5) / pct(&base.start, 0.5),
            base.name,
            pct(&f.start_session, 0.5),
        );
        // Where the slowest starts spent their time.
        let mut slow = f.start_phases.clone();
        slow.sort_by_key(|p| std::cmp::Reverse(p[0] + p[1] + p[2]));
        for p in slow.iter().take(2) {
            println!(
                "{}: a slow start: session and token {:.1} ms, attach open {:.1} ms, first byte {:.1} ms",
                f.name,
                p[0].as_secs_f64() * 1e3,
                p[1].as_secs_f64() * 1e3,
                p[2].as_secs_f64() * 1e3
            );
        }
    }
    for f in all {
        println!(
            "{}: token check per attach {:+.3} ms (refusal after the check p50 {:.2} ms minus refusal before it p50 {:.2} ms, {} each; p25 difference {:+.3} ms)",
            f.name,
            pct(&f.verified, 0.5) - pct(&f.unparsed, 0.5),
            pct(&f.verified, 0.5),
            pct(&f.unparsed, 0.5),
            f.verified.len(),
            pct(&f.verified, 0.25) - pct(&f.unparsed, 0.25),
        );
        if let Some(ms) = f.in_isolate {
            println!(
                "{}: token check inside the isolate {:.3} ms (a request of 201 checks minus one of 1 check, over 200, medians)",
                f.name, ms
            );
        }
    }
    for f in all {
        if let Some(bytes) = f.agent_memory {
            println!(
                "{}: pool room, memory per connected idle agent {:.1} KiB (wrangler dev's resident memory, its proxy included)",
                f.name,
                bytes / 1024.0
            );
        }
    }
    let wasm = edgeshell_stack::paths::repo_root().join("edge-gateway/build/index_bg.wasm");
    if let Ok(meta) = std::fs::metadata(&wasm) {
        println!("Worker .wasm: {:.0} KiB", meta.len() as f64 / 1024.0);
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        if full {
            let sizes =
                Sizes { echoes: 500, bytes: 20_000_000, attaches: 40, starts: 40, refusals: 1000, idle_agents: 200 };
            let mut all = vec![measure("direct (native room)", Path::direct().await, &sizes).await];
            all.push(measure("edge, hibernation", Path::edge(true).await, &sizes).await);
            if edgeshell_stack::dev_setting("EDGESHELL_BENCH_QUICK").is_none() {
                all.push(measure("edge, no hibernation", Path::edge(false).await, &sizes).await);
            }
            report(&all);
        } else {
            let sizes = Sizes { echoes: 5, bytes: 100_000, attaches: 2, starts: 2, refusals: 3, idle_agents: 2 };
            let all = [
                measure("direct (native room)", Path::direct().await, &sizes).await,
                measure("edge, hibernation", Path::edge(true).await, &sizes).await,
            ];
            report(&all);
        }
    });
}

//! The edge gateway under a real `wrangler dev`, with the real control plane, a pool agent and real
//! runners: sessions are minted through the public API, runners join the `SessionRoom` Durable Object
//! through the Worker, and browsers attach with their token in `Sec-WebSocket-Protocol`.
//!
//! One stack serves the scenarios in order (starting `wrangler dev` and the control plane takes about
//! 20 seconds); each scenario uses its own sessions. Key rotation redeploys the control plane, so it
//! runs last.

use edgeshell_core::api_error::{ApiError, ErrorCode, Retry};
use edgeshell_core::bundles::hex;
use edgeshell_core::ids::{RegionId, SessionId, Subject};
use edgeshell_core::issue::Issuer;
use edgeshell_core::protocol::{CloseCode, Credential, Frame};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{sign, Claims};
use edgeshell_e2e::{vector_jwk, Session, Stack, StackOptions, INTERNAL_KEY, TOKEN_ISSUER};
use edgeshell_keys::RsaSigner;
use edgeshell_room_host::browser::{AttachError, Browser};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(20);
const USER: &str = "alice";
/// The room's runner grace period in this stack.
const GRACE: Duration = Duration::from_secs(2);
/// A page origin the edge is configured to accept besides its own.
const PAGE_ORIGIN: &str = "https://app.example.com";

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    )
}

fn entropy() -> [u8; 16] {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut e = [0u8; 16];
    e.copy_from_slice(&nanos.to_le_bytes());
    e
}

/// Signs attach claims with the given key, as a forger or a misbehaving issuer would.
fn attach_token(signer: &RsaSigner, session: &SessionId, edit: impl FnOnce(&mut Claims)) -> String {
    let mut claims = Issuer::new(TOKEN_ISSUER).attach(
        &Subject::new(USER).unwrap(),
        (session, &RegionId::new("eu").unwrap()),
        edgeshell_core::lifetime::Terms::lasting(now(), 3600),
        entropy(),
        now(),
    );
    edit(&mut claims);
    sign(&claims, signer).unwrap()
}

/// A test vector's key under another kid.
fn key_with_kid(vector: &str, kid: &str) -> RsaSigner {
    let mut jwk: serde_json::Value = serde_json::from_str(&vector_jwk(vector).unwrap()).unwrap();
    jwk["kid"] = kid.into();
    RsaSigner::from_secret(&jwk.to_string()).unwrap()
}

async fn attach(session: &Session, token: &str) -> Result<Browser, AttachError> {
    Browser::attach(&session.ws_url, &Credential::Token(token.to_owned())).await
}

fn closed_with(result: Result<Browser, AttachError>) -> CloseCode {
    match result {
        Err(AttachError::Closed(code, _)) => code,
        Err(other) => panic!("expected a close code, got {other:?}"),
        Ok(_) => panic!("expected a refusal, got a welcome"),
    }
}

async fn attach_and_echo(stack: &Stack) -> Session {
    let session = stack.mint(USER).await.unwrap();
    assert!(session.ws_url.starts_with(&stack.edge_ws()), "{} is not at the edge", session.ws_url);
    let mut browser = attach(&session, session.token.expose()).await.expect("attach");
    browser.input(b"echo hel''lo\n").await;
    browser.expect_from(0, "hello", WAIT).await;
    // Resize reaches the PTY.
    browser.resize(101, 31).await;
    let from = browser.output.len();
    browser.input(b"stty size\n").await;
    browser.expect_from(from, "31 101", WAIT).await;
    // Text heartbeats are answered by the platform (auto-response).
    browser.heartbeat().await;
    assert!(browser.step_until(WAIT, |b| b.pongs > 0).await, "no pong: {:?}", browser.closed);
    // An in-band refresh: the room has the new token verified at the edge and extends the seat.
    let fresh = stack.attach_token(USER, &session.id).await.unwrap();
    browser.send(Frame::Refresh { token: fresh.clone().into() }).await;
    let accepted = |b: &Browser| b.events.iter().any(|f| matches!(f, Frame::RefreshAccepted { .. }));
    assert!(browser.step_until(WAIT, accepted).await, "refresh not accepted: {:?}", browser.closed);
    // The refresh consumed the token: it cannot attach a second browser.
    assert_eq!(closed_with(attach(&session, &fresh).await), CloseCode::Replayed);
    session
}

async fn cached_keys_need_no_network(stack: &Stack) {
    let before = stack.jwks.requests();
    for _ in 0..3 {
        let session = stack.mint(USER).await.unwrap();
        let mut browser = attach(&session, session.token.expose()).await.expect("attach");
        browser.input(b"echo cached\n").await;
        browser.expect_from(0, "cached", WAIT).await;
    }
    assert_eq!(stack.jwks.requests(), before, "attaches on a warm cache make no network call");
}

/// The benchmark's route runs the attach path's check `n` times, only for the internal key, and does
/// not consume the token (one-time use is the room's).
async fn the_verify_cost_route(stack: &Stack) {
    let session = stack.mint(USER).await.unwrap();
    let url = format!("{}/internal/verify-cost", stack.edge.url);
    let http = reqwest::Client::new();
    let ask = |key: Option<&'static str>, n: u32, sid: &str| {
        let body = serde_json::json!({ "token": session.token.expose(), "session": sid, "n": n });
        let mut request = http.post(&url).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let answer = request.send().await.unwrap();
            (answer.status().as_u16(), answer.json::<serde_json::Value>().await.unwrap())
        }
    };
    let sid = session.id.as_str();
    assert_eq!(ask(None, 3, sid).await.0, 401);
    assert_eq!(ask(Some("not-the-key"), 3, sid).await.0, 401);
    assert_eq!(ask(Some(INTERNAL_KEY), 5000, sid).await.0, 400);
    let (status, ran) = ask(Some(INTERNAL_KEY), 3, sid).await;
    assert_eq!((status, ran["checks"].as_u64(), ran["passed"].as_u64()), (200, Some(3), Some(3)), "{ran}");
    let other = edgeshell_core::issue::session_id([9; 16]);
    let (_, refused) = ask(Some(INTERNAL_KEY), 2, other.as_str()).await;
    assert_eq!(refused["passed"], 0, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("WrongSession")), "{refused}");
    attach(&session, session.token.expose()).await.expect("the checks did not use the token up");
}

async fn tokens_work_once(stack: &Stack) {
    let session = stack.mint(USER).await.unwrap();
    let _first = attach(&session, session.token.expose()).await.expect("the first use attaches");
    assert_eq!(closed_with(attach(&session, session.token.expose()).await), CloseCode::Replayed);

    // One fresh token, 100 browsers at once: exactly one gets in.
    let token = stack.attach_token(USER, &session.id).await.unwrap();
    let attempts: Vec<_> = (0..100)
        .map(|_| {
            let (session, token) = (session.clone(), token.clone());
            tokio::spawn(async move { attach(&session, &token).await })
        })
        .collect();
    let mut welcomed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => welcomed += 1,
            Err(AttachError::Closed(CloseCode::Replayed, _)) => {}
            Err(other) => panic!("a replayed attach must be refused as replayed: {other:?}"),
        }
    }
    assert_eq!(welcomed, 1, "exactly one of 100 concurrent uses attaches");
}

async fn bad_tokens_get_their_close_codes(stack: &Stack) {
    let session = stack.mint(USER).await.unwrap();
    let other = stack.mint("bob").await.unwrap();
    let key = RsaSigner::from_secret(&vector_jwk("pyjwt-rs256.json").unwrap()).unwrap();
    let expired = attach_token(&key, &session.id, |c| {
        c.iat -= 3600;
        c.nbf -= 3600;
        c.exp -= 3600;
    });
    assert_eq!(closed_with(attach(&session, &expired).await), CloseCode::TokenExpired);
    assert_eq!(
        closed_with(attach(&session, other.token.expose()).await),
        CloseCode::Forbidden,
        "another session's token"
    );
    // Same kid, another key: the signature does not verify.
    let forger = key_with_kid("rfc7515-a2.json", "pyjwt-1");
    assert_eq!(
        closed_with(attach(&session, &attach_token(&forger, &session.id, |_| {})).await),
        CloseCode::Unauthorized
    );
    let wrong_audience = attach_token(&key, &session.id, |c| c.aud = "someone-else".into());
    assert_eq!(closed_with(attach(&session, &wrong_audience).await), CloseCode::Unauthorized);
    assert_eq!(closed_with(attach(&session, "not.a.token").await), CloseCode::Unauthorized);
    // A join token is not an attach token.
    let join = sign(
        &Issuer::new(TOKEN_ISSUER).join(
            (&session.id, &RegionId::new("eu").unwrap()),
            edgeshell_core::lifetime::Terms::lasting(now(), 3600),
            entropy(),
            now(),
        ),
        &key,
    )
    .unwrap();
    assert_eq!(closed_with(attach(&session, &join).await), CloseCode::Forbidden);
    // A resume ticket for a session that has no room.
    let nowhere = format!("{}/sessions/s_nowhere0000000000000000/attach?offset=0", stack.edge_ws());
    let result = Browser::attach(&nowhere, &Credential::Resume("1.AAAA".into())).await;
    assert_eq!(closed_with(result), CloseCode::SessionNotFound);
    // Unknown kids cost at most one JWKS refetch per cooldown, however many arrive.
    let before = stack.jwks.requests();
    let stranger = key_with_kid("rfc7515-a2.json", "unknown-kid");
    for _ in 0..5 {
        assert_eq!(
            closed_with(attach(&session, &attach_token(&stranger, &session.id, |_| {})).await),
            CloseCode::Unauthorized
        );
    }
    assert!(stack.jwks.requests() - before <= 1, "{} refetches for unknown kids", stack.jwks.requests() - before);
    let plain = reqwest::get(format!("{}/sessions/{}/attach", stack.edge.url, session.id)).await.unwrap();
    assert_eq!(error_of_the_table(plain).await, ErrorCode::UpgradeRequired, "a plain GET is told to upgrade");
}

async fn runner_lost_within_grace(stack: &Stack) {
    let session = stack.mint(USER).await.unwrap();
    let mut browser = attach(&session, session.token.expose()).await.expect("attach");
    browser.input(b"echo up\n").await;
    browser.expect_from(0, "up", WAIT).await;
    let runners = stack.agent("eu").unwrap().runners().await.unwrap();
    let runner = runners.iter().find(|r| r["session_id"] == session.id.as_str()).expect("the agent lists the runner");
    let pid: i32 = runner["runner"].as_str().unwrap().trim_start_matches("pid:").parse().unwrap();
    let killed = Instant::now();
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), rustix::process::Signal::KILL).unwrap();
    let closed = browser.expect_close(WAIT).await;
    let took = killed.elapsed();
    assert_eq!(closed.map(|c| c.0), Some(CloseCode::RunnerLost));
    assert!(
        browser.events.contains(&Frame::RunnerAway),
        "the browser was told the runner is away: {:?}",
        browser.events
    );
    assert!(browser.events.contains(&Frame::RunnerLost));
    eprintln!("runner lost reported {took:?} after the kill (grace {GRACE:?})");
    // The room's alarm fires at the grace's end; the rest is the platform's alarm delivery.
    assert!(took < GRACE + Duration::from_secs(3), "runner lost after {took:?}");
}

/// The stream `seq 1 n` prints, with the PTY's newline translation turned off.
fn seq_output(n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.extend_from_slice(format!("{i}\n").as_bytes());
    }
    out
}

async fn exact_resume_through_a_drop(stack: &Stack) {
    const N: u32 = 1_500_000; // 10.9 MB
    let expected = seq_output(N);
    let session = stack.mint(USER).await.unwrap();
    let mut browser = attach(&session, session.token.expose()).await.expect("attach");
    browser.input(b"stty -echo -onlcr; echo ready\n").await;
    let from = browser.expect_from(0, "ready", WAIT).await;
    browser.input(format!("seq 1 {N}; echo; echo finished\n").as_bytes()).await;
    // Cut the connection in the middle of the output, without a close frame.
    assert!(browser.step_until(WAIT, |b| b.output.len() >= from + 3_000_000).await, "3 MB did not arrive");
    let (kept, offset, ticket) =
        (browser.output.clone(), browser.offset, browser.welcome.resume_ticket.expose().to_owned());
    drop(browser);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("{}?offset={offset}", session.ws_url);
    let mut resumed = Browser::attach(&url, &Credential::Resume(ticket)).await.expect("resume with the ticket");
    assert_eq!(resumed.welcome.offset, offset, "output continues at the exact byte");
    resumed.expect_from(0, "finished", Duration::from_secs(120)).await;
    let mut stream = kept;
    stream.extend_from_slice(&resumed.output);
    // After "ready" comes the prompt, then seq's output.
    let start = stream[from..].windows(6).position(|w| w == b"1\n2\n3\n").map(|p| from + p).expect("the output starts");
    let received = &stream[start..start + expected.len()];
    assert_eq!(
        Sha256::digest(received),
        Sha256::digest(&expected),
        "the received stream is the runner's, byte for byte"
    );
}

/// A browser pastes 100 MB into a program that reads nothing: the room forwards a window, holds a little,
/// and then refuses the paster with 4016; the session lives on and the browser resumes.
async fn input_to_a_stalled_program_is_bounded(stack: &Stack) {
    let session = stack.mint(USER).await.unwrap();
    let mut browser = attach(&session, session.token.expose()).await.expect("attach");
    // In raw mode the terminal takes a few KiB and then nothing more until the program reads; after a
    // while the program drains what reached it and says so.
    let script = "stty raw -echo; echo ready; sleep 3; timeout 5 cat >/dev/null; stty sane; echo drain''ed\n";
    browser.input(script.as_bytes()).await;
    browser.expect_from(0, "ready", WAIT).await;
    let chunk = vec![b'x'; 60 * 1024];
    let mut sent = 0usize;
    while sent < 100 * 1024 * 1024 && browser.try_input(&chunk).await {
        sent += chunk.len();
        // A close, if one came, is read without waiting.
        if let Ok(false) = tokio::time::timeout(Duration::from_millis(1), browser.step()).await {
            break;
        }
    }
    assert!(browser.step_until(WAIT, |b| b.closed.is_some()).await || browser.closed.is_some());
    let (code, reason) = browser.closed.clone().expect("closed");
    assert_eq!(code, CloseCode::InputOverflow, "{reason}");
    assert!(sent < 100 * 1024 * 1024, "refused before the paste ended ({sent} bytes sent)");
    // The session lives on: the browser resumes, and once the program has drained it types again.
    let url = format!("{}?offset={}", session.ws_url, browser.offset);
    let mut resumed = Browser::attach(&url, &Credential::Resume(browser.welcome.resume_ticket.expose().to_owned()))
        .await
        .expect("resume after the refusal");
    let after = resumed.expect_from(0, "drained", Duration::from_secs(30)).await;
    resumed.input(b"echo ali''ve\n").await;
    resumed.expect_from(after, "alive", WAIT).await;
}

/// The edge restarts (every socket drops, the room's object starts afresh): the room is restored from
/// its checkpoints, the runner resumes with its ticket, the browser resumes at its exact byte.
async fn the_room_survives_an_edge_restart(stack: &mut Stack) {
    let session = stack.mint(USER).await.unwrap();
    let mut browser = attach(&session, session.token.expose()).await.expect("attach");
    browser.input(b"echo before; sleep 0.1; echo held\n").await;
    browser.expect_from(0, "held\r\n", WAIT).await;
    let (kept, offset, ticket) =
        (browser.output.clone(), browser.offset, browser.welcome.resume_ticket.expose().to_owned());
    drop(browser);
    stack.edge.restart().await.unwrap();
    eprintln!("edge restarted");
    let url = format!("{}?offset={offset}", session.ws_url);
    let credential = Credential::Resume(ticket);
    let resume = Browser::attach(&url, &credential);
    let mut resumed = tokio::time::timeout(WAIT, resume).await.expect("an answer").expect("resume after the restart");
    assert_eq!(resumed.welcome.offset, offset, "the restored room continues at the exact byte");
    // The runner redials with its ticket (backoff up to 5 s); typed input waits for it.
    resumed.input(b"echo after\n").await;
    resumed.expect_from(0, "after\r\n", Duration::from_secs(30)).await;
    let mut stream = kept;
    stream.extend_from_slice(&resumed.output);
    let text = String::from_utf8_lossy(&stream);
    assert_eq!(text.matches("\r\nheld\r\n").count(), 1, "nothing repeated: {text:?}");
}

async fn cached_keys_survive_an_issuer_outage(stack: &Stack) {
    stack.jwks.set_down(true);
    let session = stack.mint(USER).await.unwrap();
    let mut browser = attach(&session, session.token.expose()).await.expect("attach on cached keys");
    browser.input(b"echo still here\n").await;
    browser.expect_from(0, "still here", WAIT).await;
    stack.jwks.set_down(false);
}

async fn artifact_links_work_once(stack: &Stack, session: &Session) {
    let url = format!("{}/artifacts/{}/out/report.txt", stack.edge.url, session.id);
    let http = reqwest::Client::new();
    let content = b"the report\n".repeat(1000);
    let uploaded = stack.upload_artifact(&session.id, &session.region, "out/report.txt", content.clone()).await;
    assert_eq!(uploaded.unwrap(), 201);
    let denied = http.put(format!("{url}2")).bearer_auth("forged").body("x").send().await.unwrap();
    assert_eq!(error_of_the_table(denied).await, ErrorCode::Unauthorized);

    let body = serde_json::json!({ "session_id": session.id.as_str(), "path": "out/report.txt" });
    let (status, link) = stack.call(reqwest::Method::POST, "/api/artifacts/links", USER, body).await.unwrap();
    assert_eq!(status, 201, "{link}");
    let token = link["token"].as_str().unwrap().to_owned();
    let link = link["url"].as_str().unwrap().replacen("wss://", "http://", 1).replacen("ws://", "http://", 1);
    assert!(!link.contains(&token) && !link.contains('?'), "the link's URL carries no token: {link}");
    // A token in the query string (where logs keep URLs) is refused without being looked at.
    let queried = http.get(format!("{link}?token={token}")).send().await.unwrap();
    assert_eq!(error_of_the_table(queried).await, ErrorCode::BadRequest);
    let first = http.get(&link).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().await.unwrap().as_ref(), content.as_slice(), "the download streams the upload");
    let second = http.get(&link).bearer_auth(&token).send().await.unwrap();
    assert_eq!(error_of_the_table(second).await, ErrorCode::ReplayedToken, "a link works once");
    let tampered = link.replace("report.txt", "other.txt");
    let tampered = http.get(&tampered).bearer_auth(&token).send().await.unwrap();
    assert_eq!(error_of_the_table(tampered).await, ErrorCode::Forbidden, "a link is bound to its path");
}

/// The edge's refusal on a plain route: a row of the one error table, in its shape, with its status and
/// `Retry-After` exactly where the row allows one.
/// What an upload records is what was streamed: its SHA-256 computed on the way (a mismatch with the
/// declared one is refused and stores nothing), and an upload cut short (the uploader gone mid-body)
/// releases its path at once.
async fn uploads_are_recorded_as_streamed(stack: &Stack, session: &Session) {
    let http = reqwest::Client::new();
    let token = stack.artifact_put_token(&session.id, &session.region).unwrap();
    let url = |path: &str| format!("{}/artifacts/{}/{path}", stack.edge.url, session.id);
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = hex(&Sha256::digest(&content));
    let put = |path: &str, declared: Option<&str>, body: Vec<u8>| {
        let mut request = http.put(url(path)).bearer_auth(token.expose()).body(body);
        if let Some(declared) = declared {
            request = request.header("x-content-sha256", declared);
        }
        request.send()
    };
    let stored = put("out/a.bin", None, content.clone()).await.unwrap();
    assert_eq!(stored.status(), 201);
    let stored: serde_json::Value = stored.json().await.unwrap();
    assert_eq!((stored["size"].as_u64(), stored["sha256"].as_str()), (Some(300_000), Some(sha.as_str())));

    let wrong = hex(&Sha256::digest(b"something else"));
    let refused = put("out/b.bin", Some(&wrong), content.clone()).await.unwrap();
    assert_eq!(error_of_the_table(refused).await, ErrorCode::ContentMismatch);
    assert_eq!(put("out/b.bin", Some(&sha), content.clone()).await.unwrap().status(), 201, "the path was released");

    // Content-Length says 300,000; 1,000 bytes arrive and the uploader is gone.
    let addr = stack.edge.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /artifacts/{}/out/c.bin HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ncontent-length: 300000\r\n\r\n",
        session.id,
        token.expose()
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    raw.write_all(&content[..1_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(raw);
    let mut released = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = put("out/c.bin", Some(&sha), content.clone()).await.unwrap();
        if again.status() == 201 {
            released = true;
            break;
        }
        assert_eq!(error_of_the_table(again).await, ErrorCode::ArtifactExists);
    }
    assert!(released, "the cut-short upload still holds its path");

    let list = format!("/api/artifacts?session={}", session.id);
    let (status, list) = stack.call(reqwest::Method::GET, &list, USER, serde_json::Value::Null).await.unwrap();
    assert_eq!(status, 200, "{list}");
    for artifact in list["artifacts"].as_array().unwrap() {
        if artifact["path"].as_str().unwrap().ends_with(".bin") {
            assert_eq!((artifact["size"].as_u64(), artifact["sha256"].as_str()), (Some(300_000), Some(sha.as_str())));
        }
    }
}

/// The owner ends a session: its browsers are closed with `session_ended` at once (the control plane
/// ends the room at the edge), not when the runner is gone.
async fn ending_a_session_closes_its_browsers_at_once(stack: &Stack) {
    let session = stack.mint(USER).await.unwrap();
    let mut browser = attach(&session, session.token.expose()).await.expect("attach");
    browser.input(b"echo before-the-end\n").await;
    browser.expect_from(0, "before-the-end", WAIT).await;
    let path = format!("/api/sessions/{}", session.id);
    let started = Instant::now();
    let (status, ended) = stack.call(reqwest::Method::DELETE, &path, USER, serde_json::Value::Null).await.unwrap();
    assert_eq!((status, ended["room_ended"].as_bool()), (200, Some(true)), "{ended}");
    // Stepping ends when the socket does.
    browser.step_until(WAIT, |b| b.closed.is_some()).await;
    let (code, reason) = browser.closed.clone().expect("the browser was never closed");
    assert!(!browser.events.contains(&Frame::RunnerAway), "the runner went before the room was ended");
    assert_eq!(code, CloseCode::SessionEnded, "{reason}");
    eprintln!("ended by its owner: browser closed {:?} after the DELETE was sent", started.elapsed());
    // And it stays ended: no new token for it.
    assert!(stack.attach_token(USER, &session.id).await.is_err());
}

async fn error_of_the_table(response: reqwest::Response) -> ErrorCode {
    let status = response.status().as_u16();
    let retry = response.headers().contains_key("retry-after");
    let body = response.bytes().await.unwrap();
    let error = ApiError::from_body(&body).unwrap_or_else(|e| panic!("HTTP {status}: {e}"));
    assert_eq!(error.status(), status, "{error}");
    assert_eq!(retry, error.code.retry() != Retry::Never, "Retry-After of {error}");
    error.code
}

async fn rotation_needs_one_refetch(stack: &mut Stack) {
    let old = stack.mint(USER).await.unwrap();
    let mut settings = stack.control_settings.clone();
    settings.signing_key = vector_jwk("rfc7515-a2.json").unwrap().into();
    settings.extra += &format!("SPIN_VARIABLE_PREVIOUS_SIGNING_KEY='{}'\n", vector_jwk("pyjwt-rs256.json").unwrap());
    stack.control.redeploy(&settings).await.unwrap();
    let before = stack.jwks.requests();
    let new = stack.mint(USER).await.unwrap();
    let mut browser = attach(&new, new.token.expose()).await.expect("a token of the new key attaches");
    browser.input(b"echo rotated\n").await;
    browser.expect_from(0, "rotated", WAIT).await;
    assert_eq!(stack.jwks.requests() - before, 1, "the new kid costs a single JWKS refetch");
    let again = stack.mint(USER).await.unwrap();
    attach(&again, again.token.expose()).await.expect("and is cached after");
    let _old = attach(&old, old.token.expose()).await.expect("tokens of the previous key still verify");
    assert_eq!(stack.jwks.requests() - before, 1);
}

/// A page of another site holding a stolen attach token cannot attach; the edge's own page and a
/// configured page origin can; a "runner" with an `Origin` (a page) cannot join. Refusals come before
/// the token is looked at, so a refused token still works from an allowed page.
async fn pages_of_other_sites_cannot_attach(stack: &Stack) {
    let session = stack.mint(USER).await.unwrap();
    let own = stack.edge.url.trim_end_matches('/').to_owned();
    let token = Credential::Token(session.token.expose().to_owned());
    for evil in ["https://evil.example", "null", "http://localhost.evil.example", &own.replace("http://", "https://")] {
        let refused = Browser::attach_from(&session.ws_url, &token, Some(evil)).await;
        assert_eq!(closed_with(refused), CloseCode::Forbidden, "a page of {evil} attached");
    }
    let mut browser = Browser::attach_from(&session.ws_url, &token, Some(&own)).await.expect("the edge's own page");
    browser.input(b"echo own''-page\n").await;
    browser.expect_from(0, "own-page", WAIT).await;
    let other = Credential::Token(stack.attach_token(USER, &session.id).await.unwrap());
    Browser::attach_from(&session.ws_url, &other, Some(PAGE_ORIGIN)).await.expect("a configured page origin");

    let key = RsaSigner::from_secret(&vector_jwk("pyjwt-rs256.json").unwrap()).unwrap();
    let sid = edgeshell_core::issue::session_id(rand::random());
    let join = sign(
        &Issuer::new(TOKEN_ISSUER).join(
            (&sid, &RegionId::new("eu").unwrap()),
            edgeshell_core::lifetime::Terms::lasting(now(), 3600),
            entropy(),
            now(),
        ),
        &key,
    )
    .unwrap();
    let url = format!("{}/sessions/{sid}/join", stack.edge_ws());
    let refused = Browser::attach_from(&url, &Credential::Token(join), Some(&own)).await;
    assert_eq!(closed_with(refused), CloseCode::Forbidden, "a join from a page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn the_edge_gateway_end_to_end() {
    let options = StackOptions {
        edge_vars: vec![
            ("ROOM_RUNNER_GRACE_MS", GRACE.as_millis().to_string()),
            ("PAGE_ORIGINS", PAGE_ORIGIN.to_owned()),
        ],
        ..StackOptions::default()
    };
    let mut stack = Stack::start(options).await.unwrap();
    let steps = Instant::now();
    let first = attach_and_echo(&stack).await;
    eprintln!("attach and echo: ok ({:?})", steps.elapsed());
    cached_keys_need_no_network(&stack).await;
    eprintln!("warm attaches without network: ok");
    the_verify_cost_route(&stack).await;
    eprintln!("verify-cost route: ok");
    tokens_work_once(&stack).await;
    eprintln!("one-time attach tokens: ok");
    bad_tokens_get_their_close_codes(&stack).await;
    eprintln!("close codes: ok");
    pages_of_other_sites_cannot_attach(&stack).await;
    eprintln!("origins: ok");
    runner_lost_within_grace(&stack).await;
    eprintln!("runner lost: ok");
    exact_resume_through_a_drop(&stack).await;
    eprintln!("exact resume: ok");
    input_to_a_stalled_program_is_bounded(&stack).await;
    eprintln!("input to a stalled program: ok");
    cached_keys_survive_an_issuer_outage(&stack).await;
    eprintln!("issuer outage: ok");
    artifact_links_work_once(&stack, &first).await;
    uploads_are_recorded_as_streamed(&stack, &first).await;
    eprintln!("uploads recorded as streamed: ok");
    eprintln!("artifacts: ok");
    the_room_survives_an_edge_restart(&mut stack).await;
    eprintln!("edge restart: ok");
    ending_a_session_closes_its_browsers_at_once(&stack).await;
    eprintln!("ended by its owner: ok");
    rotation_needs_one_refetch(&mut stack).await;
    eprintln!("key rotation: ok ({:?} in all)", steps.elapsed());
    no_credential_reaches_the_logs(&stack);
    eprintln!("logs hold no credential: ok");
}

/// After every step above (attaches, refusals, resumes, artifact uploads and downloads, restarts),
/// nothing `wrangler dev` or the Worker logged holds a token (a JWT starts `eyJ`) or a credential
/// subprotocol.
fn no_credential_reaches_the_logs(stack: &Stack) {
    let logs = stack.edge.logs();
    assert!(logs.lines().count() > 10, "the edge's logs were not kept:\n{logs}");
    for line in logs.lines() {
        for leak in ["eyJ", "edgeshell.auth.", "edgeshell.resume."] {
            assert!(!line.contains(leak), "a credential in the edge's logs: {line}");
        }
    }
}

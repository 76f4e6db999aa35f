//! Control-plane benchmarks on this machine, with the real components in the host, a real Postgres and
//! the dev issuer (run by `cargo xtask bench`):
//!
//! - a trivial component request (`PUT /api/sessions` -> 405): the baseline every ratio refers to;
//! - `POST /internal/jti/consume` with fresh ids: ops/s and latency percentiles, and its statement from a
//!   native client (the database's own share);
//! - `POST /api/sessions` (mint) with an instantly accepting pool (runner start excluded) and with a pool
//!   that spawns a process per start (the local backend's floor; the full runner start is the pool
//!   agent's benchmark);
//! - component instantiation alone, and the RS256 signing time inside the component (from the mint's
//!   `Server-Timing`).
//!
//! The mint rows run twice: signing in the component (`mint`) and at the native signer service
//! (`signer`, the production setting). Each ends with the runner start through a pool room (the pool's
//! agent dialed out to the core's pool room, hosted natively) against the same pool answering at the
//! edge's route directly, interleaved, and prints their ratio.
//!
//! Load comes from keep-alive connections on loopback; every request must succeed. Arguments after `--`
//! choose groups (`jti`, `mint`, `signer`; the baseline and instantiation always run), e.g. to profile
//! one of them:
//! `cargo bench -p edgeshell-spin-host --bench control -- jti`. `EDGESHELL_BENCH_SCALE=k` sends k times
//! as many requests, for a window long enough to profile.

#![allow(missing_docs, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

/// The host binary's allocator (`src/main.rs`), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use edgeshell_spin_host::Host;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::http1::{Client, Request};
use support::pool::Mode;
use support::stack::{Stack, INTERNAL_KEY};
use wasmtime_wasi_http::io::TokioIo;

struct Figures {
    name: String,
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time per request: this process (the host and the load generator), and the database's.
    cpu: Option<(Duration, Duration)>,
}

/// CPU time spent so far by this process (every thread) and by each of the machine's `postgres`
/// processes, from `/proc/*/schedstat` (nanoseconds, user and system). Per request, it is a steadier
/// figure than throughput on a shared VM, whose other tenants take cores away but do not add to these
/// counters.
struct CpuReading {
    own: u64,
    /// By process id: a server process that exits during a window (another row's connection closing)
    /// must not take its whole past off the window's total.
    database: std::collections::HashMap<u32, u64>,
}

fn cpu_now() -> CpuReading {
    fn on_cpu(schedstat: &std::path::Path) -> u64 {
        let text = std::fs::read_to_string(schedstat).unwrap_or_default();
        text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
    }
    let mut own = 0;
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        own += on_cpu(&task.path().join("schedstat"));
    }
    let mut database = std::collections::HashMap::new();
    for process in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = process.file_name().to_str().and_then(|p| p.parse().ok()) else { continue };
        let comm = std::fs::read_to_string(process.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == "postgres" {
            database.insert(pid, on_cpu(&process.path().join("schedstat")));
        }
    }
    CpuReading { own, database }
}

/// CPU per request since `before`: this process's, and the database's (the processes alive at the end,
/// each counted from the first reading or from its start).
fn cpu_per(before: CpuReading, requests: usize) -> Option<(Duration, Duration)> {
    let after = cpu_now();
    let n = requests.max(1) as u64;
    let database: u64 =
        after.database.iter().map(|(pid, ns)| ns.saturating_sub(before.database.get(pid).copied().unwrap_or(0))).sum();
    Some((Duration::from_nanos(after.own.saturating_sub(before.own) / n), Duration::from_nanos(database / n)))
}

/// A request to send and the status it must get.
type MakeRequest = Arc<dyn Fn(usize) -> (Request, u16) + Send + Sync>;

/// Sends `total` requests over `concurrency` connections; answers figures and the responses' headers.
async fn load(
    name: &str,
    url: &str,
    concurrency: usize,
    total: usize,
    make: MakeRequest,
) -> (Figures, Vec<http::HeaderMap>) {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = cpu_now();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (url, next, make, name) = (url.to_owned(), next.clone(), make.clone(), name.to_owned());
            tokio::spawn(async move {
                let mut client = Client::connect(&url).await.unwrap();
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return out;
                    }
                    let (req, expected) = make(i);
                    let t = Instant::now();
                    let resp = client.send(&req).await.unwrap();
                    let took = t.elapsed();
                    assert_eq!(resp.status, expected, "{name}: {}", String::from_utf8_lossy(&resp.body));
                    out.push((took, resp.headers));
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut headers = Vec::new();
    for w in workers {
        for (took, h) in w.await.unwrap() {
            latencies.push(took);
            headers.push(h);
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu_per(cpu, latencies.len());
    (Figures { cpu, ..figures(name, latencies, elapsed) }, headers)
}

fn figures(name: &str, mut latencies: Vec<Duration>, elapsed: Duration) -> Figures {
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Figures {
        name: name.to_owned(),
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        cpu: None,
    }
}

/// The JTI check's statement from a native client on `concurrency` connections, prepared once: what the
/// database alone can do on this machine, the floor under the component's figures.
async fn database_alone(db_url: &str, concurrency: usize, total: usize, exp: u64) -> Figures {
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (client, connection) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let statement = client.prepare(edgeshell_control_db::sql::JTI_CONSUME).await.unwrap();
        clients.push(Arc::new((client, statement)));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = cpu_now();
    let started = Instant::now();
    let workers: Vec<_> = clients
        .iter()
        .map(|client| {
            let (next, client) = (next.clone(), client.clone());
            tokio::spawn(async move {
                let (client, statement) = &*client;
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return out;
                    }
                    let t = Instant::now();
                    let jti = format!("native-{i}-{exp}");
                    assert_eq!(client.execute(statement, &[&jti, &(exp as f64)]).await.unwrap(), 1);
                    out.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    // Read while the connections are open: a server process that has exited is no longer counted.
    let cpu = cpu_per(cpu, latencies.len());
    drop(clients);
    Figures { cpu, ..figures("jti statement alone (native client)", latencies, elapsed) }
}

/// The JTI check as a native endpoint: hyper and tokio-postgres, no wasm, the same statement on one
/// pipelined connection (the cheapest way found to run it here). What any host of the check could reach
/// on this machine with the same load generator: the ceiling over the component's figures.
async fn native_endpoint(db_url: &str) -> String {
    use hyper::service::service_fn;
    let (client, connection) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let statement = client.prepare(edgeshell_control_db::sql::JTI_CONSUME).await.unwrap();
    let shared = Arc::new((client, statement));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let authorized = req.headers().get("authorization").and_then(|v| v.to_str().ok())
                            == Some(&format!("Bearer {INTERNAL_KEY}"));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let input: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        assert!(authorized);
                        let (jti, exp) = (input["jti"].as_str().unwrap(), input["expires_at"].as_f64().unwrap());
                        let (client, statement) = &*shared;
                        let first = client.execute(statement, &[&jti, &exp]).await.unwrap() == 1;
                        let body =
                            if first { r#"{"first_use":true}"# } else { r#"{"error":{"code":"replayed_token"}}"# };
                        let mut response = http::Response::new(Full::new(bytes::Bytes::from(body)));
                        *response.status_mut() = if first { http::StatusCode::OK } else { http::StatusCode::CONFLICT };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    url
}

/// Mean of the `name` entry's duration per count in `Server-Timing`, in milliseconds.
fn server_timing(headers: &[http::HeaderMap], name: &str) -> (f64, f64) {
    let (mut total_ms, mut count) = (0.0, 0.0);
    for h in headers {
        let value = h.get("server-timing").and_then(|v| v.to_str().ok()).unwrap_or_default();
        for entry in value.split(", ").filter(|e| e.starts_with(&format!("{name};"))) {
            let dur: f64 = entry.split("dur=").nth(1).and_then(|d| d.split(';').next()).unwrap().parse().unwrap();
            let n: f64 = entry.split("desc=\"").nth(1).and_then(|d| d.split(' ').next()).unwrap().parse().unwrap();
            total_ms += dur;
            count += n;
        }
    }
    (total_ms / count.max(1.0), count / headers.len().max(1) as f64)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once as a smoke test, so the
    // benchmark itself stays tested, with a few requests of each kind.
    let full = std::env::args().any(|a| a == "--bench");
    let groups: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |group: &str| groups.is_empty() || groups.iter().any(|g| g == group);
    // `EDGESHELL_BENCH_SCALE=k` runs k times the requests (a longer window for a profiler).
    let env = |name: &str| std::env::var(name).ok();
    let scale: usize = edgeshell_core::settings::Reader::new(edgeshell_core::settings::Program::Dev, &env)
        .number("EDGESHELL_BENCH_SCALE")
        .expect("EDGESHELL_BENCH_SCALE");
    let n = |count: usize| if full { count * scale } else { (count / 100).max(2) };
    let unlimited = "SPIN_VARIABLE_MAX_LIVE_SESSIONS=100000000\nSPIN_VARIABLE_MINTS_PER_MINUTE=100000000\n";
    let stack = Stack::start(unlimited).await;
    let (fast, heartbeat) = fast_pool(&stack).await;
    let url = stack.host.url.clone();
    let mut rows = Vec::new();

    // Warm up every component (compile cache, connection pool).
    let warm: MakeRequest = Arc::new(|_| (Request::new("PUT", "/api/sessions", "", ""), 405));
    load("warm-up", &url, 2, 50, warm).await;

    let baseline: MakeRequest = Arc::new(|_| (Request::new("PUT", "/api/sessions", "", ""), 405));
    rows.push(load("component request (405), baseline", &url, 8, n(2000), baseline).await.0);

    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let jti: MakeRequest = Arc::new(move |i| {
        let body = format!(r#"{{"jti":"bench-{i}-{exp}","expires_at":{exp}}}"#);
        (Request::new("POST", "/internal/jti/consume", INTERNAL_KEY, &body), 200)
    });
    if wanted("jti") {
        rows.push(load("jti consume", &url, 16, n(5000), jti).await.0);
        rows.push(database_alone(&stack.db_url, 16, n(5000), exp).await);
        let native = native_endpoint(&stack.db_url).await;
        let exp2 = exp + 1;
        let jti: MakeRequest = Arc::new(move |i| {
            let body = format!(r#"{{"jti":"native-http-{i}-{exp2}","expires_at":{exp2}}}"#);
            (Request::new("POST", "/internal/jti/consume", INTERNAL_KEY, &body), 200)
        });
        rows.push(load("jti consume, native endpoint", &native, 16, n(5000), jti).await.0);
    }

    let mut breakdowns = Vec::new();
    if wanted("mint") {
        breakdowns.push(("RS256 in the component", mints(&stack, &fast, "", &n, &mut rows).await));
    }
    heartbeat.abort();
    if wanted("signer") {
        let signed = Stack::start_signed(unlimited).await;
        let (fast, heartbeat) = fast_pool(&signed).await;
        breakdowns.push(("RS256 at the signer", mints(&signed, &fast, ", signer", &n, &mut rows).await));
        heartbeat.abort();
    }

    // Instantiation alone, sequentially.
    let dir = support::tempdir::Dir::new("bench");
    let mut cfg = support::config(&dir, "SPIN_VARIABLE_SIGNING_KEY=unused\n");
    cfg.cache_dir = support::shared_cache();
    let host = Host::load(&cfg).unwrap();
    let mut times = Vec::new();
    for _ in 0..n(2000) {
        let t = Instant::now();
        host.instantiate("sessions").await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;

    let base = rows[0].p50.as_secs_f64();
    let base_cpu = rows[0].cpu.map(|(own, db)| own + db).unwrap_or_default().as_secs_f64();
    println!(
        "\n{:<40} {:>10} {:>10} {:>10} {:>12} {:>20} {:>10}",
        "control plane", "ops/s", "p50", "p99", "p50 ratio", "CPU/req (here+db)", "CPU ratio"
    );
    for r in &rows {
        let (cpu, cpu_ratio) = match r.cpu {
            Some((own, db)) => (
                format!("{:.0}+{:.0} us", own.as_secs_f64() * 1e6, db.as_secs_f64() * 1e6),
                format!("{:.2}x", (own + db).as_secs_f64() / base_cpu),
            ),
            None => (String::new(), String::new()),
        };
        println!(
            "{:<40} {:>10.0} {:>8.2}ms {:>8.2}ms {:>11.2}x {:>20} {:>10}",
            r.name,
            r.ops_per_sec,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.p50.as_secs_f64() / base,
            cpu,
            cpu_ratio
        );
    }
    println!(
        "{:<40} {:>10} {:>8.3}ms {:>8.3}ms {:>11.2}x",
        "instantiate the sessions component",
        "",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() * 99 / 100].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() / base
    );
    println!("instantiate mean: {:.3} ms", mean.as_secs_f64() * 1e3);
    for (label, breakdown) in breakdowns {
        println!("\ninside a mint with {label}, one at a time (Server-Timing means per operation):");
        for (name, (ms, count)) in breakdown {
            println!("  {name:<10} {count:>5.1} x {ms:>8.3} ms");
        }
    }
}

/// A pool in region `fast` that accepts every start at once and heartbeats like an agent, so it stays
/// in placement for the whole run.
async fn fast_pool(stack: &Stack) -> (support::stack::Pool, tokio::task::JoinHandle<()>) {
    let fast = stack.add_pool("fast", Mode::Accept).await;
    let (beat_url, key) = (stack.host.url.clone(), fast.key.clone());
    let body = serde_json::json!({ "region": "fast", "agent": fast.pool.agent, "capacity": 100000, "load": 0 });
    let heartbeat = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let auth = format!("Bearer {key}");
            let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
            support::send(&beat_url, "POST", "/api/pools/heartbeat", &headers, body.to_string().into_bytes()).await;
        }
    });
    (fast, heartbeat)
}

/// Mints on `stack` (rows named with `suffix`): one at a time, 4 and 8 in flight with the runner start
/// excluded (a pool that accepts at once), and 4 and 8 in flight with a pool that spawns a process per
/// start. Answers the one-at-a-time `Server-Timing` breakdown.
async fn mints(
    stack: &Stack,
    fast: &support::stack::Pool,
    suffix: &str,
    n: &impl Fn(usize) -> usize,
    rows: &mut Vec<Figures>,
) -> Vec<(&'static str, (f64, f64))> {
    let url = stack.host.url.clone();
    let users: Arc<Vec<String>> = Arc::new((0..64).map(|i| stack.id_token(&format!("bench-{i}"))).collect());
    let u = users.clone();
    let mint: MakeRequest = Arc::new(move |i| (Request::new("POST", "/api/sessions", &u[i % u.len()], "{}"), 201));
    // Warm up: compile cache, connections, the identity provider's keys.
    load("warm-up mint", &url, 2, 20, mint.clone()).await;
    // One at a time first: the component's own timings without waiting for the CPU.
    let (figures, headers) = load(&format!("mint, one at a time{suffix}"), &url, 1, n(50), mint.clone()).await;
    rows.push(figures);
    let breakdown = ["total", "keys", "identity", "sign", "db", "place"]
        .into_iter()
        .map(|name| (name, server_timing(&headers, name)))
        .collect();
    // 4 in flight: the operating point of the target (300 mints/s with p99 <= 20 ms needs both cores
    // busy without a queue); 8 in flight: throughput under a queue.
    for in_flight in [4, 8] {
        let name = format!("mint, {in_flight} in flight{suffix}");
        rows.push(load(&name, &url, in_flight, n(400), mint.clone()).await.0);
    }
    // The runner start included: the pool spawns a process per start.
    fast.pool.set_mode(Mode::Spawn);
    for in_flight in [4, 8] {
        let name = format!("mint, {in_flight} in flight, runner started{suffix}");
        rows.push(load(&name, &url, in_flight, n(200), mint.clone()).await.0);
    }
    // Pools dial out: the same pool, answering either at the edge's route directly (one HTTP hop, as the
    // control plane once called an agent's endpoint) or through the core's pool room (its token check
    // and ledger) and an agent's socket, as production does: the route hands the command to the room in
    // process, as the Worker hands it to its Durable Object. Interleaved, 4 in flight.
    fast.pool.set_mode(Mode::Spawn);
    let jwks = support::request(&url, "GET", "/.well-known/jwks.json").await.2;
    let keys = edgeshell_core::jwks::KeySet::from_json(&jwks).unwrap();
    let room = Arc::new(
        edgeshell_room_host::pool::PoolRoomHost::start(support::stack::TOKEN_ISSUER, keys, &fast.key).await.unwrap(),
    );
    let agent = fast.pool.dial(&room.url(), &fast.key);
    let region = edgeshell_core::ids::RegionId::new("fast").unwrap();
    while room.connected(&region).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut direct, mut dialed) = (Vec::new(), Vec::new());
    // Alternating which goes first, so a machine growing busier or quieter favours neither.
    for round in 1..=4 {
        for dial_out in if round % 2 == 1 { [false, true] } else { [true, false] } {
            if dial_out {
                stack.edge.forward("fast", Some(room.clone()));
                let name = format!("mint, 4 in flight, runner started, dial-out ({round}){suffix}");
                dialed.push(load(&name, &url, 4, n(200), mint.clone()).await.0);
            } else {
                stack.edge.forward("fast", None);
                let name = format!("mint, 4 in flight, runner started, pool at the edge ({round}){suffix}");
                direct.push(load(&name, &url, 4, n(200), mint.clone()).await.0);
            }
        }
    }
    stack.edge.forward("fast", None);
    agent.abort();
    let median = |rows: &[Figures], f: fn(&Figures) -> Duration| {
        let mut v: Vec<Duration> = rows.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    let (p50, p99) = (|r: &Figures| r.p50, |r: &Figures| r.p99);
    println!(
        "dial-out vs pool at the edge{suffix}, runner started, 4 in flight, medians of 4 alternating: p50 {:.2}x, p99 {:.2}x",
        median(&dialed, p50).as_secs_f64() / median(&direct, p50).as_secs_f64(),
        median(&dialed, p99).as_secs_f64() / median(&direct, p99).as_secs_f64(),
    );
    rows.extend(direct);
    rows.extend(dialed);
    breakdown
}

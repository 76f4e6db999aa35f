//! Files through the edge, measured in one run so the figures are ratios, not absolutes:
//!
//! - **direct copy**: the same bytes written over a loopback TCP connection to a reader that discards
//!   them, the baseline without the edge;
//! - **upload**: `PUT /artifacts/{sid}/{path}` with the runner's token through `wrangler dev`: the
//!   Worker registers it with the control plane (Postgres), seals it as it streams it into its local R2
//!   and records what it counted;
//! - **download**: a one-time link asked of the control plane, then `GET` through the Worker, which
//!   opens the sealed object as it streams it out;
//! - **runner memory**: the runner's peak resident memory before and after `edgeshell-files put` of a
//!   large file inside a session.
//!
//! `cargo xtask bench files` runs the full version (100 MB three times each way, 1 GB through a
//! runner); under `cargo test` it runs once with a few MB as a smoke test.

// A benchmark prints its report.
#![allow(clippy::print_stdout)]

use edgeshell_core::protocol::Credential;
use edgeshell_e2e::{Session, Stack, StackOptions};
use edgeshell_room_host::browser::Browser;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../tests/support/runners.rs"]
mod runners;

const USER: &str = "bench-files";

/// Writes `bytes` over loopback TCP to a reader that discards them; the time until it read the last.
async fn direct_copy(bytes: &[u8]) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0usize;
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break total;
            }
            total += n;
        }
    });
    let started = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    drop(socket);
    assert_eq!(reader.await.unwrap(), bytes.len());
    started.elapsed()
}

async fn upload(stack: &Stack, session: &Session, path: &str, bytes: Vec<u8>) -> Duration {
    let token = stack.artifact_put_token(&session.id, &session.region).unwrap();
    let url = format!("{}/artifacts/{}/{path}", stack.edge.url, session.id);
    let started = Instant::now();
    let answer = reqwest::Client::new().put(url).bearer_auth(token.expose()).body(bytes).send().await.unwrap();
    let status = answer.status();
    assert_eq!(status, 201, "{}", answer.text().await.unwrap_or_default());
    started.elapsed()
}

async fn download(stack: &Stack, session: &Session, path: &str, size: usize) -> Duration {
    let body = serde_json::json!({ "session_id": session.id.as_str(), "path": path });
    let link = loop {
        let (status, link) =
            stack.call(reqwest::Method::POST, "/api/artifacts/links", USER, body.clone()).await.unwrap();
        if status == 429 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        assert_eq!(status, 201, "{link}");
        break link;
    };
    let url = link["url"].as_str().unwrap().replacen("wss://", "http://", 1).replacen("ws://", "http://", 1);
    let started = Instant::now();
    let mut answer = reqwest::Client::new().get(url).bearer_auth(link["token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let mut got = 0;
    while let Some(chunk) = answer.chunk().await.unwrap() {
        got += chunk.len();
    }
    assert_eq!(got, size);
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The runner's peak memory before and after `edgeshell-files put` of `size` bytes in a session.
async fn runner_memory(stack: &Stack, size: u64) -> (u64, u64, Duration) {
    let session = stack.mint(USER).await.unwrap();
    let credential = Credential::Token(session.token.expose().to_owned());
    let mut browser = Browser::attach(&session.ws_url, &credential).await.unwrap();
    let runner = runners::runner_pid(&session);
    browser.input(format!("head -c {size} /dev/zero > big.bin; echo MA\"\"DE\n").as_bytes()).await;
    let at = browser.expect_from(0, "MADE", Duration::from_secs(300)).await;
    let before = runners::peak_rss(runner);
    let started = Instant::now();
    browser.input(b"edgeshell-files put big.bin; echo PU\"\"T-$?\n").await;
    let done = browser.expect_from(at, "PUT-", Duration::from_secs(900)).await;
    let took = started.elapsed();
    let status = String::from_utf8_lossy(&browser.output[done..]).chars().next();
    assert_eq!(status, Some('0'), "{}", String::from_utf8_lossy(&browser.output[at..]));
    (before, runners::peak_rss(runner), took)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (size, big, rounds) = if full { (100_000_000, 1_000_000_000, 3) } else { (4_000_000, 8_000_000, 1) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let options = StackOptions {
            control_vars: vec![
                ("ARTIFACT_MAX_BYTES", "2000000000".to_owned()),
                ("ARTIFACT_USER_BYTES", "20000000000".to_owned()),
            ],
            ..StackOptions::default()
        };
        let stack = Stack::start(options).await.unwrap();
        let session = stack.mint(USER).await.unwrap();
        let bytes: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
        let (mut direct, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            direct.push(direct_copy(&bytes).await);
            let path = format!("bench-{round}.bin");
            up.push(upload(&stack, &session, &path, bytes.clone()).await);
            down.push(download(&stack, &session, &path, bytes.len()).await);
        }
        let (direct, up, down) = (median(direct), median(up), median(down));
        let rate = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
        println!("\nfiles through the edge: {} MB, median of {rounds}", size / 1_000_000);
        println!("{:<44} {:>10} {:>12}", "path", "MB/s", "ratio");
        println!("{:<44} {:>10.1} {:>11.2}x  (baseline)", "direct copy (loopback TCP)", rate(direct), 1.0);
        println!(
            "{:<44} {:>10.1} {:>11.3}x",
            "upload through the edge (sealed into R2)",
            rate(up),
            rate(up) / rate(direct)
        );
        println!(
            "{:<44} {:>10.1} {:>11.3}x",
            "download through the edge (opened)",
            rate(down),
            rate(down) / rate(direct)
        );
        let (before, after, took) = runner_memory(&stack, big).await;
        println!(
            "runner peak memory around `edgeshell-files put` of {} MB: {:.1} MiB before, {:.1} MiB after \
             (+{:.2} MiB), {:.1} MB/s",
            big / 1_000_000,
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / 1048576.0,
            big as f64 / 1e6 / took.as_secs_f64()
        );
    });
}

//! What the control plane does for a caller it has not authenticated, attacked over raw TCP against the
//! real components: it answers from the headers alone (no key, no token, or a declared body over the
//! route's limit) without waiting for a byte of the body, stops reading a streamed body at the limit,
//! and gives each client address a token bucket of requests before any authentication, exact under a
//! concurrent flood, that forged addresses cannot dodge.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::stack::{Stack, INTERNAL_KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Long enough for any answer from headers; far too short for the declared body to arrive.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// A body far over every route's own limit (a few KiB) but under the host's (16 MiB), so what answers
/// is the function, which must refuse it unread.
const DECLARED: u64 = 8 << 20;

fn host_addr(stack: &Stack) -> SocketAddr {
    stack.host.url.trim_start_matches("http://").parse().unwrap()
}

/// A connection to the host from the loopback address `from`.
async fn connect(stack: &Stack, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.connect(host_addr(stack)).await.unwrap()
}

/// The head of the response on `stream`: its status and its lower-cased header lines.
async fn read_head(stream: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, read).await.expect("the host answered from the headers alone");
    let text = String::from_utf8_lossy(&head).to_lowercase();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Sends `head` (request line and headers, no blank line) from `from` and no body; the answer's head.
async fn headers_only(stack: &Stack, from: &str, head: &str) -> (u16, String) {
    let mut stream = connect(stack, from).await;
    stream.write_all(format!("{head}\r\nhost: 127.0.0.1\r\n\r\n").as_bytes()).await.unwrap();
    read_head(&mut stream).await
}

/// Sends `head` and `body` (with its length) from `from`; the answer's head.
async fn with_body(stack: &Stack, from: &str, head: &str, body: &str) -> (u16, String) {
    let mut stream = connect(stack, from).await;
    let request = format!("{head}\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).await.unwrap();
    read_head(&mut stream).await
}

fn retry_after(head: &str) -> Option<u64> {
    head.lines().find_map(|l| l.strip_prefix("retry-after:")).and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn bodies_are_read_only_after_authentication_and_only_up_to_the_limit() {
    let stack = Stack::start("").await;
    let token = stack.id_token("alice");
    let declared = |path: &str, auth: &str| format!("POST {path} HTTP/1.1\r\ncontent-length: {DECLARED}{auth}");
    // No credential: refused before the body, on every route that takes one. (A body over the host's
    // own limit never reaches a function: see `jti.rs`.)
    for (path, code) in [
        ("/api/sessions", "missing_id_token"),
        ("/api/artifacts/links", "missing_id_token"),
        ("/api/pools/heartbeat", "missing_api_key"),
        ("/internal/sessions/s_AAAAAAAAAAAAAAAAAAAAAA/ended", "unauthorized"),
        ("/internal/artifacts", "unauthorized"),
        ("/internal/jti/consume", "unauthorized"),
    ] {
        let (status, head) = headers_only(&stack, "127.0.0.1", &declared(path, "")).await;
        assert_eq!(status, 401, "{path}: {head}");
        assert!(head.contains("content-type: application/json"), "{path}: {head}");
        let _ = code;
    }
    // A wrong internal key is as good as none.
    let wrong = declared("/internal/sessions/s_AAAAAAAAAAAAAAAAAAAAAA/ended", "\r\nauthorization: Bearer nope");
    assert_eq!(headers_only(&stack, "127.0.0.1", &wrong).await.0, 401);
    // Authenticated, but declaring more than the route takes: 413 from the header.
    let bearer = format!("\r\nauthorization: Bearer {token}");
    for path in ["/api/sessions", "/api/artifacts/links"] {
        let (status, head) = headers_only(&stack, "127.0.0.1", &declared(path, &bearer)).await;
        assert_eq!(status, 413, "{path}: {head}");
    }
    let internal = format!("\r\nauthorization: Bearer {INTERNAL_KEY}");
    let (status, head) = headers_only(&stack, "127.0.0.1", &declared("/internal/jti/consume", &internal)).await;
    assert_eq!(status, 413, "{head}");
    // A chunked body declares nothing: reading stops just past the limit (4 KiB for a mint).
    let mut stream = connect(&stack, "127.0.0.1").await;
    let head = format!(
        "POST /api/sessions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 1024, "x".repeat(1024));
    let mut sent = 0;
    let answered = loop {
        // The host may stop reading (and answer) at any point past the limit.
        if stream.write_all(chunk.as_bytes()).await.is_err() || sent > 1024 * 1024 {
            break read_head(&mut stream).await;
        }
        sent += 1024;
        let mut peek = [0u8; 1];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(5), stream.peek(&mut peek)).await {
            if n > 0 {
                break read_head(&mut stream).await;
            }
        }
    };
    assert_eq!(answered.0, 413, "{}", answered.1);
    assert!(sent < 256 * 1024, "the host read {sent} bytes of a body limited to 4 KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn each_address_gets_a_bucket_before_authentication_exact_under_a_flood() {
    let stack = Stack::start("SPIN_VARIABLE_PREAUTH_BURST=10\nSPIN_VARIABLE_PREAUTH_PER_MINUTE=1\n").await;
    let token = stack.id_token("alice");
    // Fifty at once from one address, all with a token that fails: exactly the burst is authenticated.
    let flood = (0..50)
        .map(|_| headers_only(&stack, "127.0.0.1", "GET /api/sessions HTTP/1.1\r\nauthorization: Bearer not-a-token"));
    let answers = futures_util::future::join_all(flood).await;
    let count = |status: u16| answers.iter().filter(|(s, _)| *s == status).count();
    assert_eq!((count(401), count(429)), (10, 40), "{:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    for (_, head) in answers.iter().filter(|(s, _)| *s == 429) {
        assert!(retry_after(head).is_some_and(|secs| (1..=60).contains(&secs)), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
    }
    // The limit comes before authentication: a good token from that address waits too, on every
    // public route.
    let good = format!("GET /api/sessions HTTP/1.1\r\nauthorization: Bearer {token}");
    assert_eq!(headers_only(&stack, "127.0.0.1", &good).await.0, 429);
    assert_eq!(headers_only(&stack, "127.0.0.1", "GET /api/regions HTTP/1.1").await.0, 429);
    assert_eq!(
        headers_only(&stack, "127.0.0.1", "POST /api/pools/heartbeat HTTP/1.1\r\ncontent-length: 0").await.0,
        429
    );
    // Forged addresses change nothing: the host's own header, a proxy header nobody is trusted to set,
    // or the edge's header without the internal key.
    for forged in [
        "\r\nspin-client-addr: 198.51.100.1:9",
        "\r\nx-forwarded-for: 198.51.100.2",
        "\r\nx-edgeshell-client-ip: 198.51.100.3\r\nx-edgeshell-edge-key: guessed",
    ] {
        let head = format!("GET /api/sessions HTTP/1.1\r\nauthorization: Bearer {token}{forged}");
        assert_eq!(headers_only(&stack, "127.0.0.1", &head).await.0, 429, "{forged}");
    }
    // Internal routes are not limited this way (they refuse everything without the key, at no cost).
    let ended = format!(
        "POST /internal/sessions/s_AAAAAAAAAAAAAAAAAAAAAA/ended HTTP/1.1\r\nauthorization: Bearer {INTERNAL_KEY}"
    );
    assert_ne!(with_body(&stack, "127.0.0.1", &ended, "{}").await.0, 429);
    // Another address has its own bucket; so does a browser the edge vouches for.
    let own = format!("GET /api/sessions HTTP/1.1\r\nauthorization: Bearer {token}");
    assert_eq!(headers_only(&stack, "127.0.0.2", &own).await.0, 200);
    let vouched = format!("{own}\r\nx-edgeshell-client-ip: 203.0.113.5\r\nx-edgeshell-edge-key: {INTERNAL_KEY}");
    assert_eq!(headers_only(&stack, "127.0.0.1", &vouched).await.0, 200);
}

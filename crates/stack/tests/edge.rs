//! The edge gateway Worker, built by worker-build, under a real `wrangler dev` (workerd).

use edgeshell_stack::EdgeGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 GET, answered in full.
async fn raw_get(url: &str, path: &str) -> String {
    let authority = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn get_json(url: &str, path: &str) -> (u16, serde_json::Value) {
    let text = raw_get(url, path).await;
    let status = text[9..12].parse().unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    // Chunked or not, the JSON object is the part between the outer braces.
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    (status, serde_json::from_str(json).unwrap())
}

#[tokio::test]
#[ignore = "needs wrangler dev: cargo xtask test"]
async fn the_worker_answers_under_wrangler_dev() {
    let edge = EdgeGateway::start().await.unwrap();
    let (status, body) = get_json(&edge.url, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!((body["ok"].as_bool(), body["protocol"].as_str()), (Some(true), Some("edgeshell.v1")));
    let (status, body) = get_json(&edge.url, "/nowhere").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    // The web client's static assets are served by the platform.
    let page = raw_get(&edge.url, "/").await;
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("<title>edgeshell</title>"), "{page}");
}

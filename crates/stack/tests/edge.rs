//! The edge gateway Worker, built by worker-build, under a real `wrangler dev` (workerd).

use edgeshell_stack::EdgeGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(url: &str, path: &str) -> (u16, serde_json::Value) {
    let authority = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    // Chunked or not, the JSON object is the part between the outer braces.
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    (status, serde_json::from_str(json).unwrap())
}

#[tokio::test]
async fn the_worker_answers_under_wrangler_dev() {
    let edge = EdgeGateway::start().await.unwrap();
    let (status, body) = get(&edge.url, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!((body["ok"].as_bool(), body["protocol"].as_str()), (Some(true), Some("edgeshell.v1")));
    let (status, body) = get(&edge.url, "/nowhere").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

//! A loopback HTTP proxy in front of the control plane's JWKS for tests that count the edge's key
//! fetches or take the issuer down: every request is counted, while "down" it answers 503 without
//! asking upstream, it can answer slowly, and it can answer with a redirect elsewhere (an attacker's keys), which a client
//! must not follow.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; stops when dropped.
pub struct JwksProxy {
    /// The URL to give the edge as its JWKS URL.
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    upstream: String,
    requests: AtomicU64,
    down: AtomicBool,
    redirect: std::sync::Mutex<Option<String>>,
    delay_ms: AtomicU64,
    http: reqwest::Client,
}

impl Drop for JwksProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksProxy {
    /// Proxies `GET <url>` to `upstream`.
    pub async fn start(upstream: &str) -> anyhow::Result<JwksProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr()?);
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            requests: AtomicU64::new(0),
            down: AtomicBool::new(false),
            redirect: std::sync::Mutex::new(None),
            delay_ms: AtomicU64::new(0),
            http: reqwest::Client::new(),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(serving.clone(), stream));
            }
        });
        Ok(JwksProxy { url, state, task })
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Answers every request with `302 Found` to `to` (or proxies again with `None`).
    pub fn redirect_to(&self, to: Option<&str>) {
        *self.state.redirect.lock().unwrap_or_else(|e| e.into_inner()) = to.map(str::to_owned);
    }

    /// Answers every request only after `delay` (a slow issuer).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Takes the issuer down (503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

async fn answer(state: Arc<State>, mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(state.delay_ms.load(Ordering::SeqCst))).await;
    let redirect = state.redirect.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(to) = redirect {
        let head = format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    }
    let (status, body) = if state.down.load(Ordering::SeqCst) {
        let down = edgeshell_core::api_error::ApiError::new(
            edgeshell_core::api_error::ErrorCode::ControlUnavailable,
            "taken down by the test",
        );
        (down.status(), down.body())
    } else {
        match state.http.get(&state.upstream).send().await {
            Ok(r) => (r.status().as_u16(), r.bytes().await.map(|b| b.to_vec()).unwrap_or_default()),
            Err(_) => (502, Vec::new()),
        }
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

//! A faulty network path from the control plane to one region's pool agent: the agent advertises this
//! proxy as its endpoint (`EDGESHELL_POOL_ENDPOINT`), and the test switches the path between passing
//! requests, delaying them (a slow region) and refusing them (a region that turns starts away with 503).
//! Delayed requests still arrive late, as on a slow network, so a start the control plane gave up on
//! reaches the agent afterwards.

use edgeshell_core::api_error::{ApiError, ErrorCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// How the path behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMode {
    /// Requests pass.
    Pass,
    /// Each connection waits this long before it is forwarded.
    Delay(Duration),
    /// Each request is answered `503` by the path itself.
    Refuse,
}

#[derive(Debug)]
struct State {
    mode: PathMode,
    upstream: Option<String>,
}

/// The proxy; stops when dropped.
pub struct PoolProxy {
    /// `http://127.0.0.1:<port>`, what the agent advertises.
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PoolProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PoolProxy {
    /// Listens on a free loopback port; requests fail until [`PoolProxy::set_upstream`].
    pub async fn start() -> anyhow::Result<PoolProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State { mode: PathMode::Pass, upstream: None }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (mode, upstream) = {
                    let s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    (s.mode, s.upstream.clone())
                };
                tokio::spawn(serve(client, mode, upstream));
            }
        });
        Ok(PoolProxy { url, state, task })
    }

    /// Where requests go (the agent's own `http://host:port`).
    pub fn set_upstream(&self, url: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).upstream =
            Some(url.trim_start_matches("http://").to_owned());
    }

    /// Switches the behaviour for new connections.
    pub fn set_mode(&self, mode: PathMode) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).mode = mode;
    }
}

async fn serve(mut client: TcpStream, mode: PathMode, upstream: Option<String>) {
    match mode {
        PathMode::Refuse => {
            let refusal = ApiError::new(ErrorCode::Draining, "the region refuses starts");
            let body = String::from_utf8_lossy(&refusal.body()).into_owned();
            let answer = format!(
                "HTTP/1.1 {} Refused\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                refusal.status(),
                body.len()
            );
            // The request is read by nobody: a refusing front end answers at once.
            let _ = client.write_all(answer.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        PathMode::Delay(delay) => {
            tokio::time::sleep(delay).await;
            forward(client, upstream).await;
        }
        PathMode::Pass => forward(client, upstream).await,
    }
}

async fn forward(mut client: TcpStream, upstream: Option<String>) {
    let Some(addr) = upstream else { return };
    if let Ok(mut agent) = TcpStream::connect(addr).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
    }
}

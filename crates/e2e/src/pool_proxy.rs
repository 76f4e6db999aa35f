//! A faulty network path between one pool agent and the edge: the agent dials the edge through this
//! proxy (`EDGESHELL_POOL_EDGE_URL`), and the test switches the path between passing bytes, delaying
//! what the edge sends (a slow region: commands arrive late, answers do not come in time) and being
//! down (connections cut without a close frame, new ones refused), and cuts the connections it carries
//! at will (a socket lost and dialled again).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the path behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMode {
    /// Bytes pass.
    Pass,
    /// What the edge sends reaches the agent this much later.
    Delay(Duration),
    /// Every connection is cut and new ones are refused.
    Down,
}

#[derive(Debug)]
struct State {
    mode: PathMode,
    upstream: String,
    carried: Vec<tokio::task::JoinHandle<()>>,
}

/// The proxy; stops when dropped.
pub struct PoolProxy {
    /// `http://127.0.0.1:<port>`, the agent's edge URL.
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PoolProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

impl PoolProxy {
    /// Listens on a free loopback port and passes to `upstream` (`http://host:port`, the edge).
    pub async fn start(upstream: &str) -> anyhow::Result<PoolProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let state = Arc::new(Mutex::new(State { mode: PathMode::Pass, upstream, carried: Vec::new() }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                if s.mode == PathMode::Down {
                    continue;
                }
                let carried = tokio::spawn(carry(client, s.upstream.clone(), shared.clone()));
                s.carried.retain(|t| !t.is_finished());
                s.carried.push(carried);
            }
        });
        Ok(PoolProxy { url, state, task })
    }

    /// Switches the behaviour; `Down` cuts what it carries now.
    pub fn set_mode(&self, mode: PathMode) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).mode = mode;
        if mode == PathMode::Down {
            self.cut();
        }
    }

    /// Cuts every connection it carries, without a close frame (the agent dials again).
    pub fn cut(&self) {
        for task in self.state.lock().unwrap_or_else(|p| p.into_inner()).carried.drain(..) {
            task.abort();
        }
    }
}

async fn carry(client: TcpStream, upstream: String, state: Arc<Mutex<State>>) {
    let Ok(edge) = TcpStream::connect(upstream).await else { return };
    let (mut from_agent, mut to_agent) = client.into_split();
    let (mut from_edge, mut to_edge) = edge.into_split();
    let up = async move {
        let _ = tokio::io::copy(&mut from_agent, &mut to_edge).await;
    };
    let down = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match from_edge.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mode = state.lock().unwrap_or_else(|p| p.into_inner()).mode;
            if let PathMode::Delay(delay) = mode {
                tokio::time::sleep(delay).await;
            }
            if to_agent.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

//! The agent's one outbound connection: a WebSocket to its region's pool room at the edge
//! (`/pools/{region}/connect`, the pool key as `Bearer`, the agent's name in `x-edgeshell-agent`). It
//! says hello with what it holds, reports its load every [`REPORT_EVERY`] (its liveness) and whenever
//! its runners change, and carries
//! out the commands it is sent, answering each by id. Nothing connects in to the agent.
//!
//! Every command is verified here as well ([`CommandCheck`]: the control plane's signature, this region,
//! the exact body), so the edge can route commands but not make them. A lost connection is dialled
//! again after the core's [`Backoff`] (full jitter); the room settles what was in flight (a start is
//! never resent, a stop is resent until answered, and stops are idempotent here).

use crate::agent::Agent;
use crate::backend::RunnerBackend;
use crate::commands::CommandCheck;
use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::machine::{Backoff, Jitter};
use edgeshell_core::pool_api::{AgentMessage, AgentReport, PoolCommand, RoomMessage, AGENT_HEADER, REPORT_EVERY};
use edgeshell_core::secret::Secret;
use edgeshell_platform::clock;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Reconnect delays.
pub const RECONNECT: Backoff =
    Backoff { base: Duration::from_millis(200), cap: Duration::from_secs(10), floor: Duration::from_millis(50) };
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
/// How long the handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// A connection from which nothing (not even a pong) came for this long is given up.
const SILENCE: Duration = Duration::from_secs(3 * REPORT_EVERY.as_secs());
/// The largest message taken from the room (a start command is a few KiB).
const MAX_MESSAGE: usize = 256 * 1024;

/// Where and as whom to dial.
pub struct Dialer {
    /// `ws(s)://edge/pools/{region}/connect`.
    pub url: String,
    /// The pool key.
    pub key: Secret,
    /// The agent's name.
    pub agent: String,
}

/// What a connection attempt came to.
#[derive(Debug)]
enum Ended {
    /// The edge refused the upgrade with this status (401/403: the key).
    Refused(u16, String),
    /// Network, TLS, or the connection closed.
    Lost(String),
}

impl Dialer {
    /// The dialer for `edge_url` (`https://` becomes `wss://`, `http://` `ws://`).
    pub fn new(edge_url: &str, region: &edgeshell_core::ids::RegionId, key: Secret, agent: String) -> Dialer {
        let ws = if let Some(rest) = edge_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", edge_url.strip_prefix("http://").unwrap_or(edge_url))
        };
        Dialer { url: format!("{ws}{}", edgeshell_core::pool_api::pool_connect_path(region)), key, agent }
    }

    /// Keeps the connection up forever (until the task is dropped).
    pub async fn run<B: RunnerBackend>(&self, agent: Arc<Agent<B>>, commands: Arc<CommandCheck>) {
        let mut jitter = Jitter::new(rand::random());
        let mut attempt = 0u32;
        loop {
            let began = Instant::now();
            let ended = self.connect_once(&agent, &commands).await;
            agent.metrics.edge_connected(false);
            if began.elapsed() >= STABLE {
                attempt = 0;
            }
            attempt = attempt.saturating_add(1);
            let mut wait = RECONNECT.delay(attempt, jitter.next_u32());
            match &ended {
                Ended::Refused(status @ (401 | 403), body) => {
                    tracing::error!(status, %body, "the edge refused this pool's key or region; no commands can reach this agent");
                    wait = wait.max(Duration::from_secs(5));
                }
                Ended::Refused(status, body) => tracing::warn!(status, %body, "the edge refused the connection"),
                Ended::Lost(why) => tracing::warn!(reason = %why, "the edge connection is down"),
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn connect_once<B: RunnerBackend>(&self, agent: &Arc<Agent<B>>, commands: &Arc<CommandCheck>) -> Ended {
        use tokio_tungstenite::tungstenite::Error;
        let mut request = match self.url.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => return Ended::Lost(format!("bad edge URL: {e}")),
        };
        let headers = request.headers_mut();
        for (name, value) in
            [("authorization", format!("Bearer {}", self.key.expose())), (AGENT_HEADER, self.agent.clone())]
        {
            match value.parse() {
                Ok(v) => {
                    headers.insert(name, v);
                }
                Err(_) => return Ended::Lost(format!("{name} is not a header value")),
            }
        }
        let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        config.max_message_size = Some(MAX_MESSAGE);
        config.max_frame_size = Some(MAX_MESSAGE);
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let socket = match tokio::time::timeout(HANDSHAKE, connect).await {
            Err(_) => return Ended::Lost(format!("no handshake within {HANDSHAKE:?}")),
            Ok(Ok((socket, _))) => socket,
            Ok(Err(Error::Http(response))) => {
                let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                return Ended::Refused(response.status().as_u16(), body.chars().take(300).collect());
            }
            Ok(Err(e)) => return Ended::Lost(e.to_string()),
        };
        tracing::info!(url = %self.url, agent = %self.agent, "connected to the edge");
        agent.metrics.edge_connected(true);
        let (mut sink, mut stream) = socket.split();
        let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel::<String>();
        if let Err(e) = sink.send(Message::text(report(agent, true))).await {
            return Ended::Lost(e.to_string());
        }
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.tick().await;
        // Any frame from the edge (a command, a pong to our pings) shows the connection is alive; a
        // half-open connection is given up after SILENCE instead of when TCP gives up.
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        heard = Instant::now();
                        match serde_json::from_str::<RoomMessage>(&text) {
                            Ok(RoomMessage::Command { id, token, body }) => {
                                let (agent, commands, answers) = (agent.clone(), commands.clone(), answers.clone());
                                tokio::spawn(async move {
                                    let (status, body) = carry_out(&agent, &commands, &token, &body).await;
                                    let answer = AgentMessage::Answer { id, status, body };
                                    if let Ok(json) = serde_json::to_string(&answer) {
                                        let _ = answers.send(json);
                                    }
                                });
                            }
                            Err(e) => tracing::warn!(error = %e, "an unreadable message from the edge"),
                        }
                    }
                    Some(Ok(Message::Close(frame))) => return Ended::Lost(format!("closed by the edge: {frame:?}")),
                    Some(Ok(_)) => heard = Instant::now(),
                    Some(Err(e)) => return Ended::Lost(e.to_string()),
                    None => return Ended::Lost("the connection ended".into()),
                },
                Some(json) = answered.recv() => {
                    if let Err(e) = sink.send(Message::text(json)).await {
                        return Ended::Lost(e.to_string());
                    }
                }
                // Every REPORT_EVERY, and at once when its runners change (a freed slot is placeable).
                _ = tick.tick() => {
                    if heard.elapsed() >= SILENCE {
                        return Ended::Lost(format!("nothing from the edge for {:?}", heard.elapsed()));
                    }
                    if let Err(e) = sink.send(Message::text(report(agent, false))).await {
                        return Ended::Lost(e.to_string());
                    }
                    if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                        return Ended::Lost(e.to_string());
                    }
                }
                _ = agent.changed.notified() => {
                    if let Err(e) = sink.send(Message::text(report(agent, false))).await {
                        return Ended::Lost(e.to_string());
                    }
                }
            }
        }
    }
}

/// The agent's hello or status, as JSON.
fn report<B: RunnerBackend>(agent: &Agent<B>, hello: bool) -> String {
    let report = AgentReport {
        capacity: agent.capacity(),
        load: agent.load(),
        draining: agent.draining(),
        runners: agent.runners().into_iter().map(|r| r.session_id).collect(),
    };
    let message = if hello { AgentMessage::Hello(report) } else { AgentMessage::Status(report) };
    serde_json::to_string(&message).unwrap_or_default()
}

/// Verifies and carries out one command: its answer's status and JSON body.
pub async fn carry_out<B: RunnerBackend>(
    agent: &Agent<B>,
    commands: &CommandCheck,
    token: &Secret,
    body: &str,
) -> (u16, String) {
    let error = |e: &ApiError| (e.status(), String::from_utf8_lossy(&e.body()).into_owned());
    let command = match commands.check(Some(token.expose()), body.as_bytes(), None, clock::now()).await {
        Ok(command) => command,
        Err(rejection) => {
            agent.metrics.rejected(rejection.status());
            tracing::warn!(status = rejection.status(), code = rejection.code.name(), reason = %rejection.message, "command refused");
            return error(&rejection);
        }
    };
    agent.metrics.command(matches!(command, PoolCommand::Start(_)));
    match command {
        PoolCommand::Start(start) => match agent.start(start).await {
            Ok(started) => (201, serde_json::to_string(&started).unwrap_or_default()),
            Err(e) => error(&e),
        },
        PoolCommand::Stop { session_id, reason } => match agent.stop(&session_id, &reason).await {
            Ok(()) => (200, serde_json::json!({ "session_id": session_id, "stopped": true }).to_string()),
            Err(e) => error(&ApiError::new(ErrorCode::RunnerStopFailed, e.to_string())),
        },
        PoolCommand::Extend { session_id, deadline } => match agent.extend(&session_id, deadline).await {
            Ok(deadline) => (200, serde_json::json!({ "session_id": session_id, "deadline": deadline }).to_string()),
            Err(e) => error(&e),
        },
    }
}

//! A native host for the core's pool room: serves the edge's `/pools/{region}/connect` WebSocket route
//! on loopback (the pool key checked against the one it was given) and takes commands as the edge's
//! internal route does ([`PoolRoomHost::submit`]: the `pool:command` token verified against a key set,
//! then the machine's answer). The pool agent's tests and benchmarks dial it as they dial the edge;
//! production's host is the `PoolRoom` Durable Object, and both are thin glue over the same
//! `edgeshell_core::pool_room::PoolRoom`.
//!
//! One Tokio task per region owns its machine and the ledger's rows as the Durable Object stores them,
//! written change by change ([`PoolRoomHost::restart`] brings the machine back from those rows, as an
//! evicted object comes back); connections feed it events through a channel.

use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::ids::RegionId;
use edgeshell_core::jwks::KeySet;
use edgeshell_core::machine::StateMachine;
use edgeshell_core::pool_api::{check_agent_name, AgentMessage, PoolCommand, AGENT_HEADER};
use edgeshell_core::pool_ledger::{Changes, Kind, Payload};
use edgeshell_core::pool_room::{
    AgentConn, Effect, Event, PoolRoom, PoolRoomConfig, Reply, Submission, Submitted, WaiterId,
};
use edgeshell_core::secret::Secret;
use edgeshell_core::tokens::Validator;
use edgeshell_keys::{now_or_never, RingVerifier};
use edgeshell_platform::clock::{self, now};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// A running pool room host; stops when dropped.
pub struct PoolRoomHost {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) struct Shared {
    /// The control plane's internal key, for `POST /internal/pools/{region}/commands`.
    internal_key: String,
    issuer: String,
    keys: KeySet,
    pool_key: Mutex<String>,
    config: PoolRoomConfig,
    rooms: Mutex<HashMap<RegionId, Region>>,
    next: AtomicU64,
    /// Open agent connections by region and name, with the switch that cuts each.
    live: Mutex<HashMap<AgentConn, LiveAgent>>,
}

/// An open agent connection's region, name, and the switch that cuts it.
type LiveAgent = (RegionId, String, oneshot::Sender<()>);

struct Region {
    inputs: mpsc::UnboundedSender<Input>,
    task: tokio::task::JoinHandle<()>,
    /// The ledger's rows as last stored.
    stored: Arc<Mutex<Rows>>,
}

/// A ledger's stored rows: (kind, key) to value.
type Rows = std::collections::BTreeMap<(&'static str, String), String>;

enum Input {
    Open { conn: AgentConn, agent: String, outbox: mpsc::UnboundedSender<Message> },
    Event(Event),
    Submit { waiter: WaiterId, command: Submission, reply: oneshot::Sender<Reply> },
}

impl Drop for PoolRoomHost {
    fn drop(&mut self) {
        self.task.abort();
        for region in self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).values() {
            region.task.abort();
        }
    }
}

impl PoolRoomHost {
    /// Serves on `127.0.0.1` at a free port: agents present `pool_key`; commands are `pool:command`
    /// tokens from `issuer` signed by a key in `keys`.
    pub async fn start(issuer: &str, keys: KeySet, pool_key: &str) -> std::io::Result<PoolRoomHost> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = shared(issuer, keys, pool_key, "");
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(serve(accepting.clone(), stream));
            }
        });
        Ok(PoolRoomHost { addr, shared, task })
    }

    /// A host sharing another server's listener (the session room host's, so one origin serves both
    /// as the edge does); `internal_key` guards the HTTP command route.
    pub(crate) fn beside(addr: SocketAddr, shared: Arc<Shared>) -> PoolRoomHost {
        PoolRoomHost { addr, shared, task: tokio::spawn(async {}) }
    }
}

/// The state of a pool room host.
pub(crate) fn shared(issuer: &str, keys: KeySet, pool_key: &str, internal_key: &str) -> Arc<Shared> {
    Arc::new(Shared {
        internal_key: internal_key.to_owned(),
        issuer: issuer.to_owned(),
        keys,
        pool_key: Mutex::new(pool_key.to_owned()),
        config: PoolRoomConfig::DEFAULT,
        rooms: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
        live: Mutex::new(HashMap::new()),
    })
}

impl PoolRoomHost {
    /// `http://127.0.0.1:<port>`, the agent's `EDGESHELL_POOL_EDGE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Submits a command as the control plane does (`POST /internal/pools/{region}/commands`): the
    /// answer's status and JSON body.
    pub async fn submit(&self, region: &RegionId, token: &str, body: &str, wait: Duration) -> (u16, String) {
        submit(&self.shared, region, token, body, wait).await
    }

    /// Hands a command to `region`'s agents without verifying it, as a compromised edge could: the agent's
    /// own checks are then all that stands (a body that is not a command counts as a start).
    pub async fn submit_unverified(&self, region: &RegionId, token: &str, body: &str, wait: Duration) -> (u16, String) {
        let kind = match serde_json::from_str::<PoolCommand>(body) {
            Ok(PoolCommand::Stop { .. } | PoolCommand::Extend { .. }) => Kind::ToHolder,
            _ => Kind::Start,
        };
        let session = serde_json::from_str::<PoolCommand>(body)
            .map(|c| c.session().clone())
            .unwrap_or_else(|_| edgeshell_core::issue::session_id([0; 16]));
        let unique = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let command = Submission {
            kind,
            session,
            jti: format!("unverified-{unique}"),
            forget_after: now() + Duration::from_secs(120),
            payload: Payload { token: Secret::new(token), body: body.to_owned() },
        };
        wait_for(&self.shared, region, command, wait).await
    }

    /// Accepts `key` (only) from connecting agents from now on (connected ones stay).
    pub fn accept_key(&self, key: &str) {
        *self.shared.pool_key.lock().unwrap_or_else(|e| e.into_inner()) = key.to_owned();
    }

    /// Cuts every connection of agent `name` without a close frame, as a network failure would; returns
    /// how many were cut.
    pub fn cut(&self, name: &str) -> usize {
        let mut live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner());
        let doomed: Vec<AgentConn> = live.iter().filter(|(_, (_, a, _))| a == name).map(|(c, _)| *c).collect();
        for conn in &doomed {
            if let Some((_, _, switch)) = live.remove(conn) {
                let _ = switch.send(());
            }
        }
        doomed.len()
    }

    /// The agents connected to `region`'s room now, by name.
    pub fn connected(&self, region: &RegionId) -> Vec<String> {
        let live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = live.values().filter(|(r, _, _)| r == region).map(|(_, a, _)| a.clone()).collect();
        names.sort();
        names
    }

    /// Restarts `region`'s room from its stored ledger, as an evicted object comes back: its agents'
    /// connections drop (they dial again), what it remembers is what it stored.
    pub fn restart(&self, region: &RegionId) {
        let names: Vec<String> = {
            let live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner());
            live.values().filter(|(r, _, _)| r == region).map(|(_, a, _)| a.clone()).collect()
        };
        for name in names {
            self.cut(&name);
        }
        let mut rooms = self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = rooms.remove(region) {
            old.task.abort();
            let rows = old.stored.lock().unwrap_or_else(|e| e.into_inner()).clone();
            rooms.insert(region.clone(), spawn_room(self.shared.config, rows));
        }
    }
}

/// The command route's work: verify as the edge does, then wait for the machine's answer.
async fn submit(shared: &Arc<Shared>, region: &RegionId, token: &str, body: &str, wait: Duration) -> (u16, String) {
    let answer = |e: ApiError| (e.status(), String::from_utf8_lossy(&e.body()).into_owned());
    let submitted = match Submitted::read(&shared.issuer, region, body.to_owned()) {
        Ok(s) => s,
        Err(e) => return answer(e),
    };
    let validator = Validator::new(submitted.options.clone());
    let verified =
        match now_or_never(validator.verify(token, &shared.keys, &RingVerifier, submitted.expectation(), now())) {
            Ok(v) => v,
            Err(e) => return answer(ApiError::new(ErrorCode::Unauthorized, format!("command token refused: {e}"))),
        };
    let command = match submitted.verified(&verified, Secret::new(token)) {
        Ok(command) => command,
        Err(e) => return answer(e),
    };
    wait_for(shared, region, command, wait).await
}

async fn wait_for(shared: &Arc<Shared>, region: &RegionId, command: Submission, wait: Duration) -> (u16, String) {
    let waiter = WaiterId(shared.next.fetch_add(1, Ordering::Relaxed));
    let (reply, answer) = oneshot::channel();
    let inputs = inputs(shared, region);
    if inputs.send(Input::Submit { waiter, command, reply }).is_err() {
        return Reply::NoAgent("the pool room is gone".into()).into_http();
    }
    let reply = match tokio::time::timeout(wait, answer).await {
        Ok(Ok(reply)) => reply,
        _ => {
            let _ = inputs.send(Input::Event(Event::WaitOver { waiter }));
            Reply::TimedOut
        }
    };
    reply.into_http()
}

fn inputs(shared: &Arc<Shared>, region: &RegionId) -> mpsc::UnboundedSender<Input> {
    let mut rooms = shared.rooms.lock().unwrap_or_else(|e| e.into_inner());
    rooms.entry(region.clone()).or_insert_with(|| spawn_room(shared.config, Rows::new())).inputs.clone()
}

/// A region's room over the ledger its `rows` hold (none: a new one).
fn spawn_room(config: PoolRoomConfig, rows: Rows) -> Region {
    let (inputs, inbox) = mpsc::unbounded_channel();
    let mut ledger = PoolRoom::new_ledger(&config);
    let read = rows.iter().map(|((kind, key), value)| (*kind, key.as_str(), value.as_str()));
    // The rows are this host's own writes: they read back.
    ledger.apply(Changes::from_rows(read).expect("the rows this host wrote read back"));
    let stored = Arc::new(Mutex::new(rows));
    let task = tokio::spawn(run_room(PoolRoom::new(config, ledger, now()), inbox, stored.clone()));
    Region { inputs, task, stored }
}

/// Writes what changed in `room`'s ledger into `rows`, as the Durable Object writes its table.
fn store(room: &mut PoolRoom, rows: &Mutex<Rows>) {
    let mut rows = rows.lock().unwrap_or_else(|e| e.into_inner());
    for row in room.take_changes().into_rows() {
        let key = (row.kind.name(), row.key);
        match row.value {
            Some(value) => rows.insert(key, value),
            None => rows.remove(&key),
        };
    }
}

async fn run_room(mut room: PoolRoom, mut inbox: mpsc::UnboundedReceiver<Input>, stored: Arc<Mutex<Rows>>) {
    let mut conns: HashMap<AgentConn, mpsc::UnboundedSender<Message>> = HashMap::new();
    let mut waiters: HashMap<WaiterId, oneshot::Sender<Reply>> = HashMap::new();
    loop {
        let alarm = room.poll_timeout();
        let sleep = async {
            match alarm {
                Some(at) => tokio::time::sleep(clock::until(at)).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            input = inbox.recv() => match input {
                Some(Input::Open { conn, agent, outbox }) => {
                    conns.insert(conn, outbox);
                    Some(Event::Connected { conn, agent })
                }
                Some(Input::Event(event)) => Some(event),
                Some(Input::Submit { waiter, command, reply }) => {
                    waiters.insert(waiter, reply);
                    Some(Event::Submit { waiter, command })
                }
                None => return,
            },
            _ = sleep => None,
        };
        if let Some(Event::Gone { conn }) = &event {
            conns.remove(conn);
        }
        let effects = match event {
            Some(event) => room.handle_event(event, now()),
            None => room.handle_timeout(now()),
        };
        for effect in effects {
            match effect {
                Effect::Store => store(&mut room, &stored),
                Effect::Send { conn, message } => {
                    if let (Some(out), Ok(json)) = (conns.get(&conn), serde_json::to_string(&message)) {
                        let _ = out.send(Message::text(json));
                    }
                }
                Effect::Reply { waiter, reply } => {
                    if let Some(tx) = waiters.remove(&waiter) {
                        let _ = tx.send(reply);
                    }
                }
                Effect::Close { conn, reason } => {
                    if let Some(out) = conns.remove(&conn) {
                        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                            reason: reason.into(),
                        };
                        let _ = out.send(Message::Close(Some(frame)));
                    }
                }
            }
        }
    }
}

fn refusal(error: &ApiError) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(String::from_utf8_lossy(&error.body()).into_owned()));
    *response.status_mut() = http::StatusCode::from_u16(error.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}

/// Serves one connection: a `POST` of the command route, else an agent's upgrade.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let mut head = [0u8; 8];
    if matches!(stream.peek(&mut head).await, Ok(n) if head[..n].starts_with(b"POST ")) {
        serve_command(shared, stream).await;
    } else {
        serve_agent(shared, stream).await;
    }
}

/// `POST /internal/pools/{region}/commands` (internal key, a `CommandRequest`), answered once and closed:
/// HTTP/1.1 just enough for the control plane's client.
async fn serve_command(shared: Arc<Shared>, mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
        if buffer.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default().to_owned();
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body: Vec<u8> = if chunked {
        // Chunks until the empty one (no trailers expected).
        loop {
            if let Some(body) = dechunk(&buffer[head_end..]) {
                break body;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            if buffer.len() > 128 * 1024 {
                return;
            }
        }
    } else {
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0).min(64 * 1024);
        while buffer.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer[head_end..head_end + length].to_vec()
    };
    let body = &body[..];
    let error = |code, message: &str| {
        let e = ApiError::new(code, message);
        (e.status(), String::from_utf8_lossy(&e.body()).into_owned())
    };
    let presented = header("authorization").unwrap_or_default();
    let (status, answer) = if shared.internal_key.is_empty()
        || !bool::from(subtle_eq(
            presented.strip_prefix("Bearer ").unwrap_or_default().as_bytes(),
            shared.internal_key.as_bytes(),
        )) {
        error(ErrorCode::Unauthorized, "missing or wrong internal API key")
    } else {
        match path.strip_prefix("/internal/pools/").and_then(|p| p.strip_suffix("/commands")).map(RegionId::new) {
            Some(Ok(region)) => match serde_json::from_slice::<edgeshell_core::pool_api::CommandRequest>(body) {
                Ok(request) => {
                    let wait =
                        Duration::from_millis(request.wait_ms.clamp(1, edgeshell_core::pool_api::MAX_COMMAND_WAIT_MS));
                    submit(&shared, &region, request.token.expose(), &request.body, wait).await
                }
                Err(e) => error(ErrorCode::BadRequest, &format!("not a command request: {e}")),
            },
            Some(Err(e)) => error(ErrorCode::BadRegion, &e.to_string()),
            None => error(ErrorCode::NotFound, "no such route"),
        }
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

// The callback's error type is tungstenite's HTTP response, as its `Callback` trait requires.
#[allow(clippy::result_large_err)]
async fn serve_agent(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut admitted: Option<(RegionId, String)> = None;
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let path = request.uri().path();
        let Some(region) = path.strip_prefix("/pools/").and_then(|p| p.strip_suffix("/connect")) else {
            return Err(refusal(&ApiError::new(ErrorCode::NotFound, format!("no route {path}"))));
        };
        let region = RegionId::new(region).map_err(|e| refusal(&ApiError::new(ErrorCode::BadRegion, e.to_string())))?;
        let agent = header(AGENT_HEADER).to_owned();
        check_agent_name(&agent).map_err(|e| refusal(&ApiError::new(ErrorCode::BadRequest, e)))?;
        let key = header("authorization").strip_prefix("Bearer ").unwrap_or_default();
        if key.is_empty() {
            return Err(refusal(&ApiError::new(ErrorCode::MissingApiKey, "send the pool key as Bearer")));
        }
        let expected = shared.pool_key.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !bool::from(subtle_eq(key.as_bytes(), expected.as_bytes())) {
            return Err(refusal(&ApiError::new(ErrorCode::InvalidApiKey, "unknown or revoked pool key")));
        }
        admitted = Some((region, agent));
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let Some((region, agent)) = admitted else { return };
    let conn = AgentConn(shared.next.fetch_add(1, Ordering::Relaxed));
    let (switch, mut cut) = oneshot::channel();
    shared.live.lock().unwrap_or_else(|e| e.into_inner()).insert(conn, (region.clone(), agent.clone(), switch));
    let (outbox, mut outgoing) = mpsc::unbounded_channel();
    let events = inputs(&shared, &region);
    if events.send(Input::Open { conn, agent, outbox }).is_err() {
        return;
    }
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            _ = &mut cut => {
                writer.abort();
                break;
            }
        };
        match message {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<AgentMessage>(&text) {
                Ok(message) => {
                    let _ = events.send(Input::Event(Event::Said { conn, message }));
                }
                Err(_) => break,
            },
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
    }
    shared.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&conn);
    // The room of the region now (a restarted one does not know this connection: harmless).
    let _ = inputs(&shared, &region).send(Input::Event(Event::Gone { conn }));
    writer.abort();
}

/// A complete chunked body, decoded; `None` while more is to come.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if data.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Constant-time equality of two byte strings (of any lengths).
fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    if a.len() != b.len() {
        return subtle::Choice::from(0);
    }
    a.ct_eq(b)
}

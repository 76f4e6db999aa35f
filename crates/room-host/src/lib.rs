//! A native host for the core's session room: serves the edge's attach and join WebSocket routes on
//! loopback, verifies tokens against a key set (ring), and carries out the room's effects. The runner's
//! and the pool agent's tests and benchmarks talk to it as they talk to the edge; production's host is
//! the `SessionRoom` Durable Object, and both are thin glue over the same `edgeshell_core::room::Room`.
//!
//! One Tokio task per session owns its `Room`; connections feed it events through a channel and
//! receive the frames it sends through their own channels. The alarm is a timer in that task.
//! [`browser::Browser`] is the other end: a client that attaches as the web client does. [`pool`] hosts
//! the core's pool room the same way, for the pool agent's tests.

pub mod browser;
pub mod pool;

use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::ids::SessionId;
use edgeshell_core::issue::EDGE_AUDIENCE;
use edgeshell_core::jwks::KeySet;
use edgeshell_core::machine::StateMachine;
use edgeshell_core::protocol::{CloseCode, Credential, Role, Upgrade, UpgradeRefused, SUBPROTOCOL};
use edgeshell_core::room::{ConnId, Effect, EndReason, Event, Room, RoomConfig};
use edgeshell_core::tokens::{Expectation, Scope, ValidationOptions, Validator, Verified};
use edgeshell_keys::{now_or_never, RingVerifier};
use edgeshell_platform::clock::{self, now};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

/// What the host needs to check tokens and run rooms.
#[derive(Debug, Clone)]
pub struct Options {
    /// The token issuer (`iss`).
    pub issuer: String,
    /// The control plane's public keys.
    pub keys: KeySet,
    /// The rooms' tunables.
    pub config: RoomConfig,
}

/// A running host; stops when dropped.
pub struct RoomHost {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RoomHost {
    fn drop(&mut self) {
        self.task.abort();
        for room in self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).values() {
            room.task.abort();
        }
    }
}

struct Shared {
    /// The pool rooms served beside the session rooms, if any.
    pools: Option<Arc<pool::Shared>>,
    options: Options,
    validator: Validator,
    rooms: Mutex<HashMap<SessionId, RoomHandle>>,
    ended: Mutex<Vec<(SessionId, EndReason)>>,
    next_conn: AtomicU64,
    /// Open connections by session and role, with the switch that cuts each one.
    live: Mutex<HashMap<ConnId, LiveConn>>,
}

/// An open connection's session, role, and the switch that cuts it.
type LiveConn = (SessionId, Role, tokio::sync::oneshot::Sender<()>);

struct RoomHandle {
    events: mpsc::UnboundedSender<RoomInput>,
    task: tokio::task::JoinHandle<()>,
}

enum RoomInput {
    /// A connection opened; frames for it go to `outbox`.
    Open {
        conn: ConnId,
        event: Event,
        outbox: mpsc::UnboundedSender<Message>,
    },
    Event(Event),
}

impl RoomHost {
    /// Starts serving on `127.0.0.1` at a free port.
    pub async fn start(options: Options) -> std::io::Result<RoomHost> {
        Ok(RoomHost::start_inner(options, None).await?.0)
    }

    /// Starts serving the session rooms and, on the same origin as the edge does, the pool rooms:
    /// agents dial `/pools/{region}/connect` with `pool_key`, the control plane posts commands with
    /// `internal_key`. Returns the pool rooms' handle too.
    pub async fn start_with_pools(
        options: Options,
        pool_key: &str,
        internal_key: &str,
    ) -> std::io::Result<(RoomHost, pool::PoolRoomHost)> {
        let pools = pool::shared(&options.issuer, options.keys.clone(), pool_key, internal_key);
        let (host, addr) = RoomHost::start_inner(options, Some(pools.clone())).await?;
        Ok((host, pool::PoolRoomHost::beside(addr, pools)))
    }

    async fn start_inner(
        options: Options,
        pools: Option<Arc<pool::Shared>>,
    ) -> std::io::Result<(RoomHost, SocketAddr)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let validator = Validator::new(ValidationOptions::new(options.issuer.clone(), EDGE_AUDIENCE));
        let shared = Arc::new(Shared {
            pools,
            options,
            validator,
            rooms: Mutex::new(HashMap::new()),
            ended: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(1),
            live: Mutex::new(HashMap::new()),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = accepting.clone();
                tokio::spawn(async move {
                    match &shared.pools {
                        Some(pools) if is_pool_route(&stream).await => pool::serve(pools.clone(), stream).await,
                        _ => serve(shared, stream).await,
                    }
                });
            }
        });
        Ok((RoomHost { addr, shared, task }, addr))
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The URL a runner joins `session` at.
    pub fn join_url(&self, session: &SessionId) -> String {
        format!("{}{}", self.url(), edgeshell_core::pool_api::join_path(session))
    }

    /// The URL a browser attaches to `session` at.
    pub fn attach_url(&self, session: &SessionId) -> String {
        format!("{}{}", self.url(), edgeshell_core::pool_api::attach_path(session))
    }

    /// Sessions that ended, with why, in order.
    pub fn ended(&self) -> Vec<(SessionId, EndReason)> {
        self.shared.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Cuts every connection of `role` in `session` without a close frame, as a network failure would.
    /// Returns how many were cut.
    pub fn cut(&self, session: &SessionId, role: Role) -> usize {
        let mut live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner());
        let doomed: Vec<ConnId> =
            live.iter().filter(|(_, (s, r, _))| s == session && *r == role).map(|(c, _)| *c).collect();
        for conn in &doomed {
            if let Some((_, _, switch)) = live.remove(conn) {
                let _ = switch.send(());
            }
        }
        doomed.len()
    }

    /// Ends a session as the control plane would (`DELETE /api/sessions/{id}`).
    pub fn end(&self, session: &SessionId) {
        if let Some(room) = self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).get(session) {
            let _ = room.events.send(RoomInput::Event(Event::End));
        }
    }
}

/// Whether a connection asks for a pool route (its request line, peeked).
async fn is_pool_route(stream: &TcpStream) -> bool {
    let mut head = [0u8; 64];
    match stream.peek(&mut head).await {
        Ok(n) => head[..n].starts_with(b"GET /pools/") || head[..n].starts_with(b"POST /internal/pools/"),
        Err(_) => false,
    }
}

fn entropy<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    bytes
}

/// What the upgrade request asked for.
struct Admission {
    session: SessionId,
    event: Event,
}

// The callback's error type is tungstenite's HTTP response, as its `Callback` trait requires.
#[allow(clippy::result_large_err)]
async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let conn = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let mut admission = None;
    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        match admit(&shared, conn, request) {
            Ok(a) => {
                admission = Some(a);
                response.headers_mut().insert("sec-websocket-protocol", SUBPROTOCOL.parse().expect("static header"));
                Ok(response)
            }
            Err(UpgradeRefused { code, reason: why }) => {
                // Refused before the upgrade, in the one error shape (the edge upgrades and closes instead).
                let error = ApiError::new(code.error_code().unwrap_or(ErrorCode::InternalError), why);
                let mut refusal = ErrorResponse::new(Some(String::from_utf8_lossy(&error.body()).into_owned()));
                *refusal.status_mut() =
                    http::StatusCode::from_u16(error.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
                for (name, value) in error.headers() {
                    if let Ok(value) = http::HeaderValue::from_str(&value) {
                        refusal.headers_mut().insert(name, value);
                    }
                }
                Err(refusal)
            }
        }
    };
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(edgeshell_core::protocol::MAX_FRAME_BYTES);
    let Ok(socket) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else {
        return;
    };
    let Some(Admission { session, event }) = admission else { return };
    let role = match event {
        Event::RunnerJoin { .. } | Event::RunnerResume { .. } => Role::Runner,
        _ => Role::Browser,
    };
    let (switch, mut cut) = tokio::sync::oneshot::channel();
    shared.live.lock().unwrap_or_else(|e| e.into_inner()).insert(conn, (session.clone(), role, switch));
    let (outbox, mut outgoing) = mpsc::unbounded_channel();
    let events = room_events(&shared, &session);
    if events.send(RoomInput::Open { conn, event, outbox }).is_err() {
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
                // Drop both halves without a close frame: the peer sees the connection vanish.
                writer.abort();
                break;
            }
        };
        match message {
            Some(Ok(Message::Binary(data))) => {
                let _ = events.send(RoomInput::Event(Event::Message { conn, data: data.to_vec() }));
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
    }
    shared.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&conn);
    let _ = events.send(RoomInput::Event(Event::Disconnected { conn }));
    writer.abort();
}

/// Checks the path and credential of an upgrade, verifying tokens before the upgrade as the edge does.
fn admit(shared: &Shared, conn: ConnId, request: &Request) -> Result<Admission, UpgradeRefused> {
    let protocols = request.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let upgrade = Upgrade::parse(request.uri().path(), request.uri().query(), protocols)?;
    let session = upgrade.session;
    let verify = |scope: Scope, token: &str| -> Result<Verified, UpgradeRefused> {
        let expect = Expectation { scope, session: Some(&session) };
        let checked = now_or_never(shared.validator.verify(token, &shared.options.keys, &RingVerifier, expect, now()));
        checked.map_err(UpgradeRefused::from)
    };
    let event = match (upgrade.role, upgrade.credential) {
        (Role::Browser, Credential::Token(t)) => {
            Event::BrowserAttach { conn, token: verify(Scope::Attach, &t)?, entropy: entropy() }
        }
        (Role::Browser, Credential::Resume(ticket)) => Event::BrowserResume {
            conn,
            ticket: ticket.into(),
            offset: upgrade.offset.unwrap_or_default(),
            entropy: entropy(),
        },
        (Role::Runner, Credential::Token(t)) => {
            Event::RunnerJoin { conn, token: verify(Scope::Join, &t)?, entropy: entropy() }
        }
        (Role::Runner, Credential::Resume(ticket)) => {
            Event::RunnerResume { conn, ticket: ticket.into(), entropy: entropy() }
        }
    };
    let exists = shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&session);
    if !exists && !event.may_create_room() {
        return Err(UpgradeRefused::new(CloseCode::SessionNotFound, "no such session here; attach with a token"));
    }
    Ok(Admission { session, event })
}

fn room_events(shared: &Arc<Shared>, session: &SessionId) -> mpsc::UnboundedSender<RoomInput> {
    let mut rooms = shared.rooms.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(room) = rooms.get(session) {
        return room.events.clone();
    }
    let (events, inbox) = mpsc::unbounded_channel();
    let room = Room::new(session.clone(), shared.options.config, now());
    let task = tokio::spawn(run_room(shared.clone(), room, events.clone(), inbox));
    rooms.insert(session.clone(), RoomHandle { events: events.clone(), task });
    events
}

async fn run_room(
    shared: Arc<Shared>,
    mut room: Room,
    events: mpsc::UnboundedSender<RoomInput>,
    mut inbox: mpsc::UnboundedReceiver<RoomInput>,
) {
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<Message>> = HashMap::new();
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
                Some(RoomInput::Open { conn, event, outbox }) => {
                    conns.insert(conn, outbox);
                    Some(event)
                }
                Some(RoomInput::Event(event)) => Some(event),
                None => return,
            },
            _ = sleep => None,
        };
        if let Some(Event::Disconnected { conn }) = &event {
            conns.remove(conn);
        }
        let mut effects = match event {
            Some(event) => room.handle_event(event, now()),
            None => room.handle_timeout(now()),
        };
        // Nothing is stored natively: memory is all there is, so everything counts as written.
        effects.extend(room.checkpoint_written());
        for effect in effects {
            match effect {
                Effect::Send { conn, frame } => {
                    if let Some(out) = conns.get(&conn) {
                        let _ = out.send(Message::Binary(frame.into()));
                    }
                }
                Effect::Close { conn, code, reason } => {
                    if let Some(out) = conns.remove(&conn) {
                        let close = CloseFrame { code: WsCloseCode::from(code.code()), reason: reason.into() };
                        let _ = out.send(Message::Close(Some(close)));
                    }
                }
                Effect::VerifyRefresh { conn, token } => {
                    let expect = Expectation { scope: Scope::Attach, session: Some(room.session()) };
                    let checked = now_or_never(shared.validator.verify(
                        token.expose(),
                        &shared.options.keys,
                        &RingVerifier,
                        expect,
                        now(),
                    ));
                    let event = match checked {
                        Ok(token) => Event::RefreshVerified { conn, token },
                        Err(error) => Event::RefreshRejected { conn, error },
                    };
                    let _ = events.send(RoomInput::Event(event));
                }
                Effect::SessionEnded(reason) => {
                    shared.ended.lock().unwrap_or_else(|e| e.into_inner()).push((room.session().clone(), reason));
                }
                // Nothing is stored natively; the tombstone simply stays in memory with the host.
                Effect::Forget => {}
            }
        }
    }
}

//! The `SessionRoom` Durable Object: one per session (named by its id), hosting the core's `Room`. It
//! turns the platform's callbacks (a connection handed over by the Worker, a message, a close, the
//! alarm) into the room's `handle_event` and `handle_timeout`, writes the room's checkpoint when
//! `Room::checkpoint_due` says so, carries out the effects, and keeps the object's alarm at the room's
//! `poll_timeout` (moving it only when that answer changes, as each move is a storage write). Changes to who may connect are written before the event's effects leave
//! (the runtime holds outgoing messages until the write is durable); output is written in batches, at
//! most [`FLUSH_DELAY`] after it arrived or once [`FLUSH_BYTES`] are waiting, so a stream costs one
//! write per batch instead of one per frame (the runner keeps what is not yet stored; see the core's
//! `room` module).
//!
//! Sockets are accepted with the hibernation API (`ROOM_HIBERNATION=on`, the default): an idle session
//! costs nothing while its sockets stay open, text `ping` heartbeats are answered by the platform without
//! waking the object, and after a wake the room is restored from its checkpoint and the sockets from
//! their attachments. With `ROOM_HIBERNATION=off` the object accepts sockets itself and pumps their
//! events (kept for the latency comparison in docs/decisions/0002).

// `#[durable_object]` generates undocumented exported glue.
#![allow(missing_docs)]

use crate::config::EdgeConfig;
use crate::control_api;
use crate::keys::{self, VerifyError};
use crate::log;
use crate::room_link::{self, Admission};
use crate::room_store::{RoomStore, StoreError};
use crate::upgrade;
use crate::webcrypto::random;
use edgeshell_core::machine::StateMachine;
use edgeshell_core::protocol::{close_reason, CloseCode, Frame, UpgradeRefused, SUBPROTOCOL};
use edgeshell_core::room::{CheckpointDue, ConnId, Effect, EndReason, Event, Room, StoredOutput};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{Expectation, Scope};
use futures_util::StreamExt;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use wasm_bindgen::JsValue;
use web_sys::BinaryType;
use worker::{
    durable_object, DurableObject, Env, Headers, Request, Response, Result, ScheduledTime, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair, WebsocketEvent,
};

/// How long output may wait before it is written.
const FLUSH_DELAY: std::time::Duration = std::time::Duration::from_millis(10);
/// Output waiting beyond which it is written at once (well under the storage's 2 MB value limit).
const FLUSH_BYTES: u64 = 256 * 1024;

/// Text heartbeat a client sends; the platform answers [`PONG`] without waking the object.
const PING: &str = "ping";
const PONG: &str = "pong";

/// The Durable Object class (bound as `SESSION_ROOMS`).
#[durable_object]
pub struct SessionRoom {
    host: Rc<Host>,
}

/// Everything the object keeps in memory; shared with the socket pumps when not hibernating.
struct Host {
    state: State,
    env: Env,
    room: RefCell<Option<Loaded>>,
    sockets: RefCell<HashMap<ConnId, WebSocket>>,
    /// A batch write is scheduled.
    flush_scheduled: std::cell::Cell<bool>,
    /// Connections a room just restored from storage counts as open but the platform no longer has
    /// (the object restarted, not woke): reported as `Disconnected` before the next event, so input
    /// is not sent into a socket that is gone.
    gone: RefCell<Vec<ConnId>>,
}

struct Loaded {
    room: Room,
    stored: StoredOutput,
    store: RoomStore,
}

impl Loaded {
    /// Writes the room's checkpoint; answers what the room does now that it is stored (a credit).
    fn write(&mut self) -> std::result::Result<Vec<Effect>, StoreError> {
        if let Some(checkpoint) = self.room.checkpoint(&mut self.stored) {
            self.store.save(checkpoint)?;
        }
        Ok(self.room.checkpoint_written())
    }
}

impl DurableObject for SessionRoom {
    fn new(state: State, env: Env) -> Self {
        if let Ok(pair) = WebSocketRequestResponsePair::new(PING, PONG) {
            state.set_websocket_auto_response(&pair);
        }
        SessionRoom {
            host: Rc::new(Host {
                state,
                env,
                room: RefCell::new(None),
                sockets: RefCell::new(HashMap::new()),
                flush_scheduled: std::cell::Cell::new(false),
                gone: RefCell::new(Vec::new()),
            }),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.path() == crate::probe::PROBE_PATH {
            // A region probe: answered without loading or creating a room.
            return Ok(Response::empty()?.with_status(204));
        }
        if req.path() == room_link::ORDER_PATH && req.method() == worker::Method::Post {
            return match room_link::RoomOrder::read(&req) {
                Some(order) => self.host.clone().order_now(order).await,
                None => crate::http::error(&crate::http::ApiError::new(
                    crate::http::ErrorCode::BadRequest,
                    "not an order for a room",
                )),
            };
        }
        match self.host.clone().connect(&req).await {
            Ok(response) => Ok(response),
            // The Worker forwards only upgrades that offered our subprotocol.
            Err(refused) => upgrade::refuse(&refused, SUBPROTOCOL),
        }
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        let Some(conn) = conn_of(&ws) else { return Ok(()) };
        self.host.on_message(conn, &ws, message).await;
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, _code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        if let Some(conn) = conn_of(&ws) {
            self.host.on_gone(conn).await;
        }
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        if let Some(conn) = conn_of(&ws) {
            self.host.on_gone(conn).await;
        }
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        let mut events: Vec<Option<Event>> = self.host.heartbeats_seen().into_iter().map(Some).collect();
        // `None`: the time alone, for the room's `handle_timeout`.
        events.push(None);
        self.host.handle(events).await;
        Response::empty()
    }
}

/// A socket's connection id, kept in its attachment as hex (JavaScript numbers hold only 53 bits).
fn conn_of(ws: &WebSocket) -> Option<ConnId> {
    let text = ws.deserialize_attachment::<String>().ok().flatten()?;
    u64::from_str_radix(&text, 16).ok().map(ConnId)
}

impl Host {
    fn config(&self) -> std::result::Result<EdgeConfig, UpgradeRefused> {
        EdgeConfig::from_env(&self.env).map_err(|e| UpgradeRefused::new(CloseCode::InternalError, e.to_string()))
    }

    /// Loads the room from storage unless it is in memory. `Ok(false)`: there is no room.
    /// The control plane's order: end the session now (`Event::End`, closing every socket with
    /// `session_ended`), or extend it (`Event::Extend`; answers the room's deadline). A room that does
    /// not exist is not created.
    async fn order_now(self: Rc<Self>, order: room_link::RoomOrder) -> Result<Response> {
        match self.ensure_loaded() {
            Ok(true) => match order {
                room_link::RoomOrder::End => {
                    self.handle(vec![Some(Event::End)]).await;
                    Response::from_json(&serde_json::json!({ "ended": true }))
                }
                room_link::RoomOrder::Extend(ends) => {
                    self.handle(vec![Some(Event::Extend { ends })]).await;
                    let room = self.room.borrow();
                    let ended =
                        room.as_ref().is_none_or(|r| matches!(r.room.phase(), edgeshell_core::room::Phase::Ended(_)));
                    let deadline = room.as_ref().and_then(|r| r.room.deadline());
                    Response::from_json(&serde_json::json!({ "ends": deadline, "ended": ended }))
                }
            },
            Ok(false) => crate::http::error(&crate::http::ApiError::new(
                crate::http::ErrorCode::SessionNotFound,
                "no room for this session",
            )),
            Err(e) => {
                crate::http::error(&crate::http::ApiError::new(crate::http::ErrorCode::InternalError, e.to_string()))
            }
        }
    }

    fn ensure_loaded(&self) -> std::result::Result<bool, StoreError> {
        if self.room.borrow().is_some() {
            return Ok(true);
        }
        let Some(store) = RoomStore::existing(&self.state.storage())? else { return Ok(false) };
        match store.load()? {
            Some((room, stored)) => {
                let gone = room.connections().into_iter().filter(|c| self.socket(*c).is_none()).collect();
                *self.gone.borrow_mut() = gone;
                *self.room.borrow_mut() = Some(Loaded { room, stored, store });
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Accepts a connection the Worker handed over.
    async fn connect(self: Rc<Self>, req: &Request) -> std::result::Result<Response, UpgradeRefused> {
        let internal = |e: worker::Error| UpgradeRefused::new(CloseCode::InternalError, e.to_string());
        let storage_failed = |e: StoreError| UpgradeRefused::new(CloseCode::InternalError, e.to_string());
        let (session, admission) = room_link::read(req)?;
        let config = self.config()?;
        let conn = ConnId(u64::from_le_bytes(random()));
        let entropy = random();
        let event = match admission {
            Admission::Attach(token) => Event::BrowserAttach { conn, token, entropy },
            Admission::Join(token) => Event::RunnerJoin { conn, token, entropy },
            Admission::BrowserResume { ticket, offset } => Event::BrowserResume { conn, ticket, offset, entropy },
            Admission::RunnerResume { ticket } => Event::RunnerResume { conn, ticket, entropy },
        };
        if !self.ensure_loaded().map_err(storage_failed)? {
            if !event.may_create_room() {
                return Err(UpgradeRefused::new(
                    CloseCode::SessionNotFound,
                    "no such session here; attach with a token",
                ));
            }
            let store = RoomStore::create(&self.state.storage()).map_err(storage_failed)?;
            let room = Room::new(session.clone(), config.room, keys::now());
            *self.room.borrow_mut() = Some(Loaded { room, stored: StoredOutput::default(), store });
            log("room_created", serde_json::json!({ "session": session.as_str() }));
        }
        let pair = WebSocketPair::new().map_err(internal)?;
        let server = pair.server;
        AsRef::<web_sys::WebSocket>::as_ref(&server).set_binary_type(BinaryType::Arraybuffer);
        server.serialize_attachment(format!("{:016x}", conn.0)).map_err(internal)?;
        if config.hibernation {
            self.state.accept_web_socket(&server);
        } else {
            server.accept().map_err(internal)?;
            wasm_bindgen_futures::spawn_local(self.clone().pump(conn, server.clone()));
        }
        self.sockets.borrow_mut().insert(conn, server);
        self.handle(vec![Some(event)]).await;
        let headers = Headers::new();
        headers.set("sec-websocket-protocol", SUBPROTOCOL).map_err(internal)?;
        Ok(Response::from_websocket(pair.client).map_err(internal)?.with_headers(headers))
    }

    /// Serves a socket accepted without hibernation.
    async fn pump(self: Rc<Self>, conn: ConnId, ws: WebSocket) {
        let Ok(mut events) = ws.events() else { return };
        while let Some(event) = events.next().await {
            match event {
                Ok(WebsocketEvent::Message(m)) => {
                    let message = match m.text() {
                        Some(text) => WebSocketIncomingMessage::String(text),
                        None => WebSocketIncomingMessage::Binary(m.bytes().unwrap_or_default()),
                    };
                    self.on_message(conn, &ws, message).await;
                }
                Ok(WebsocketEvent::Close(_)) | Err(_) => break,
            }
        }
        self.on_gone(conn).await;
    }

    async fn on_message(self: &Rc<Self>, conn: ConnId, ws: &WebSocket, message: WebSocketIncomingMessage) {
        let event = match message {
            WebSocketIncomingMessage::Binary(data) => Event::Message { conn, data },
            // Answered here only when the platform did not (sockets accepted without hibernation).
            WebSocketIncomingMessage::String(text) if text == PING => {
                let _ = ws.send_with_str(PONG);
                Event::HeartbeatSeen { conn, at: keys::now() }
            }
            // Frames are binary; the room refuses anything else as a protocol error.
            WebSocketIncomingMessage::String(text) => Event::Message { conn, data: text.into_bytes() },
        };
        self.handle(vec![Some(event)]).await;
    }

    async fn on_gone(self: &Rc<Self>, conn: ConnId) {
        if self.sockets.borrow_mut().remove(&conn).is_some() || self.room.borrow().is_some() {
            self.handle(vec![Some(Event::Disconnected { conn })]).await;
        }
    }

    /// When the platform last answered each socket's heartbeat.
    fn heartbeats_seen(&self) -> Vec<Event> {
        let mut seen = Vec::new();
        for ws in self.state.get_websockets() {
            let (Some(conn), Some(at)) = (conn_of(&ws), auto_response_time(&self.state, &ws)) else { continue };
            seen.push(Event::HeartbeatSeen { conn, at });
        }
        seen
    }

    /// The socket of `conn`, recovered from the platform after a wake.
    fn socket(&self, conn: ConnId) -> Option<WebSocket> {
        if let Some(ws) = self.sockets.borrow().get(&conn) {
            return Some(ws.clone());
        }
        let mut sockets = self.sockets.borrow_mut();
        for ws in self.state.get_websockets() {
            if let Some(c) = conn_of(&ws) {
                sockets.entry(c).or_insert(ws);
            }
        }
        sockets.get(&conn).cloned()
    }

    /// Feeds events (`None`: the time alone) to the room, writing its checkpoint as due, re-arms the
    /// alarm when the room's answer moved, and carries out the effects (which may produce more events:
    /// a refresh token's verification).
    async fn handle(self: &Rc<Self>, events: Vec<Option<Event>>) {
        let gone = self.gone.take().into_iter().map(|conn| Some(Event::Disconnected { conn }));
        let mut queue: VecDeque<Option<Event>> = gone.chain(events).collect();
        while let Some(event) = queue.pop_front() {
            let conn = match &event {
                Some(Event::Message { conn, .. } | Event::HeartbeatSeen { conn, .. }) => Some(*conn),
                _ => None,
            };
            let effects = match self.step(event) {
                Ok(Some((effects, alarm))) => {
                    if let Some(at) = alarm {
                        self.set_alarm(at).await;
                    }
                    effects
                }
                Ok(None) => {
                    // No room (forgotten, or never made): a stray socket is told so and closed.
                    if let Some(ws) = conn.and_then(|c| self.socket(c)) {
                        close(&ws, CloseCode::SessionNotFound, "no such session");
                    }
                    continue;
                }
                Err(e) => return self.storage_failed(&e),
            };
            queue.extend(self.carry_out(effects).await.into_iter().map(Some));
        }
    }

    /// Moves the object's alarm (a storage write, so only when the room's answer changed).
    async fn set_alarm(&self, at: Option<Timestamp>) {
        let storage = self.state.storage();
        let result = match at {
            Some(at) => storage.set_alarm(alarm_time(at)).await,
            None => storage.delete_alarm().await,
        };
        if let Err(e) = result {
            log("room_alarm_failed", serde_json::json!({ "error": e.to_string() }));
        }
    }

    /// Carries out effects; answers the events they produced.
    async fn carry_out(&self, mut effects: Vec<Effect>) -> Vec<Event> {
        // Telling the control plane waits for the network: every close and send goes first.
        effects.sort_by_key(|e| matches!(e, Effect::SessionEnded(_)));
        let mut events = Vec::new();
        for effect in effects {
            events.extend(self.apply(effect).await);
        }
        events
    }

    /// One event (or the time alone) through the room; its checkpoint is written now when due now (or
    /// when the batch is full), else a batch write is scheduled. Also says where the alarm must move,
    /// if it must.
    #[allow(clippy::type_complexity)]
    fn step(
        self: &Rc<Self>,
        event: Option<Event>,
    ) -> std::result::Result<Option<(Vec<Effect>, Option<Option<Timestamp>>)>, StoreError> {
        if !self.ensure_loaded()? {
            return Ok(None);
        }
        let mut slot = self.room.borrow_mut();
        let Some(loaded) = slot.as_mut() else { return Ok(None) };
        let alarm = loaded.room.poll_timeout();
        let mut effects = match event {
            Some(event) => loaded.room.handle_event(event, keys::now()),
            None => loaded.room.handle_timeout(keys::now()),
        };
        let alarm = Some(loaded.room.poll_timeout()).filter(|now| *now != alarm);
        match loaded.room.checkpoint_due(&loaded.stored) {
            CheckpointDue::Nothing => {}
            CheckpointDue::Soon if loaded.room.output_end() - loaded.stored.end() < FLUSH_BYTES => {
                if !self.flush_scheduled.replace(true) {
                    wasm_bindgen_futures::spawn_local(self.clone().flush_later());
                }
            }
            CheckpointDue::Soon | CheckpointDue::Now => effects.extend(loaded.write()?),
        }
        Ok(Some((effects, alarm)))
    }

    /// Writes the batch after [`FLUSH_DELAY`] (a pending timer also keeps the object from hibernating
    /// with unwritten output).
    async fn flush_later(self: Rc<Self>) {
        worker::Delay::from(FLUSH_DELAY).await;
        self.flush_scheduled.set(false);
        let written = match self.room.borrow_mut().as_mut() {
            Some(loaded) => loaded.write(),
            None => return,
        };
        match written {
            Ok(effects) => {
                let events = self.carry_out(effects).await;
                if !events.is_empty() {
                    self.handle(events.into_iter().map(Some).collect()).await;
                }
            }
            Err(e) => self.storage_failed(&e),
        }
    }

    /// Tells the control plane the session ended here, so its row and the user's list agree with the
    /// room. A failure is logged; the row then ends when the session expires.
    async fn report_ended(&self, session: &str, reason: EndReason) {
        let Ok(config) = self.config() else { return };
        let body = serde_json::json!({ "reason": reason.name(), "detail": reason.detail() });
        let path = format!("/internal/sessions/{session}/ended");
        if let Err(e) = control_api::internal::<serde_json::Value>(&self.env, &config, &path, &body).await {
            log("session_end_report_failed", serde_json::json!({ "session": session, "error": e.message }));
        }
    }

    async fn apply(&self, effect: Effect) -> Option<Event> {
        match effect {
            Effect::Send { conn, frame } => {
                if let Some(ws) = self.socket(conn) {
                    if ws.send_with_bytes(&frame).is_err() {
                        return Some(Event::Disconnected { conn });
                    }
                }
            }
            Effect::Close { conn, code, reason } => {
                log(
                    "connection_closed",
                    serde_json::json!({ "conn": format!("{:016x}", conn.0), "code": code.code(), "reason": reason }),
                );
                // Looked up before it leaves the map (a socket from before a wake is found on the platform).
                let socket = self.socket(conn);
                self.sockets.borrow_mut().remove(&conn);
                if let Some(ws) = socket {
                    close(&ws, code, &reason);
                }
            }
            Effect::VerifyRefresh { conn, token } => {
                let session = self.room.borrow().as_ref().map(|l| l.room.session().clone())?;
                let config = self.config().ok()?;
                let expect = Expectation { scope: Scope::Attach, session: Some(&session) };
                return match keys::verify(&config, None, token.expose(), expect).await {
                    Ok(token) => Some(Event::RefreshVerified { conn, token }),
                    Err(VerifyError::Token(error)) => Some(Event::RefreshRejected { conn, error }),
                    // Not judged: the seat keeps its current authorization and the client may retry.
                    Err(VerifyError::KeysUnavailable) => None,
                };
            }
            Effect::SessionEnded(reason) => {
                let session = self.room.borrow().as_ref().map(|l| l.room.session().to_string())?;
                log("session_ended", serde_json::json!({ "session": session, "reason": format!("{reason:?}") }));
                self.report_ended(&session, reason).await;
            }
            Effect::Forget => {
                // Every table, row and the alarm: an ended room leaves no storage once no token for it
                // can verify.
                *self.room.borrow_mut() = None;
                let storage = self.state.storage();
                let deleted = match storage.delete_alarm().await {
                    Ok(()) => storage.delete_all().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = deleted {
                    log("room_forget_failed", serde_json::json!({ "error": e.to_string() }));
                }
            }
        }
        None
    }

    /// Storage failed: nothing can be promised any more, so every peer is told to come back.
    fn storage_failed(&self, e: &StoreError) {
        log("room_storage_failed", serde_json::json!({ "error": e.to_string() }));
        for ws in self.state.get_websockets().into_iter().chain(self.sockets.borrow_mut().drain().map(|(_, ws)| ws)) {
            close(&ws, CloseCode::InternalError, "the session's storage failed; reconnect");
        }
        *self.room.borrow_mut() = None;
    }
}

fn close(ws: &WebSocket, code: CloseCode, reason: &str) {
    let _ = ws.send_with_bytes(Frame::Closing { code, reason: reason.to_owned() }.encode());
    let _ = ws.close(Some(code.code()), Some(close_reason(reason)));
}

fn alarm_time(at: Timestamp) -> ScheduledTime {
    ScheduledTime::new(js_sys::Date::new(&JsValue::from_f64(at.as_millis() as f64)))
}

/// `state.getWebSocketAutoResponseTimestamp(ws)`, which workers-rs does not bind.
fn auto_response_time(state: &State, ws: &WebSocket) -> Option<Timestamp> {
    let raw: &JsValue = state.as_raw().as_ref();
    let function = js_sys::Reflect::get(raw, &JsValue::from_str("getWebSocketAutoResponseTimestamp")).ok()?;
    let function: js_sys::Function = wasm_bindgen::JsCast::dyn_into(function).ok()?;
    let socket: &JsValue = AsRef::<web_sys::WebSocket>::as_ref(ws).as_ref();
    let date = function.call1(raw, socket).ok()?;
    let date: js_sys::Date = wasm_bindgen::JsCast::dyn_into(date).ok()?;
    Some(Timestamp::from_millis(date.get_time() as u64))
}

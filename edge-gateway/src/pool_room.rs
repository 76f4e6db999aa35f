//! The `PoolRoom` Durable Object: one per region (named `pool/{region}`), hosting the core's
//! `pool_room::PoolRoom`. Every pool agent of the region holds one WebSocket here (handed over by the
//! Worker after its key checked out), and the control plane's commands arrive as requests that wait for
//! the agent's answer. This glue turns sockets, requests and time into the machine's events and carries
//! out its effects; the rules are the core's.
//!
//! - The ledger is stored in the object's SQLite (`pool_ledger_rows`, a row per command, token id,
//!   placement and gone agent) on every `Effect::Store`, only the rows that changed, before anything the
//!   event caused leaves (the runtime holds outgoing messages until the writes are durable, and commits
//!   the writes of one event together): a restarted room still refuses a command it took before. A
//!   ledger an earlier version stored whole (`pool_ledger`, one row) moves to rows on load.
//! - Sockets are accepted without hibernation: agents report every two seconds, so the object would not
//!   sleep anyway, and a command's waiting request lives in memory.
//! - A ticker feeds the time while agents are connected or the ledger has something due, and every
//!   `POOL_KEY_RECHECK_SECS` (in a task of its own) asks the control plane whether each connected
//!   agent's key is still valid, closing the connections of revoked keys.

// `#[durable_object]` generates undocumented exported glue.
#![allow(missing_docs)]

use crate::config::EdgeConfig;
use crate::http::{error, ApiError, ErrorCode};
use crate::keys::{self, VerifyError};
use crate::log;
use crate::pools::{check_key, KEY_ID, KEY_SHA256, REGION, ROOM_COMMANDS, ROOM_CONNECT};
use crate::webcrypto::random;
use edgeshell_core::ids::RegionId;
use edgeshell_core::machine::StateMachine;
use edgeshell_core::pool_api::{check_agent_name, AgentMessage, CommandRequest, AGENT_HEADER, MAX_COMMAND_WAIT_MS};
use edgeshell_core::pool_ledger::{Changes, Ledger, Row};
use edgeshell_core::pool_room::{
    AgentConn, Effect, Event, PoolRoom as Machine, PoolRoomConfig, Reply, Submitted, WaiterId,
};
use edgeshell_core::tokens::{TokenError, Validator};
use futures_channel::oneshot;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State, WebSocket, WebSocketPair,
    WebsocketEvent,
};

/// The ticker's period: the machine's deadlines are seconds apart.
const TICK: Duration = Duration::from_millis(500);

/// The Durable Object class (bound as `POOL_ROOMS`).
#[durable_object]
pub struct PoolRoom {
    host: Rc<Host>,
}

/// A connected agent as the host knows it.
struct Socket {
    ws: WebSocket,
    agent: String,
    key_id: String,
    key_sha256: String,
}

struct Host {
    state: State,
    env: Env,
    machine: RefCell<Option<Machine>>,
    region: RefCell<Option<RegionId>>,
    sockets: RefCell<HashMap<AgentConn, Socket>>,
    waiters: RefCell<HashMap<WaiterId, oneshot::Sender<Reply>>>,
    next_waiter: Cell<u64>,
    ticking: Cell<bool>,
    keys_checked: Cell<u64>,
}

impl DurableObject for PoolRoom {
    fn new(state: State, env: Env) -> Self {
        PoolRoom {
            host: Rc::new(Host {
                state,
                env,
                machine: RefCell::new(None),
                region: RefCell::new(None),
                sockets: RefCell::new(HashMap::new()),
                waiters: RefCell::new(HashMap::new()),
                next_waiter: Cell::new(1),
                ticking: Cell::new(false),
                keys_checked: Cell::new(0),
            }),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let answer = match (req.method(), req.path().as_str()) {
            (worker::Method::Get, ROOM_CONNECT) => self.host.clone().connect(&req),
            (worker::Method::Post, ROOM_COMMANDS) => self.host.clone().command(req).await,
            _ => Err(ApiError::new(ErrorCode::NotFound, "no such pool room route")),
        };
        answer.or_else(|e| error(&e))
    }
}

impl Host {
    fn config(&self) -> std::result::Result<EdgeConfig, ApiError> {
        EdgeConfig::from_env(&self.env).map_err(|e| ApiError::new(ErrorCode::Misconfigured, e.to_string()))
    }

    /// The region, from the Worker's handoff (the object's name is `pool/{region}`).
    fn learn_region(&self, req: &Request) -> std::result::Result<RegionId, ApiError> {
        let named = req.headers().get(REGION).ok().flatten().unwrap_or_default();
        let region = RegionId::new(named).map_err(|e| ApiError::new(ErrorCode::BadRegion, e.to_string()))?;
        self.region.borrow_mut().get_or_insert_with(|| region.clone());
        Ok(region)
    }

    /// Loads the machine over the stored ledger unless it is in memory.
    fn ensure_loaded(&self) -> std::result::Result<(), ApiError> {
        if self.machine.borrow().is_some() {
            return Ok(());
        }
        let failed = |e: worker::Error| ApiError::new(ErrorCode::InternalError, format!("pool room storage: {e}"));
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS pool_ledger_rows (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, \
             PRIMARY KEY (kind, key)) WITHOUT ROWID",
            None,
        )
        .map_err(failed)?;
        move_whole_ledger_to_rows(&sql).map_err(|e| ApiError::new(ErrorCode::InternalError, e))?;
        let mut rows = Vec::new();
        for row in sql.exec("SELECT kind, key, value FROM pool_ledger_rows", None).map_err(failed)?.raw() {
            match row.map_err(failed)?.as_slice() {
                [SqlStorageValue::String(kind), SqlStorageValue::String(key), SqlStorageValue::String(value)] => {
                    rows.push((kind.clone(), key.clone(), value.clone()));
                }
                other => {
                    return Err(ApiError::new(ErrorCode::InternalError, format!("stored ledger: a row of {other:?}")))
                }
            }
        }
        let config = PoolRoomConfig::DEFAULT;
        let mut ledger = Machine::new_ledger(&config);
        ledger.apply(Changes::from_rows(rows).map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?);
        *self.machine.borrow_mut() = Some(Machine::new(config, ledger, keys::now()));
        self.keys_checked.set(keys::now().as_millis());
        Ok(())
    }

    /// Writes what changed in the ledger.
    fn store(&self) -> std::result::Result<(), String> {
        let changes = match self.machine.borrow_mut().as_mut() {
            Some(m) => m.take_changes(),
            None => return Ok(()),
        };
        write_rows(&self.state.storage().sql(), changes.into_rows())
    }

    /// Accepts an agent's socket the Worker handed over (its key checked for this region).
    fn connect(self: Rc<Self>, req: &Request) -> std::result::Result<Response, ApiError> {
        let internal = |e: worker::Error| ApiError::new(ErrorCode::InternalError, e.to_string());
        let region = self.learn_region(req)?;
        let header = |name: &str| req.headers().get(name).ok().flatten().unwrap_or_default();
        let agent = header(AGENT_HEADER);
        check_agent_name(&agent).map_err(|e| ApiError::new(ErrorCode::BadRequest, e))?;
        self.ensure_loaded()?;
        let conn = AgentConn(u64::from_le_bytes(random()));
        let pair = WebSocketPair::new().map_err(internal)?;
        pair.server.accept().map_err(internal)?;
        let socket = Socket {
            ws: pair.server.clone(),
            agent: agent.clone(),
            key_id: header(KEY_ID),
            key_sha256: header(KEY_SHA256),
        };
        log(
            "pool_agent_connected",
            serde_json::json!({ "region": region.as_str(), "agent": agent, "key_id": socket.key_id }),
        );
        self.sockets.borrow_mut().insert(conn, socket);
        self.handle(Event::Connected { conn, agent });
        wasm_bindgen_futures::spawn_local(self.clone().pump(conn, pair.server));
        self.clone().start_ticker();
        Response::from_websocket(pair.client).map_err(internal)
    }

    /// Reads an agent's messages until its socket closes.
    async fn pump(self: Rc<Self>, conn: AgentConn, ws: WebSocket) {
        let Ok(mut events) = ws.events() else { return };
        while let Some(event) = events.next().await {
            match event {
                Ok(WebsocketEvent::Message(m)) => {
                    let parsed = m.text().map(|t| serde_json::from_str::<AgentMessage>(&t));
                    match parsed {
                        Some(Ok(message)) => self.handle(Event::Said { conn, message }),
                        _ => {
                            let _ = ws.close(Some(1008), Some("not an agent message"));
                            break;
                        }
                    }
                }
                Ok(WebsocketEvent::Close(_)) | Err(_) => break,
            }
        }
        if self.sockets.borrow_mut().remove(&conn).is_some() {
            self.handle(Event::Gone { conn });
        }
    }

    /// Feeds the time to the machine while it has something due; rechecks keys every [`KEY_RECHECK`].
    fn start_ticker(self: Rc<Self>) {
        if self.ticking.replace(true) {
            return;
        }
        // The Worker's settings are fixed for the isolate: read once per ticker, not every tick.
        let recheck = self.config().map(|c| c.pool_key_recheck).unwrap_or(Duration::from_secs(60));
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                worker::Delay::from(TICK).await;
                let due = self.machine.borrow().as_ref().and_then(|m| m.poll_timeout());
                let now = keys::now();
                if due.is_some_and(|at| at <= now) {
                    let effects = self.machine.borrow_mut().as_mut().map(|m| m.handle_timeout(now)).unwrap_or_default();
                    self.carry_out(effects);
                }
                if now.as_millis().saturating_sub(self.keys_checked.get()) >= recheck.as_millis() as u64 {
                    self.keys_checked.set(now.as_millis());
                    // Its own task: the control plane's answers never hold up the machine's time.
                    wasm_bindgen_futures::spawn_local(self.clone().recheck_keys());
                }
                if self.sockets.borrow().is_empty() && due.is_none() {
                    break;
                }
            }
            self.ticking.set(false);
        });
    }

    /// Closes the connections whose pool key the control plane no longer accepts for this region.
    async fn recheck_keys(self: Rc<Self>) {
        let Some(region) = self.region.borrow().clone() else { return };
        let Ok(config) = self.config() else { return };
        let mut checked: HashMap<String, bool> = HashMap::new();
        let held: Vec<(AgentConn, String)> =
            self.sockets.borrow().iter().map(|(c, s)| (*c, s.key_sha256.clone())).collect();
        for (conn, key) in held {
            let valid = match checked.get(&key) {
                Some(v) => *v,
                None => {
                    // Only a refusal closes: an unreachable control plane leaves the agents connected.
                    let v = match check_key(&self.env, &config, &key, &region).await {
                        Ok(_) => true,
                        Err(e) => !matches!(e.code, ErrorCode::InvalidApiKey | ErrorCode::WrongRegion),
                    };
                    checked.insert(key.clone(), v);
                    v
                }
            };
            if !valid {
                let socket = self.sockets.borrow_mut().remove(&conn);
                if let Some(socket) = socket {
                    log(
                        "pool_agent_key_revoked",
                        serde_json::json!({ "agent": socket.agent, "key_id": socket.key_id }),
                    );
                    let _ = socket.ws.close(Some(4003), Some("the pool key was revoked"));
                    self.handle(Event::Gone { conn });
                }
            }
        }
    }

    /// Verifies a submitted command and waits for its answer.
    async fn command(self: Rc<Self>, mut req: Request) -> std::result::Result<Response, ApiError> {
        let region = self.learn_region(&req)?;
        self.ensure_loaded()?;
        let text = req.text().await.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
        let request: CommandRequest = serde_json::from_str(&text)
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("not a command request: {e}")))?;
        let config = self.config()?;
        let submitted = Submitted::read(&config.token_issuer, &region, request.body)?;
        let validator = Validator::new(submitted.options.clone());
        let verified = keys::verify_with(&config, None, &validator, request.token.expose(), submitted.expectation())
            .await
            .map_err(|e| match e {
                VerifyError::KeysUnavailable => {
                    ApiError::new(ErrorCode::KeysUnavailable, "the control plane's keys cannot be fetched now")
                }
                VerifyError::Token(TokenError::WrongSession) => {
                    ApiError::new(ErrorCode::Forbidden, "the token was signed for another session")
                }
                VerifyError::Token(e) => ApiError::new(ErrorCode::Unauthorized, format!("command token refused: {e}")),
            })?;
        let submission = submitted.verified(&verified, request.token.clone())?;
        let waiter = WaiterId(self.next_waiter.get());
        self.next_waiter.set(waiter.0 + 1);
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(waiter, tx);
        self.clone().start_ticker();
        self.handle(Event::Submit { waiter, command: submission });
        let wait = Duration::from_millis(request.wait_ms.clamp(1, MAX_COMMAND_WAIT_MS));
        let reply = match select(rx, Box::pin(worker::Delay::from(wait))).await {
            Either::Left((Ok(reply), _)) => reply,
            Either::Left((Err(_), _)) => Reply::TimedOut,
            Either::Right(_) => {
                self.waiters.borrow_mut().remove(&waiter);
                self.handle(Event::WaitOver { waiter });
                Reply::TimedOut
            }
        };
        answer(reply)
    }

    /// One event through the machine, its effects carried out.
    fn handle(&self, event: Event) {
        if self.ensure_loaded().is_err() {
            return;
        }
        let effects =
            self.machine.borrow_mut().as_mut().map(|m| m.handle_event(event, keys::now())).unwrap_or_default();
        self.carry_out(effects);
    }

    fn carry_out(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Store => {
                    if let Err(e) = self.store() {
                        // Nothing may leave that the ledger could forget: every agent reconnects.
                        log("pool_ledger_store_failed", serde_json::json!({ "error": e }));
                        for (_, socket) in self.sockets.borrow_mut().drain() {
                            let _ = socket.ws.close(Some(1011), Some("the pool room's storage failed"));
                        }
                        *self.machine.borrow_mut() = None;
                        for (_, waiter) in self.waiters.borrow_mut().drain() {
                            let _ = waiter.send(Reply::TimedOut);
                        }
                        return;
                    }
                }
                Effect::Send { conn, message } => {
                    let sent = match (self.sockets.borrow().get(&conn), serde_json::to_string(&message)) {
                        (Some(socket), Ok(json)) => socket.ws.send_with_str(json).is_ok(),
                        _ => false,
                    };
                    if !sent {
                        log("pool_command_send_failed", serde_json::json!({ "conn": format!("{:016x}", conn.0) }));
                    }
                }
                Effect::Reply { waiter, reply } => {
                    if let Some(tx) = self.waiters.borrow_mut().remove(&waiter) {
                        let _ = tx.send(reply);
                    }
                }
                Effect::Close { conn, reason } => {
                    if let Some(socket) = self.sockets.borrow_mut().remove(&conn) {
                        log("pool_agent_closed", serde_json::json!({ "agent": socket.agent, "reason": reason }));
                        let _ = socket.ws.close(Some(1000), Some(&reason));
                    }
                }
            }
        }
    }
}

/// The submitter's answer for a reply (the core's mapping).
fn answer(reply: Reply) -> std::result::Result<Response, ApiError> {
    let internal = |e: worker::Error| ApiError::new(ErrorCode::InternalError, e.to_string());
    let (status, body) = reply.into_http();
    let mut response = Response::ok(body).map_err(internal)?.with_status(status);
    response.headers_mut().set("content-type", "application/json").map_err(internal)?;
    Ok(response)
}

/// Writes `rows` (a value: insert or replace; none: delete) in order.
fn write_rows(sql: &worker::SqlStorage, rows: Vec<Row>) -> std::result::Result<(), String> {
    for Row { kind, key, value } in rows {
        let written = match value {
            Some(value) => sql.exec(
                "INSERT OR REPLACE INTO pool_ledger_rows (kind, key, value) VALUES (?, ?, ?)",
                vec![kind.name().into(), key.into(), value.into()],
            ),
            None => sql
                .exec("DELETE FROM pool_ledger_rows WHERE kind = ? AND key = ?", vec![kind.name().into(), key.into()]),
        };
        written.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Moves a ledger stored whole (one JSON row, as rooms stored it before rows) to rows, once.
fn move_whole_ledger_to_rows(sql: &worker::SqlStorage) -> std::result::Result<(), String> {
    let text = |e: worker::Error| e.to_string();
    let found = sql
        .exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'pool_ledger'", None)
        .map_err(text)?
        .raw()
        .next()
        .is_some();
    if !found {
        return Ok(());
    }
    let whole = sql.exec("SELECT ledger FROM pool_ledger WHERE id = 1", None).map_err(text)?.raw().next();
    if let Some(row) = whole {
        if let Some(SqlStorageValue::String(json)) = row.map_err(text)?.first() {
            let ledger: Ledger = serde_json::from_str(json).map_err(|e| format!("stored ledger: {e}"))?;
            write_rows(sql, ledger.everything().into_rows())?;
        }
    }
    sql.exec("DROP TABLE pool_ledger", None).map_err(text)?;
    Ok(())
}

//! The edge's pool rooms and their agents, stood in for the control plane's tests (the real room is the
//! Worker's, the real agent its own crate): a [`FakeEdge`] serves the edge's internal routes the control
//! plane calls (`POST /internal/pools/{region}/commands` with the internal key, and a room's end) and
//! hands each command to its region's [`TestPool`], which checks it exactly as the room and an agent
//! must (signature against the control plane's published JWKS, the pool audience, the session, the
//! body hash, one use per token id for starts), records what it was asked, and answers as its mode
//! says. No region registered: `503 no_pool_agent`, as the room answers when no agent is connected.

use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::issue::{check_body, pool_audience};
use edgeshell_core::jwks::KeySet;
use edgeshell_core::pool_api::{CommandRequest, PoolCommand, StartRunner, Started};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{Expectation, Scope, ValidationOptions, Validator};
use edgeshell_keys::RingVerifier;
use http_body_util::{BodyExt, Full};
use std::sync::{Arc, Mutex};
use wasmtime_wasi_http::io::TokioIo;

/// How the pool answers start commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Starts the runner.
    Accept,
    /// Answers 503 (no capacity).
    Refuse,
    /// Never answers (a hung agent: the room answers `504 pool_command_timeout` after the wait).
    Hang,
    /// Starts the runner after this long (a slow start that still makes the pool timeout).
    Slow(std::time::Duration),
    /// Starts a real process (`true`) per runner and answers when it has run: the floor of the local
    /// backend's start cost, for benchmarks.
    Spawn,
}

#[derive(Default)]
pub struct Log {
    pub starts: Vec<StartRunner>,
    pub stops: Vec<SessionId>,
    /// Extensions: the session and its new deadline.
    pub extends: Vec<(SessionId, u64)>,
    /// Commands refused for a bad token or body, with the reason.
    pub rejected: Vec<String>,
    /// The signature algorithm of each accepted command's token.
    pub command_algs: Vec<String>,
}

struct State {
    region: RegionId,
    control_url: String,
    issuer: String,
    mode: Mutex<Mode>,
    log: Mutex<Log>,
    /// The control plane's keys, fetched on first use and again for an unknown kid (as an agent would).
    keys: Mutex<Option<KeySet>>,
    /// Token ids of the starts taken (the room's replay protection).
    used: Mutex<std::collections::HashSet<String>>,
}

/// The edge's internal routes, serving the registered regions' pools.
pub struct FakeEdge {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    internal_key: String,
    pools: Arc<Mutex<Vec<Arc<State>>>>,
    /// Regions whose commands go on to a real pool room (`url`), as the Worker hands them to its object.
    forwards: Forwards,
    task: tokio::task::JoinHandle<()>,
}

type Forwards = Arc<Mutex<std::collections::HashMap<String, Arc<edgeshell_room_host::pool::PoolRoomHost>>>>;

impl Drop for FakeEdge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeEdge {
    pub async fn start(internal_key: &str) -> FakeEdge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let pools: Arc<Mutex<Vec<Arc<State>>>> = Arc::default();
        let forwards: Forwards = Arc::default();
        let (served, key, forwarded) = (pools.clone(), internal_key.to_owned(), forwards.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (pools, key, forwards) = (served.clone(), key.clone(), forwarded.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (pools, key, forwards) = (pools.clone(), key.clone(), forwards.clone());
                        async move { Ok::<_, std::convert::Infallible>(route(&pools, &forwards, &key, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeEdge { url, internal_key: internal_key.to_owned(), pools, forwards, task }
    }

    /// Hands `region`'s commands on to `room` (a native `PoolRoomHost`, where agents dial in), in this
    /// process as the Worker hands them to its Durable Object; `None`: answered here again.
    #[allow(dead_code)]
    pub fn forward(&self, region: &str, room: Option<Arc<edgeshell_room_host::pool::PoolRoomHost>>) {
        let mut forwards = self.forwards.lock().unwrap();
        match room {
            Some(room) => forwards.insert(region.to_owned(), room),
            None => forwards.remove(region),
        };
    }

    /// Connects `pool` (its region's agents) to the edge.
    pub fn connect(&self, pool: &TestPool) {
        self.pools.lock().unwrap().push(pool.state.clone());
    }

    /// Disconnects every agent of `region`.
    #[allow(dead_code)]
    pub fn disconnect(&self, region: &str) {
        self.pools.lock().unwrap().retain(|p| p.region.as_str() != region);
    }

    #[allow(dead_code)]
    pub fn internal_key(&self) -> &str {
        &self.internal_key
    }
}

impl TestPool {
    /// An agent for this pool dialing out to the pool room at `room` (a native `PoolRoomHost`) with
    /// `key`: it says hello, reports every two seconds, and answers each command exactly as this pool
    /// answers it over the fake edge (same checks, same mode). Runs until the task is aborted.
    #[allow(dead_code)]
    pub fn dial(&self, room: &str, key: &str) -> tokio::task::JoinHandle<()> {
        use edgeshell_core::pool_api::{AgentMessage, AgentReport, RoomMessage, AGENT_HEADER, REPORT_EVERY};
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Message;
        let url = format!("{}/pools/{}/connect", room.replacen("http://", "ws://", 1), self.region);
        let (state, key, agent) = (self.state.clone(), key.to_owned(), self.agent.clone());
        tokio::spawn(async move {
            let mut request = url.into_client_request().unwrap();
            request.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
            request.headers_mut().insert(AGENT_HEADER, agent.parse().unwrap());
            // Nagle's algorithm off, as the real agent has it: small answers leave at once.
            let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
                .await
                .expect("the pool room takes the agent");
            let (mut sink, mut stream) = socket.split();
            let report = AgentReport { capacity: 1_000_000, load: 0, draining: false, runners: vec![] };
            let hello = serde_json::to_string(&AgentMessage::Hello(report.clone())).unwrap();
            sink.send(Message::text(hello)).await.unwrap();
            let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel::<String>();
            let mut tick = tokio::time::interval(REPORT_EVERY);
            loop {
                tokio::select! {
                    message = stream.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            let Ok(RoomMessage::Command { id, token, body }) = serde_json::from_str(&text) else { continue };
                            let (state, answers) = (state.clone(), answers.clone());
                            tokio::spawn(async move {
                                let response = handle(&state, CommandRequest { token, body, wait_ms: 5000 }).await;
                                let status = response.status().as_u16();
                                let body = response.into_body().collect().await.unwrap().to_bytes();
                                let answer = AgentMessage::Answer { id, status, body: String::from_utf8_lossy(&body).into_owned() };
                                let _ = answers.send(serde_json::to_string(&answer).unwrap());
                            });
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    Some(json) = answered.recv() => {
                        if sink.send(Message::text(json)).await.is_err() {
                            return;
                        }
                    }
                    _ = tick.tick() => {
                        let status = serde_json::to_string(&AgentMessage::Status(report.clone())).unwrap();
                        if sink.send(Message::text(status)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    }
}

pub struct TestPool {
    pub region: RegionId,
    /// The agent's name in heartbeats.
    pub agent: String,
    state: Arc<State>,
}

impl TestPool {
    pub fn new(region: &str, mode: Mode, control_url: &str, issuer: &str) -> TestPool {
        let state = Arc::new(State {
            region: RegionId::new(region).unwrap(),
            control_url: control_url.to_owned(),
            issuer: issuer.to_owned(),
            mode: Mutex::new(mode),
            log: Mutex::new(Log::default()),
            keys: Mutex::new(None),
            used: Mutex::default(),
        });
        TestPool { region: RegionId::new(region).unwrap(), agent: format!("{region}-a"), state }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.state.log.lock().unwrap())
    }

    pub fn started(&self) -> Vec<SessionId> {
        self.with_log(|l| l.starts.iter().map(|s| s.session_id.clone()).collect())
    }

    pub fn stopped(&self) -> Vec<SessionId> {
        self.with_log(|l| l.stops.clone())
    }
}

fn reply(status: u16, body: String) -> hyper::Response<Full<bytes::Bytes>> {
    let mut r = hyper::Response::new(Full::new(bytes::Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r
}

fn error(status: u16, code: &str, message: &str) -> hyper::Response<Full<bytes::Bytes>> {
    reply(status, serde_json::json!({ "error": { "code": code, "message": message } }).to_string())
}

async fn route(
    pools: &Mutex<Vec<Arc<State>>>,
    forwards: &Forwards,
    internal_key: &str,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<bytes::Bytes>> {
    let path = req.uri().path().to_owned();
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.strip_prefix("Bearer ") == Some(internal_key));
    if !authorized {
        return error(401, "unauthorized", "missing or wrong internal API key");
    }
    if path.starts_with("/internal/sessions/") && (path.ends_with("/end") || path.ends_with("/extend")) {
        return error(404, "session_not_found", "no room for this session");
    }
    let Some(region) = path.strip_prefix("/internal/pools/").and_then(|p| p.strip_suffix("/commands")) else {
        return error(404, "not_found", "no such route");
    };
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    let Ok(request) = serde_json::from_slice::<CommandRequest>(&body) else {
        return error(400, "bad_request", "not a command request");
    };
    let forward = forwards.lock().unwrap().get(region).cloned();
    if let Some(room) = forward {
        let wait = std::time::Duration::from_millis(request.wait_ms);
        let (status, answer) =
            room.submit(&RegionId::new(region).unwrap(), request.token.expose(), &request.body, wait).await;
        return reply(status, answer);
    }
    let state = pools.lock().unwrap().iter().find(|p| p.region.as_str() == region).cloned();
    match state {
        Some(state) => handle(&state, request).await,
        None => error(503, "no_pool_agent", "no agent of this region is connected and ready"),
    }
}

async fn handle(state: &State, request: CommandRequest) -> hyper::Response<Full<bytes::Bytes>> {
    let token = request.token.expose().to_owned();
    let body = request.body.into_bytes();
    let command = match verify(state, &token, &body).await {
        Ok(c) => {
            let alg = edgeshell_core::tokens::UntrustedToken::parse(&token).map(|t| t.header().alg.clone());
            state.log.lock().unwrap().command_algs.push(alg.unwrap_or_default());
            c
        }
        Err(reason) => {
            state.log.lock().unwrap().rejected.push(reason.clone());
            return error(401, "unauthorized", &reason);
        }
    };
    match command {
        PoolCommand::Stop { session_id, .. } => {
            state.log.lock().unwrap().stops.push(session_id);
            reply(200, "{}".into())
        }
        PoolCommand::Extend { session_id, deadline } => {
            state.log.lock().unwrap().extends.push((session_id.clone(), deadline));
            reply(200, serde_json::json!({ "session_id": session_id, "deadline": deadline }).to_string())
        }
        PoolCommand::Start(start) => {
            let sid = start.session_id.clone();
            state.log.lock().unwrap().starts.push(start);
            let mode = *state.mode.lock().unwrap();
            let started = |runner: &str| {
                let started = Started { session_id: sid.clone(), runner: runner.into() };
                reply(201, serde_json::to_string(&started).unwrap())
            };
            match mode {
                Mode::Accept => started("test-runner"),
                Mode::Slow(after) => {
                    tokio::time::sleep(after).await;
                    started("test-runner")
                }
                Mode::Spawn => {
                    let status = tokio::process::Command::new("true").status().await.unwrap();
                    assert!(status.success());
                    started("process")
                }
                Mode::Refuse => error(503, "at_capacity", "full"),
                Mode::Hang => {
                    tokio::time::sleep(std::time::Duration::from_millis(request.wait_ms)).await;
                    error(504, "pool_command_timeout", "the agent did not answer in time")
                }
            }
        }
    }
}

async fn fetch_keys(state: &State) -> Result<KeySet, String> {
    let (status, _, jwks) = super::request(&state.control_url, "GET", "/.well-known/jwks.json").await;
    if status != 200 {
        return Err(format!("jwks status {status}"));
    }
    let keys = KeySet::from_json(&jwks).map_err(|e| e.to_string())?;
    *state.keys.lock().unwrap() = Some(keys.clone());
    Ok(keys)
}

async fn verify(state: &State, token: &str, body: &[u8]) -> Result<PoolCommand, String> {
    let cached = state.keys.lock().unwrap().clone();
    let kid_known =
        |keys: &KeySet| edgeshell_core::tokens::UntrustedToken::parse(token).is_ok_and(|t| keys.get(t.kid()).is_some());
    let keys = match cached {
        Some(keys) if kid_known(&keys) => keys,
        _ => fetch_keys(state).await?,
    };
    let command: PoolCommand = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let validator = Validator::new(ValidationOptions::new(state.issuer.clone(), pool_audience(&state.region)));
    let now = Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64,
    );
    let expect = Expectation { scope: Scope::PoolCommand, session: Some(command.session()) };
    let verified =
        validator.verify(token, &keys, &RingVerifier, expect, now).await.map_err(|e| format!("token: {e}"))?;
    check_body(&verified, body).map_err(|e| e.to_string())?;
    if let PoolCommand::Start(start) = &command {
        if start.region != state.region {
            return Err("start for another region".into());
        }
        if !state.used.lock().unwrap().insert(verified.claims().jti.as_str().to_owned()) {
            return Err("replayed start".into());
        }
    }
    Ok(command)
}

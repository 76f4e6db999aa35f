//! A pool agent stand-in for the control plane's tests (the real agent is its own crate): it checks
//! every command exactly as an agent must (signature against the control plane's published JWKS, the
//! pool audience, the session, the body hash), records what it was asked, and answers as its mode says.

use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::issue::{check_body, pool_audience};
use edgeshell_core::jwks::KeySet;
use edgeshell_core::pool_api::{stop_path, PoolCommand, StartRunner, Started, START_PATH};
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
    /// Never answers (a hung pool).
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
}

pub struct TestPool {
    pub region: RegionId,
    pub endpoint: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestPool {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestPool {
    pub async fn start(region: &str, mode: Mode, control_url: &str, issuer: &str) -> TestPool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            region: RegionId::new(region).unwrap(),
            control_url: control_url.to_owned(),
            issuer: issuer.to_owned(),
            mode: Mutex::new(mode),
            log: Mutex::new(Log::default()),
            keys: Mutex::new(None),
        });
        let served = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestPool { region: RegionId::new(region).unwrap(), endpoint, state, task }
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

async fn handle(state: &State, req: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<bytes::Bytes>> {
    let path = req.uri().path().to_owned();
    let token = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    let command = match verify(state, &token, &body, &path).await {
        Ok(c) => {
            let alg = edgeshell_core::tokens::UntrustedToken::parse(&token).map(|t| t.header().alg.clone());
            state.log.lock().unwrap().command_algs.push(alg.unwrap_or_default());
            c
        }
        Err(reason) => {
            state.log.lock().unwrap().rejected.push(reason.clone());
            return reply(401, reason);
        }
    };
    match command {
        PoolCommand::Stop { session_id, .. } => {
            state.log.lock().unwrap().stops.push(session_id);
            reply(200, "{}".into())
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
                Mode::Refuse => reply(503, r#"{"error":{"code":"no_capacity","message":"full"}}"#.into()),
                Mode::Hang => {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    reply(504, String::new())
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

async fn verify(state: &State, token: &str, body: &[u8], path: &str) -> Result<PoolCommand, String> {
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
    let expected_path = match &command {
        PoolCommand::Start(s) if s.region == state.region => START_PATH.to_owned(),
        PoolCommand::Start(_) => return Err("start for another region".into()),
        PoolCommand::Stop { session_id, .. } => stop_path(session_id),
    };
    if path != expected_path {
        return Err(format!("command for {expected_path} sent to {path}"));
    }
    Ok(command)
}

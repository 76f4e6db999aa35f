//! The agent's HTTP API. Commands that change something must be signed by the control plane;
//! read-only operator views take the pool's own API key; liveness and metrics are open.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /v1/runners` | signed `start` command | 201 `Started`; 409 already running; 503 at capacity/draining |
//! | `POST /v1/runners/{session}/stop` | signed `stop` command | 200 |
//! | `GET /v1/runners` | pool API key | the runners held |
//! | `GET /v1/health` | pool API key | region, capacity, load, draining |
//! | `GET /healthz` | none | 200 while serving |
//! | `GET /metrics` | none | Prometheus text |
//!
//! Every error is `{"error": code, "message": text}`.

use crate::agent::Agent;
use crate::backend::RunnerBackend;
use crate::commands::CommandCheck;
use bytes::Bytes;
use edgeshell_core::ids::SessionId;
use edgeshell_core::pool_api::{PoolCommand, START_PATH};
use edgeshell_core::time::Timestamp;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The largest command body accepted.
const MAX_BODY: usize = 64 * 1024;

/// What the API serves from.
pub struct Api<B> {
    /// The agent.
    pub agent: Arc<Agent<B>>,
    /// The command verifier.
    pub commands: CommandCheck,
    /// SHA-256 of the pool API key, for the operator routes.
    pub api_key_sha256: [u8; 32],
}

type Reply = Response<Full<Bytes>>;

fn json(status: u16, value: &serde_json::Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
    response
}

fn error(status: u16, code: &str, message: impl std::fmt::Display) -> Reply {
    json(status, &serde_json::json!({ "error": code, "message": message.to_string() }))
}

fn now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_millis(since.as_millis() as u64)
}

fn bearer<T>(req: &Request<T>) -> Option<&str> {
    req.headers().get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

impl<B: RunnerBackend> Api<B> {
    /// Answers one request.
    pub async fn handle(&self, req: Request<hyper::body::Incoming>) -> Reply {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        match (method, path.as_str()) {
            (Method::GET, "/healthz") => json(200, &serde_json::json!({ "ok": true })),
            (Method::GET, "/metrics") => {
                let agent = &self.agent;
                let text = agent.metrics.render(
                    agent.region().as_str(),
                    agent.backend_kind(),
                    agent.runners().len(),
                    agent.capacity(),
                );
                let mut response = Response::new(Full::new(Bytes::from(text)));
                response
                    .headers_mut()
                    .insert("content-type", "text/plain; version=0.0.4".parse().expect("static header"));
                response
            }
            (Method::GET, "/v1/runners") => match self.operator(&req) {
                Ok(()) => json(200, &serde_json::json!({ "runners": self.agent.runners() })),
                Err(reply) => *reply,
            },
            (Method::GET, "/v1/health") => match self.operator(&req) {
                Ok(()) => json(
                    200,
                    &serde_json::json!({
                        "region": self.agent.region(),
                        "backend": self.agent.backend_kind(),
                        "capacity": self.agent.capacity(),
                        "load": self.agent.load(),
                        "draining": self.agent.draining(),
                    }),
                ),
                Err(reply) => *reply,
            },
            (Method::POST, START_PATH) => self.command(req, None).await,
            (Method::POST, p) => match p.strip_prefix("/v1/runners/").and_then(|r| r.strip_suffix("/stop")) {
                Some(sid) => match SessionId::new(sid) {
                    Ok(sid) => self.command(req, Some(sid)).await,
                    Err(e) => error(404, "not_found", e),
                },
                None => error(404, "not_found", format!("no route POST {p}")),
            },
            (m, p) => error(404, "not_found", format!("no route {m} {p}")),
        }
    }

    /// The operator routes take the pool's API key, compared as SHA-256 in constant time.
    fn operator<T>(&self, req: &Request<T>) -> Result<(), Box<Reply>> {
        let presented: [u8; 32] = Sha256::digest(bearer(req).unwrap_or_default().as_bytes()).into();
        if bool::from(subtle::ConstantTimeEq::ct_eq(&presented[..], &self.api_key_sha256[..])) {
            Ok(())
        } else {
            Err(Box::new(error(401, "unauthorized", "send the pool API key as Bearer")))
        }
    }

    async fn command(&self, req: Request<hyper::body::Incoming>, path_session: Option<SessionId>) -> Reply {
        let token = bearer(&req).map(str::to_owned);
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => return error(413, "body_too_large", format!("command bodies are at most {MAX_BODY} bytes: {e}")),
        };
        let command = match self.commands.check(token.as_deref(), &body, path_session.as_ref(), now()).await {
            Ok(command) => command,
            Err(rejection) => {
                let (status, code) = rejection.status();
                self.agent.metrics.rejected(status);
                tracing::warn!(status, code, reason = %rejection, "command refused");
                return error(status, code, rejection);
            }
        };
        match (command, path_session) {
            (PoolCommand::Start(start), None) => match self.agent.start(start).await {
                Ok(started) => json(201, &serde_json::to_value(started).unwrap_or_default()),
                Err(e) => {
                    let (status, code) = e.status();
                    error(status, code, e)
                }
            },
            (PoolCommand::Stop { session_id, reason }, Some(_)) => match self.agent.stop(&session_id, &reason).await {
                Ok(()) => json(200, &serde_json::json!({ "session_id": session_id, "stopped": true })),
                Err(e) => error(502, "runner_stop_failed", e),
            },
            _ => error(400, "bad_command", "start commands go to /v1/runners, stop commands to /v1/runners/{id}/stop"),
        }
    }
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve<B: RunnerBackend>(api: Arc<Api<B>>, listener: tokio::net::TcpListener) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Answers are small and latency counts (a start is inside a mint): no Nagle delay.
        let _ = stream.set_nodelay(true);
        let api = api.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, std::convert::Infallible>(api.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

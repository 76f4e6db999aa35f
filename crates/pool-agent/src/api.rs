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
//! Every error is the core's error table's (`{"error": {"code", "message"}}`).

use crate::agent::Agent;
use crate::backend::RunnerBackend;
use crate::commands::CommandCheck;
use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::ids::SessionId;
use edgeshell_core::pool_api::{PoolCommand, START_PATH};
use edgeshell_platform::clock;
use edgeshell_platform::http::{self, Reply};
use hyper::{Method, Request};
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

impl<B: RunnerBackend> Api<B> {
    /// Answers one request.
    pub async fn handle(&self, req: Request<hyper::body::Incoming>) -> Reply {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        match (method, path.as_str()) {
            (Method::GET, "/healthz") => http::json(200, &serde_json::json!({ "ok": true })),
            (Method::GET, "/metrics") => {
                let agent = &self.agent;
                let text = agent.metrics.render(
                    agent.region().as_str(),
                    agent.backend_kind(),
                    agent.runners().len(),
                    agent.capacity(),
                );
                http::respond(200, "text/plain; version=0.0.4", text)
            }
            (Method::GET, "/v1/runners") => match self.operator(&req) {
                Ok(()) => http::json(200, &serde_json::json!({ "runners": self.agent.runners() })),
                Err(reply) => *reply,
            },
            (Method::GET, "/v1/health") => match self.operator(&req) {
                Ok(()) => http::json(
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
                    Err(e) => http::error(&ApiError::new(ErrorCode::NotFound, e.to_string())),
                },
                None => http::not_found(p),
            },
            (_, p) => http::not_found(p),
        }
    }

    /// The operator routes take the pool's API key, compared as SHA-256 in constant time.
    fn operator<T>(&self, req: &Request<T>) -> Result<(), Box<Reply>> {
        let presented: [u8; 32] = Sha256::digest(http::bearer(req).unwrap_or_default().as_bytes()).into();
        if bool::from(subtle::ConstantTimeEq::ct_eq(&presented[..], &self.api_key_sha256[..])) {
            Ok(())
        } else {
            Err(Box::new(http::error(&ApiError::new(ErrorCode::Unauthorized, "send the pool API key as Bearer"))))
        }
    }

    async fn command(&self, req: Request<hyper::body::Incoming>, path_session: Option<SessionId>) -> Reply {
        let token = http::bearer(&req).map(str::to_owned);
        let body = match http::read_body(req.into_body(), MAX_BODY).await {
            Ok(body) => body,
            Err(e) => return http::error(&e),
        };
        let command = match self.commands.check(token.as_deref(), &body, path_session.as_ref(), clock::now()).await {
            Ok(command) => command,
            Err(rejection) => {
                self.agent.metrics.rejected(rejection.status());
                tracing::warn!(status = rejection.status(), code = rejection.code.name(), reason = %rejection.message, "command refused");
                return http::error(&rejection);
            }
        };
        match (command, path_session) {
            (PoolCommand::Start(start), None) => match self.agent.start(start).await {
                Ok(started) => http::json(201, &started),
                Err(e) => http::error(&e),
            },
            (PoolCommand::Stop { session_id, reason }, Some(_)) => match self.agent.stop(&session_id, &reason).await {
                Ok(()) => http::json(200, &serde_json::json!({ "session_id": session_id, "stopped": true })),
                Err(e) => http::error(&ApiError::new(ErrorCode::RunnerStopFailed, e.to_string())),
            },
            _ => http::error(&ApiError::new(
                ErrorCode::BadCommand,
                "start commands go to /v1/runners, stop commands to /v1/runners/{id}/stop",
            )),
        }
    }
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve<B: RunnerBackend>(api: Arc<Api<B>>, listener: tokio::net::TcpListener) {
    http::serve(listener, api, |api, req| async move { api.handle(req).await }).await;
}

//! The agent's local HTTP listener: health, metrics and the operator's read-only views, inside its pod
//! only (no Service exposes it; the NetworkPolicy admits no one from outside the pod's namespace's
//! scrapers). It takes no commands: they arrive on the agent's outbound connection ([`crate::dial`]).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /v1/runners` | pool API key | the runners held |
//! | `GET /v1/health` | pool API key | region, capacity, load, draining |
//! | `GET /healthz` | none | 200 while serving |
//! | `GET /metrics` | none | Prometheus text |
//!
//! Every error is the core's error table's (`{"error": {"code", "message"}}`).

use crate::agent::Agent;
use crate::backend::RunnerBackend;
use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_platform::http::{self, Reply};
use hyper::{Method, Request};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What the API serves from.
pub struct Api<B> {
    /// The agent.
    pub agent: Arc<Agent<B>>,
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
                let text = agent.metrics.render(agent.runners().len(), agent.capacity());
                http::respond(200, crate::metrics::CONTENT_TYPE, text)
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
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve<B: RunnerBackend>(api: Arc<Api<B>>, listener: tokio::net::TcpListener) {
    http::serve(listener, api, |api, req| async move { api.handle(req).await }).await;
}

//! The signer's HTTP routes over hyper (HTTP/1.1 keep-alive: the functions host pools connections).

use crate::config::SignerConfig;
use anyhow::{Context, Result};
use bytes::Bytes;
use edgeshell_core::issue::{Issuer, SignRefusal};
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{sign, Claims, TokenSigner};
use edgeshell_keys::KeyRing;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

/// The largest request body: one token's claims.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `POST /v1/sign`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignRequest {
    claims: Claims,
}

/// A running signer, stopped on drop.
pub struct Signer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    keys: KeyRing,
    jwks: Bytes,
    issuer: Issuer,
    api_key: String,
    signed: AtomicU64,
    refused: AtomicU64,
}

impl Drop for Signer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Signer {
    /// Binds and serves.
    pub async fn start(config: SignerConfig) -> Result<Signer> {
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            jwks: Bytes::from(config.keys.jwks_json()),
            keys: config.keys,
            issuer: Issuer::new(config.issuer),
            api_key: config.api_key,
            signed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let task = tokio::spawn(serve(listener, inner.clone()));
        Ok(Signer { inner, addr, task })
    }

    /// Where it serves.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current key's id.
    pub fn kid(&self) -> &str {
        self.inner.keys.current.kid().as_str()
    }

    /// Tokens signed so far.
    pub fn signed(&self) -> u64 {
        self.inner.signed.load(Ordering::Relaxed)
    }

    /// Runs until dropped.
    pub async fn wait(mut self) -> Result<()> {
        (&mut self.task).await.context("signer task")
    }
}

async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&inner, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", content_type.parse().expect("static header"));
    headers.insert("cache-control", "no-store".parse().expect("static header"));
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", value.to_string())
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": { "code": code, "message": message } }))
}

fn now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_millis(since.as_millis() as u64)
}

async fn route(inner: &Inner, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/sign") => sign_route(inner, req).await,
        (&Method::GET, "/v1/jwks") => respond(StatusCode::OK, "application/jwk-set+json", inner.jwks.clone()),
        (&Method::GET, "/healthz") => json(
            StatusCode::OK,
            &serde_json::json!({
                "ok": true,
                "kid": inner.keys.current.kid().as_str(),
                "signed": inner.signed.load(Ordering::Relaxed),
                "refused": inner.refused.load(Ordering::Relaxed),
            }),
        ),
        (_, "/v1/sign" | "/v1/jwks" | "/healthz") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "POST /v1/sign, GET /v1/jwks, GET /healthz")
        }
        (_, path) => error(StatusCode::NOT_FOUND, "not_found", &format!("no route {path}")),
    }
}

fn authorized(inner: &Inner, req: &Request<Incoming>) -> bool {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(presented.as_bytes().ct_eq(inner.api_key.as_bytes()))
}

async fn sign_route(inner: &Inner, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if !authorized(inner, &req) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong signer API key");
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let message = format!("a sign request is at most {MAX_BODY_BYTES} bytes");
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &message);
        }
    };
    let request: SignRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &format!("expected {{\"claims\": ...}}: {e}")),
    };
    if let Err(refusal) = inner.issuer.check_signable(&request.claims, now()) {
        inner.refused.fetch_add(1, Ordering::Relaxed);
        let code = match refusal {
            SignRefusal::Claims(_) => "claims_refused",
            SignRefusal::NotNow { .. } => "not_issued_now",
        };
        return error(StatusCode::UNPROCESSABLE_ENTITY, code, &refusal.to_string());
    }
    let signer = inner.keys.signer_for(request.claims.scope);
    match sign(&request.claims, signer) {
        Ok(token) => {
            inner.signed.fetch_add(1, Ordering::Relaxed);
            json(StatusCode::OK, &serde_json::json!({ "token": token, "kid": signer.kid().as_str() }))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "signing_failed", &e.to_string()),
    }
}

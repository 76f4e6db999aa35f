//! The signer's HTTP routes over hyper (HTTP/1.1 keep-alive: the functions host pools connections).

use crate::config::SignerConfig;
use anyhow::{Context, Result};
use bytes::Bytes;
use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::grants::SignerClients;
use edgeshell_core::issue::{Issuer, SignRefusal};
use edgeshell_core::tokens::{sign, Claims, TokenSigner};
use edgeshell_keys::KeyRing;
use edgeshell_platform::clock;
use edgeshell_platform::http::{self, Reply};
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
    clients: SignerClients,
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
            clients: config.clients,
            signed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let task = tokio::spawn(http::serve(listener, inner.clone(), route));
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

async fn route(inner: Arc<Inner>, req: Request<Incoming>) -> Reply {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/sign") => sign_route(&inner, req).await,
        (&Method::GET, "/v1/jwks") => http::respond(200, "application/jwk-set+json", inner.jwks.clone()),
        (&Method::GET, "/healthz") => http::json(
            200,
            &serde_json::json!({
                "ok": true,
                "kid": inner.keys.current.kid().as_str(),
                "signed": inner.signed.load(Ordering::Relaxed),
                "refused": inner.refused.load(Ordering::Relaxed),
            }),
        ),
        (_, "/v1/sign" | "/v1/jwks" | "/healthz") => {
            http::method_not_allowed("POST /v1/sign, GET /v1/jwks, GET /healthz")
        }
        (_, path) => http::not_found(path),
    }
}

async fn sign_route(inner: &Inner, req: Request<Incoming>) -> Reply {
    match sign_request(inner, req).await {
        Ok(reply) => reply,
        Err(e) => {
            if matches!(e.code, ErrorCode::ClaimsRefused | ErrorCode::NotIssuedNow | ErrorCode::Forbidden) {
                inner.refused.fetch_add(1, Ordering::Relaxed);
            }
            http::error(&e)
        }
    }
}

async fn sign_request(inner: &Inner, req: Request<Incoming>) -> Result<Reply, ApiError> {
    // Which client this is, from its key (the SHA-256 of every configured key compared in constant time).
    let client = http::bearer(&req)
        .and_then(|key| inner.clients.identify(key))
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing or wrong signer API key"))?;
    let body = http::read_body(req.into_body(), MAX_BODY_BYTES).await?;
    let request: SignRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("expected {{\"claims\": ...}}: {e}")))?;
    inner.issuer.check_signable(&request.claims, clock::now()).map_err(|refusal| {
        let code = match refusal {
            SignRefusal::Claims(_) => ErrorCode::ClaimsRefused,
            SignRefusal::NotNow { .. } => ErrorCode::NotIssuedNow,
        };
        ApiError::new(code, refusal.to_string())
    })?;
    // Within what any signer may sign, only what this client's grant allows: a leaked key is worth its
    // grant, no more.
    client.allows(&request.claims).map_err(|refusal| ApiError::new(ErrorCode::Forbidden, refusal.to_string()))?;
    let signer = inner.keys.signer_for(request.claims.scope);
    let token = sign(&request.claims, signer).map_err(|e| ApiError::new(ErrorCode::SigningFailed, e.to_string()))?;
    inner.signed.fetch_add(1, Ordering::Relaxed);
    Ok(http::json(200, &serde_json::json!({ "token": token, "kid": signer.kid().as_str() })))
}

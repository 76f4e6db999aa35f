//! The issuer: its key, the tokens it signs, and the HTTP routes.

use crate::pages;
use anyhow::{Context, Result};
use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::ids::Kid;
use edgeshell_core::tokens::sign;
use edgeshell_keys::RsaSigner;
use edgeshell_platform::clock;
use edgeshell_platform::http::{self, Reply};
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// How long ID tokens live.
const ID_TOKEN_SECS: u64 = 3600;

/// What to sign in as.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdTokenRequest {
    /// The dev user's name; becomes `sub` (prefixed `dev:`) and `name`.
    pub user: String,
    /// The audience; the issuer's client id when absent.
    #[serde(default)]
    pub audience: Option<String>,
    /// Echoed into the token (implicit flow).
    #[serde(default)]
    pub nonce: Option<String>,
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    iat: u64,
    exp: u64,
    auth_time: u64,
    name: &'a str,
    email: String,
    email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// A running issuer, stopped on drop.
pub struct DevIssuer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    issuer: String,
    client_id: String,
    signer: RsaSigner,
    jwks_served: AtomicU64,
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DevIssuer {
    /// Starts on `listen` (use port 0 for any) with a fresh 2048-bit key; `client_id` is the default
    /// audience.
    pub async fn start(listen: &str, client_id: &str) -> Result<DevIssuer> {
        let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        let kid = Kid::new(format!("dev-{}", addr.port())).context("kid")?;
        let signer = tokio::task::spawn_blocking(move || RsaSigner::generate(kid, 2048, &mut rand::rngs::OsRng))
            .await?
            .context("generating the dev issuer's key")?;
        let inner = Arc::new(Inner {
            issuer: format!("http://{addr}"),
            client_id: client_id.to_owned(),
            signer,
            jwks_served: AtomicU64::new(0),
        });
        let task = tokio::spawn(http::serve(listener, inner.clone(), route));
        Ok(DevIssuer { inner, addr, task })
    }

    /// The issuer URL (`iss`), `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Where its JWKS is.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.inner.issuer)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Signs an ID token directly (what `POST /token` answers).
    pub fn id_token(&self, request: &IdTokenRequest) -> Result<String> {
        self.inner.id_token(request)
    }

    /// Signs arbitrary claims with the issuer's key (tests build tokens with bad claims this way).
    pub fn sign_claims(&self, claims: &serde_json::Value) -> Result<String> {
        Ok(sign(claims, &self.inner.signer)?)
    }

    /// The issuer's key id.
    pub fn kid(&self) -> &str {
        edgeshell_core::tokens::TokenSigner::kid(&self.inner.signer).as_str()
    }

    /// How many times the JWKS was served (verifiers' fetches).
    pub fn jwks_served(&self) -> u64 {
        self.inner.jwks_served.load(Ordering::Relaxed)
    }

    /// Waits until the task ends (it runs until dropped).
    pub async fn wait(mut self) -> Result<()> {
        (&mut self.task).await.context("issuer task")
    }
}

impl Inner {
    fn id_token(&self, request: &IdTokenRequest) -> Result<String> {
        let user = request.user.trim();
        anyhow::ensure!(
            !user.is_empty()
                && user.len() <= 64
                && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "a dev user name is 1 to 64 letters, digits, '.', '_' or '-'"
        );
        let now = clock::now().as_secs();
        let claims = IdClaims {
            iss: &self.issuer,
            aud: request.audience.as_deref().unwrap_or(&self.client_id),
            sub: format!("dev:{user}"),
            iat: now,
            exp: now + ID_TOKEN_SECS,
            auth_time: now,
            name: user,
            email: format!("{user}@dev.edgeshell.invalid"),
            email_verified: true,
            nonce: request.nonce.as_deref(),
        };
        Ok(sign(&claims, &self.signer)?)
    }

    fn discovery(&self) -> serde_json::Value {
        let i = &self.issuer;
        serde_json::json!({
            "issuer": i,
            "jwks_uri": format!("{i}/jwks.json"),
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "name", "email", "email_verified", "nonce"],
        })
    }
}

async fn route(inner: Arc<Inner>, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let body = match http::read_body(body, 16 * 1024).await {
        Ok(body) => body,
        Err(e) => return http::error(&e),
    };
    let error = |code: ErrorCode, message: String| http::error(&ApiError::new(code, message));
    let query = parts.uri.query().unwrap_or_default();
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/.well-known/openid-configuration") => http::json(200, &inner.discovery()),
        (&Method::GET, "/jwks.json") => {
            inner.jwks_served.fetch_add(1, Ordering::Relaxed);
            let set = edgeshell_core::jwks::KeySet::from_keys(vec![inner.signer.verifying_key().clone()]);
            match set.map(|s| serde_json::to_value(s.to_jwk_set())) {
                Ok(Ok(v)) => http::json(200, &v),
                _ => error(ErrorCode::InternalError, "cannot publish the key".into()),
            }
        }
        (&Method::POST, "/token") => {
            let request: IdTokenRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return error(ErrorCode::BadRequest, format!("expected {{\"user\"}}: {e}")),
            };
            match inner.id_token(&request) {
                Ok(t) => http::json(200, &serde_json::json!({ "id_token": t, "expires_in": ID_TOKEN_SECS })),
                Err(e) => error(ErrorCode::BadUser, e.to_string()),
            }
        }
        (&Method::GET, "/authorize") => pages::authorize_page(&inner.client_id, query),
        (&Method::POST, "/authorize") => pages::authorize_submit(&inner.client_id, &body, |r| inner.id_token(r)),
        (_, path) => http::not_found(path),
    }
}

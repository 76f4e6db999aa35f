//! The issuer: its key, the tokens it signs, and the HTTP routes. The browser-facing routes (discovery,
//! JWKS, token, revocation) answer any origin (`access-control-allow-origin: *`, no credentials): the
//! page redeems its code and refreshes its tokens from its own origin, as with real providers.

use crate::grants::{GrantError, Grants, SignedIn};
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

/// How long ID tokens live unless set otherwise ([`DevIssuer::set_id_token_secs`]).
pub const ID_TOKEN_SECS: u64 = 3600;
/// How long a refresh token stays usable (each use gives a new one for as long).
const REFRESH_TOKEN_SECS: u64 = 12 * 3600;

/// What to sign in as.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdTokenRequest {
    /// The dev user's name; becomes `sub` (prefixed `dev:`) and `name`.
    pub user: String,
    /// The audience; the issuer's client id when absent.
    #[serde(default)]
    pub audience: Option<String>,
    /// Echoed into the token.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// Checks a dev user name: 1 to 64 letters, digits, '.', '_' or '-'.
pub(crate) fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then_some(()).ok_or_else(|| "a dev user name is 1 to 64 letters, digits, '.', '_' or '-'".to_owned())
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
    id_token_secs: AtomicU64,
    grants: Grants,
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
            id_token_secs: AtomicU64::new(ID_TOKEN_SECS),
            grants: Grants::default(),
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

    /// Sets how long the ID tokens it signs from now on live (tests of renewal use minutes).
    pub fn set_id_token_secs(&self, secs: u64) {
        self.inner.id_token_secs.store(secs.max(1), Ordering::Relaxed);
    }

    /// Refresh grants answered so far, and refresh tokens or codes presented a second time (each
    /// revoked its sign-in).
    pub fn refreshes(&self) -> (u64, u64) {
        self.inner.grants.counts()
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
        check_user(user).map_err(anyhow::Error::msg)?;
        let now = clock::now().as_secs();
        let signed_in =
            SignedIn { user: user.to_owned(), scope: String::new(), auth_time: now, nonce: request.nonce.clone() };
        self.sign_id_token(&signed_in, request.audience.as_deref(), now)
    }

    fn sign_id_token(&self, who: &SignedIn, audience: Option<&str>, now: u64) -> Result<String> {
        let claims = IdClaims {
            iss: &self.issuer,
            aud: audience.unwrap_or(&self.client_id),
            sub: format!("dev:{}", who.user),
            iat: now,
            exp: now + self.id_token_secs.load(Ordering::Relaxed),
            auth_time: who.auth_time,
            name: &who.user,
            email: format!("{}@dev.edgeshell.invalid", who.user),
            email_verified: true,
            nonce: who.nonce.as_deref(),
        };
        Ok(sign(&claims, &self.signer)?)
    }

    /// `POST /token` with a form: the `authorization_code` and `refresh_token` grants (RFC 6749).
    fn grant(&self, body: &[u8]) -> Reply {
        let p: std::collections::BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
        let now = clock::now().as_secs();
        if get("client_id") != self.client_id {
            let e =
                GrantError { error: "invalid_client", description: format!("this issuer serves {:?}", self.client_id) };
            return oauth_error(401, &e);
        }
        let granted = match get("grant_type") {
            "authorization_code" => self.grants.redeem(
                get("code"),
                get("client_id"),
                get("redirect_uri"),
                get("code_verifier"),
                now,
                REFRESH_TOKEN_SECS,
            ),
            "refresh_token" => self
                .grants
                .refresh(get("refresh_token"), get("client_id"), now, REFRESH_TOKEN_SECS)
                .map(|(who, next)| (who, Some(next))),
            other => Err(GrantError {
                error: "unsupported_grant_type",
                description: format!("{other:?}: authorization_code or refresh_token"),
            }),
        };
        let (who, refresh_token) = match granted {
            Ok(granted) => granted,
            Err(e) => return oauth_error(400, &e),
        };
        let id_token = match self.sign_id_token(&who, None, now) {
            Ok(token) => token,
            Err(e) => return oauth_error(500, &GrantError { error: "server_error", description: e.to_string() }),
        };
        let mut answer = serde_json::json!({
            // The access token is opaque and grants nothing here: edgeshell's control plane reads the ID token.
            "access_token": crate::grants::opaque_token(),
            "token_type": "Bearer",
            "expires_in": self.id_token_secs.load(Ordering::Relaxed),
            "id_token": id_token,
            "scope": who.scope,
        });
        if let Some(refresh_token) = refresh_token {
            answer["refresh_token"] = refresh_token.into();
        }
        http::json(200, &answer)
    }

    fn discovery(&self) -> serde_json::Value {
        let i = &self.issuer;
        serde_json::json!({
            "issuer": i,
            "jwks_uri": format!("{i}/jwks.json"),
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "revocation_endpoint": format!("{i}/revoke"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "name", "email", "email_verified", "nonce", "auth_time"],
        })
    }
}

/// An RFC 6749 error answer.
fn oauth_error(status: u16, e: &GrantError) -> Reply {
    http::json(status, &serde_json::json!({ "error": e.error, "error_description": e.description }))
}

async fn route(inner: Arc<Inner>, req: Request<Incoming>) -> Reply {
    let mut reply = answer(inner, req).await;
    let headers = reply.headers_mut();
    headers.insert("access-control-allow-origin", hyper::header::HeaderValue::from_static("*"));
    headers.insert("access-control-allow-headers", hyper::header::HeaderValue::from_static("content-type, accept"));
    headers.insert("access-control-allow-methods", hyper::header::HeaderValue::from_static("GET, POST"));
    reply
}

async fn answer(inner: Arc<Inner>, req: Request<Incoming>) -> Reply {
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
        (&Method::OPTIONS, _) => http::respond(204, "text/plain", ""),
        (&Method::POST, "/token") if is_form(&parts.headers) => inner.grant(&body),
        (&Method::POST, "/revoke") => {
            let p: std::collections::BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
            inner.grants.revoke(p.get("token").map(String::as_str).unwrap_or_default());
            http::respond(200, "text/plain", "")
        }
        (&Method::POST, "/token") => {
            let request: IdTokenRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return error(ErrorCode::BadRequest, format!("expected {{\"user\"}}: {e}")),
            };
            match inner.id_token(&request) {
                Ok(t) => {
                    let secs = inner.id_token_secs.load(Ordering::Relaxed);
                    http::json(200, &serde_json::json!({ "id_token": t, "expires_in": secs }))
                }
                Err(e) => error(ErrorCode::BadUser, e.to_string()),
            }
        }
        (&Method::GET, "/authorize") => pages::authorize_page(&inner.client_id, query),
        (&Method::POST, "/authorize") => {
            let now = clock::now().as_secs();
            pages::authorize_submit(&inner.client_id, &body, now, |r| inner.grants.issue_code(r, now))
        }
        (_, path) => http::not_found(path),
    }
}

fn is_form(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

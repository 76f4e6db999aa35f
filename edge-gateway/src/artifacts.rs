//! Artifact routes: `GET /artifacts/{sid}/{path}` with a link's `artifact:get` token as
//! `Authorization: Bearer` streams an object from R2 to its owner once per link (a token in the query
//! string, where request logs keep it, is refused unread), and `PUT /artifacts/{sid}/{path}` with the
//! runner's `artifact:put` token streams
//! an upload into R2. Tokens are verified here (no database); what needs the database — the link's
//! one-time use, the upload limits, the audit log — is the control plane's internal artifacts routes.

use crate::config::EdgeConfig;
use crate::control_api;
use crate::http::{self, error, ApiError, ErrorCode};
use crate::keys::{self, VerifyError};
use edgeshell_core::artifacts::{check_link, parse_artifact_route, ArtifactPath};
use edgeshell_core::ids::SessionId;
use edgeshell_core::tokens::{Expectation, Method, Scope, TokenError, Verified};
use serde::Deserialize;
use worker::{url, Context, Env, Headers, Request, Response, Result};

/// The R2 bucket binding of artifacts (`wrangler.toml`).
pub const BUCKET_BINDING: &str = "ARTIFACTS";

/// The request's configuration, session and artifact.
fn target(req: &Request, env: &Env) -> std::result::Result<(EdgeConfig, url::Url, SessionId, ArtifactPath), ApiError> {
    let config = EdgeConfig::from_env(env).map_err(|e| {
        worker::console_error!("{}", serde_json::json!({"event": "config_error", "error": e.to_string()}));
        ApiError::new(ErrorCode::Misconfigured, "the gateway is misconfigured")
    })?;
    let url = req.url().map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let (session, path) = match parse_artifact_route(url.path()) {
        Some(Ok(target)) => target,
        Some(Err(e)) => return Err(ApiError::new(ErrorCode::BadPath, e.to_string())),
        None => return Err(ApiError::new(ErrorCode::NotFound, "no artifact named")),
    };
    Ok((config, url, session, path))
}

fn token_failure(e: VerifyError) -> ApiError {
    match e {
        VerifyError::Token(e) if e.is_forbidden() => ApiError::new(ErrorCode::Forbidden, e.to_string()),
        VerifyError::Token(e) => ApiError::new(ErrorCode::Unauthorized, e.to_string()),
        VerifyError::KeysUnavailable => ApiError::new(ErrorCode::KeysUnavailable, "signing keys cannot be fetched now"),
    }
}

async fn verify(
    config: &EdgeConfig,
    ctx: &Context,
    token: Option<String>,
    scope: Scope,
    session: &SessionId,
) -> std::result::Result<Verified, ApiError> {
    let token = token.ok_or_else(|| token_failure(VerifyError::Token(TokenError::Malformed("no token".into()))))?;
    keys::verify(config, Some(ctx), &token, Expectation { scope, session: Some(session) }).await.map_err(token_failure)
}

/// The request's `Authorization: Bearer` token, if any.
fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get("authorization").ok().flatten()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Serves an artifact route.
pub async fn serve(req: Request, env: &Env, ctx: &Context) -> Result<Response> {
    let outcome = match req.method() {
        worker::Method::Get => download(&req, env, ctx).await,
        worker::Method::Put => upload(&req, env, ctx).await,
        _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "artifacts are read with GET and uploaded with PUT")),
    };
    outcome.or_else(|f| error(&f))
}

#[derive(Deserialize)]
struct Redeemed {
    object_key: String,
}

async fn download(req: &Request, env: &Env, ctx: &Context) -> std::result::Result<Response, ApiError> {
    let (config, url, session, path) = target(req, env)?;
    if url.query_pairs().any(|(k, _)| k == "token") {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "send the link's token as Authorization: Bearer, never in the URL",
        ));
    }
    let link = verify(&config, ctx, bearer(req), Scope::ArtifactGet, &session).await?;
    check_link(&link, &session, &path, Method::Get).map_err(|e| ApiError::new(ErrorCode::Forbidden, e.to_string()))?;
    let c = link.claims();
    let body = serde_json::json!({
        "jti": c.jti.as_str(), "expires_at": c.exp, "session_id": session.as_str(),
        "path": path.as_str(), "owner": c.sub.as_str(),
    });
    let redeemed: Redeemed = control_api::internal(env, &config, "/internal/artifacts/redeem", &body).await?;
    let bucket = env.bucket(BUCKET_BINDING).map_err(|e| ApiError::new(ErrorCode::Misconfigured, e.to_string()))?;
    let object = bucket
        .get(redeemed.object_key.as_str())
        .execute()
        .await
        .map_err(|e| ApiError::new(ErrorCode::StorageUnavailable, e.to_string()))?
        .ok_or_else(|| ApiError::new(ErrorCode::ArtifactNotFound, "the artifact's content is gone"))?;
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| http::internal(e.to_string()));
    object.write_http_metadata(headers.clone()).map_err(|e| http::internal(e.to_string()))?;
    set("content-length", &object.size().to_string())?;
    set("cache-control", "private, no-store")?;
    set("x-content-type-options", "nosniff")?;
    let name = path.as_str().rsplit('/').next().unwrap_or("artifact");
    set("content-disposition", &format!("attachment; filename=\"{name}\""))?;
    let body = object.body().ok_or_else(|| http::internal("the object has no body"))?;
    let stream = body.stream().map_err(|e| http::internal(e.to_string()))?;
    Response::from_stream(stream).map(|r| r.with_headers(headers)).map_err(|e| http::internal(e.to_string()))
}

#[derive(Deserialize)]
struct Registered {
    object_key: String,
}

async fn upload(req: &Request, env: &Env, ctx: &Context) -> std::result::Result<Response, ApiError> {
    let (config, _, session, path) = target(req, env)?;
    verify(&config, ctx, bearer(req), Scope::ArtifactPut, &session).await?;
    let size: u64 = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::new(ErrorCode::LengthRequired, "an upload needs a Content-Length"))?;
    let sha256 = req.headers().get("x-content-sha256").ok().flatten();
    let body = serde_json::json!({
        "session_id": session.as_str(), "path": path.as_str(), "size": size, "sha256": sha256,
    });
    let registered: Registered = control_api::internal(env, &config, "/internal/artifacts", &body).await?;
    let bucket = env.bucket(BUCKET_BINDING).map_err(|e| ApiError::new(ErrorCode::Misconfigured, e.to_string()))?;
    let stream = req.inner().body().ok_or_else(|| ApiError::new(ErrorCode::EmptyBody, "the upload has no body"))?;
    bucket.put(registered.object_key.as_str(), stream).execute().await.map_err(|e| {
        worker::console_error!("{}", serde_json::json!({"event": "artifact_store_failed", "error": e.to_string()}));
        ApiError::new(ErrorCode::StorageUnavailable, format!("the upload could not be stored: {e}"))
    })?;
    let answer = serde_json::json!({ "session_id": session.as_str(), "path": path.as_str(), "size": size });
    Response::from_json(&answer).map(|r| r.with_status(201)).map_err(|e| http::internal(e.to_string()))
}

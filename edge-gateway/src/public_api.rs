//! The control plane's public API under the page's own origin: `/api/sessions/...`, `/api/regions`,
//! `/api/templates`, `/api/artifacts/...` and `/api/secrets/...` are passed to `CONTROL_URL` unchanged (method, `Authorization`, `Content-Type`,
//! body; the answer's status, type, `Retry-After` and body), so the web client needs no CORS and the
//! control plane can live anywhere. Pool and internal routes are not reachable this way. The browser's
//! address (`CF-Connecting-IP`) goes along in `x-edgeshell-client-ip`, vouched for by the internal key
//! in `x-edgeshell-edge-key`, so the control plane limits each browser's unauthenticated calls by its
//! own address rather than all of them by the edge's.
//! `GET /client-config.json` tells the page how to sign in.

use crate::config::{self, internal_key, EdgeConfig};
use crate::control_api;
use crate::http::{error, ApiError, ErrorCode};
use edgeshell_core::settings::{Reader, SettingsError};
use edgeshell_core::web_policy::SignInSources;
use std::time::Duration;
use worker::{Env, Headers, Method, Request, RequestInit, RequestRedirect, Response, Result};

/// How long the control plane may take (a mint asks a pool to start a runner, with failover).
const TIMEOUT: Duration = Duration::from_secs(20);
/// The largest request body passed on (session options, artifact requests).
const MAX_BODY: usize = 64 * 1024;
/// Paths that may be passed on.
const PUBLIC: [&str; 5] = ["/api/sessions", "/api/regions", "/api/templates", "/api/artifacts", "/api/secrets"];

/// True for a path this module serves: one of [`PUBLIC`] or below it.
pub fn is_public_api(path: &str) -> bool {
    PUBLIC.iter().any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// Passes one request to the control plane.
pub async fn proxy(mut req: Request, env: &Env) -> Result<Response> {
    let config = match EdgeConfig::from_env(env) {
        Ok(c) => c,
        Err(e) => return error(&ApiError::new(ErrorCode::Misconfigured, e.to_string())),
    };
    let url = req.url()?;
    let mut target = format!("{}{}", config.control_url, url.path());
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let headers = Headers::new();
    for name in ["authorization", "content-type", "accept"] {
        if let Some(value) = req.headers().get(name)? {
            headers.set(name, &value)?;
        }
    }
    if let Some(client) = req.headers().get("cf-connecting-ip")? {
        let key = match internal_key(env) {
            Ok(key) => key,
            Err(e) => return error(&ApiError::new(ErrorCode::Misconfigured, e.to_string())),
        };
        headers.set("x-edgeshell-client-ip", &client)?;
        headers.set("x-edgeshell-edge-key", &key)?;
    }
    let method = req.method();
    let mut init = RequestInit::new();
    // Never followed: the browser's credentials and the edge's key go only to CONTROL_URL.
    init.with_method(method.clone()).with_headers(headers).with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        let body = req.bytes().await?;
        if body.len() > MAX_BODY {
            return error(&ApiError::new(ErrorCode::BodyTooLarge, format!("at most {MAX_BODY} bytes")));
        }
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let forwarded = Request::new_with_init(&target, &init)?;
    let mut answer = match control_api::send(forwarded, TIMEOUT).await {
        Ok(answer) => answer,
        Err(failure) => return error(&failure),
    };
    let status = answer.status_code();
    let body = answer.bytes().await?;
    let headers = Headers::new();
    for name in ["content-type", "retry-after", "server-timing"] {
        if let Some(value) = answer.headers().get(name)? {
            headers.set(name, &value)?;
        }
    }
    headers.set("cache-control", "no-store")?;
    Ok(Response::from_bytes(body)?.with_status(status).with_headers(headers))
}

/// `GET /client-config.json`: how the page signs people in (all public values). `FIREBASE_PROJECT_ID`
/// and `FIREBASE_API_KEY` (with `FIREBASE_AUTH_DOMAIN`, default `<project>.firebaseapp.com`) select
/// Firebase Authentication; otherwise `OIDC_ISSUER` and `OIDC_CLIENT_ID` select an OpenID Connect
/// provider (the authorization-code flow with PKCE and refresh tokens). Half a pair, or neither, is a
/// configuration error.
pub fn client_config(env: &Env) -> Result<Response> {
    let body = match config::read(env, sign_in) {
        Ok(body) => body,
        Err(e) => return error(&ApiError::new(ErrorCode::Misconfigured, e.to_string())),
    };
    let mut response = Response::from_json(&body)?;
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}

/// Firebase's auth domain when Firebase sign-in is configured: `FIREBASE_AUTH_DOMAIN`, else the
/// project's `<project>.firebaseapp.com`.
pub fn firebase_auth_domain(settings: &Reader<'_>) -> core::result::Result<Option<String>, SettingsError> {
    let Some(project) = settings.text("FIREBASE_PROJECT_ID")? else { return Ok(None) };
    Ok(Some(settings.text("FIREBASE_AUTH_DOMAIN")?.unwrap_or_else(|| format!("{project}.firebaseapp.com"))))
}

/// Where the page's sign-in reaches beyond the edge (its Content-Security-Policy): Firebase's domains,
/// or the OIDC issuer's origin and `OIDC_CONNECT_ORIGINS`.
pub fn sign_in_sources(settings: &Reader<'_>) -> core::result::Result<SignInSources, SettingsError> {
    if let Some(domain) = firebase_auth_domain(settings)? {
        return Ok(SignInSources { firebase_auth_domain: Some(domain), ..SignInSources::default() });
    }
    match settings.text("OIDC_ISSUER")? {
        Some(issuer) => SignInSources::oidc(&issuer, settings.text("OIDC_CONNECT_ORIGINS")?.as_deref())
            .map_err(|why| settings.invalid("OIDC_ISSUER", why)),
        None => Ok(SignInSources::default()),
    }
}

fn sign_in(settings: &Reader<'_>) -> core::result::Result<serde_json::Value, SettingsError> {
    let firebase = match (settings.text("FIREBASE_PROJECT_ID")?, settings.text("FIREBASE_API_KEY")?) {
        (Some(project), Some(api_key)) => Some(serde_json::json!({
            "auth_domain": firebase_auth_domain(settings)?.unwrap_or_default(),
            "project_id": project,
            "api_key": api_key,
        })),
        (None, None) => None,
        _ => {
            return Err(settings.invalid(
                "FIREBASE_API_KEY",
                "FIREBASE_PROJECT_ID and FIREBASE_API_KEY are set together or not at all",
            ))
        }
    };
    let oidc = match (settings.text("OIDC_ISSUER")?, settings.text("OIDC_CLIENT_ID")?) {
        (Some(issuer), Some(client_id)) => Some(serde_json::json!({
            "issuer": issuer,
            "client_id": client_id,
            "scope": settings.required("OIDC_SCOPE")?,
        })),
        (None, None) => None,
        _ => {
            return Err(
                settings.invalid("OIDC_CLIENT_ID", "OIDC_ISSUER and OIDC_CLIENT_ID are set together or not at all")
            )
        }
    };
    if firebase.is_none() && oidc.is_none() {
        // No sign-in is configured.
        return Err(SettingsError::Missing(
            "OIDC_ISSUER and OIDC_CLIENT_ID (or FIREBASE_PROJECT_ID and FIREBASE_API_KEY)",
        ));
    }
    // A malformed issuer or origin list is refused here too, not only where the page's policy is built.
    sign_in_sources(settings)?;
    let named = settings.text("OIDC_PROVIDER_NAME")?;
    let provider_name = match (&firebase, named) {
        (_, Some(name)) => name,
        (Some(_), None) => "Google".to_owned(),
        (None, None) => "your identity provider".to_owned(),
    };
    Ok(serde_json::json!({
        // Firebase, when configured, is what the page uses.
        "oidc": if firebase.is_some() { None } else { oidc },
        "firebase": firebase,
        "provider_name": provider_name,
        "protocol": edgeshell_core::protocol::SUBPROTOCOL,
    }))
}

//! The page's document, `/` (and `/index.html`): the built `index.html` from the static assets (the
//! `ASSETS` binding), served with the core's Content-Security-Policy for the configured sign-in
//! (`web_policy::content_security_policy`: no foreign scripts, `frame-ancestors 'none'`) and the page
//! headers. The other assets (scripts, styles, wasm) are served by the platform with the static
//! `_headers` file's headers.

use crate::config;
use crate::http::{error, ApiError, ErrorCode};
use crate::public_api::sign_in_sources;
use edgeshell_core::web_policy::{content_security_policy, PAGE_HEADERS};
use worker::{Env, Request, Response, Result};

/// True for the paths that are the page's document.
pub fn is_page(path: &str) -> bool {
    path == "/" || path == "/index.html"
}

/// Serves the document with its policy.
pub async fn serve(req: &Request, env: &Env) -> Result<Response> {
    let sources = config::read(env, sign_in_sources);
    let sources = match sources {
        Ok(sources) => sources,
        Err(e) => return error(&ApiError::new(ErrorCode::Misconfigured, e.to_string())),
    };
    let url = req.url()?;
    let index = format!("{}/", url.origin().ascii_serialization());
    let mut asset = env.assets("ASSETS")?.fetch(index, None).await?;
    if asset.status_code() != 200 {
        let why = format!("the page's index.html answered HTTP {} (was the page built?)", asset.status_code());
        return error(&ApiError::new(ErrorCode::Misconfigured, why));
    }
    let body = asset.bytes().await?;
    let mut response = Response::from_bytes(body)?;
    let headers = response.headers_mut();
    headers.set("content-type", "text/html; charset=utf-8")?;
    headers.set("cache-control", "no-cache")?;
    headers.set("content-security-policy", &content_security_policy(&sources))?;
    for (name, value) in PAGE_HEADERS {
        headers.set(name, value)?;
    }
    Ok(response)
}

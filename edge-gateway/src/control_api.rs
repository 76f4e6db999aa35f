//! Calls from the edge to the control plane: a fetch with a deadline, and the internal routes
//! (`/internal/*`, with the internal API key), whose JSON errors pass through with their code.

use crate::config::{internal_key, EdgeConfig};
use crate::http::{self, ApiError, ErrorCode};
use futures_util::future::{select, Either};
use std::time::Duration;
use worker::{Delay, Env, Fetch, Headers, Request, RequestInit, RequestRedirect, Response};

/// How long an internal call may take.
const INTERNAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `request`, giving up after `timeout`; a failure or timeout is `503 control_unavailable`.
pub async fn send(request: Request, timeout: Duration) -> Result<Response, ApiError> {
    let unavailable = |why: String| ApiError::new(ErrorCode::ControlUnavailable, why);
    let fetch = Fetch::Request(request);
    let sent = Box::pin(fetch.send());
    let answer = match select(sent, Box::pin(Delay::from(timeout))).await {
        Either::Left((Ok(r), _)) => Ok(r),
        Either::Left((Err(e), _)) => Err(unavailable(e.to_string())),
        Either::Right(_) => Err(unavailable(format!("no answer within {timeout:?}"))),
    };
    answer
}

/// POSTs `body` to an internal route of the control plane and reads its JSON answer.
pub async fn internal<T: serde::de::DeserializeOwned>(
    env: &Env,
    config: &EdgeConfig,
    path: &str,
    body: &serde_json::Value,
) -> Result<T, ApiError> {
    let unavailable = |why: String| ApiError::new(ErrorCode::ControlUnavailable, why);
    let key = internal_key(env).map_err(|e| ApiError::new(ErrorCode::Misconfigured, e.to_string()))?;
    let headers = Headers::new();
    headers.set("authorization", &format!("Bearer {key}")).map_err(|e| http::internal(e.to_string()))?;
    headers.set("content-type", "application/json").map_err(|e| http::internal(e.to_string()))?;
    let mut init = RequestInit::new();
    // A redirect is an answer like any other, never followed: the key goes only to CONTROL_URL.
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(body.to_string().into()))
        .with_redirect(RequestRedirect::Manual);
    let request = Request::new_with_init(&format!("{}{path}", config.control_url), &init)
        .map_err(|e| http::internal(e.to_string()))?;
    let mut response = send(request, INTERNAL_TIMEOUT).await?;
    let status = response.status_code();
    let text = response.text().await.map_err(|e| unavailable(e.to_string()))?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|e| ApiError::new(ErrorCode::BadControlAnswer, e.to_string()));
    }
    match ApiError::from_body(text.as_bytes()) {
        // A 401 about what was asked (a pool key that is unknown or revoked) passes through; one about
        // the gateway's own key means the gateway is misconfigured.
        Ok(refusal) if status == 401 && refusal.code != ErrorCode::Unauthorized => Err(refusal),
        _ if status == 401 => {
            Err(ApiError::new(ErrorCode::Misconfigured, "the control plane refused the gateway's internal key"))
        }
        // The control plane's refusal passes through: its code is a row of the same table.
        Ok(refusal) if status < 500 => Err(refusal),
        Err(e) if status < 500 => Err(ApiError::new(ErrorCode::BadControlAnswer, format!("HTTP {status}: {e}"))),
        _ => Err(unavailable(format!("the control plane answered HTTP {status}"))),
    }
}

//! HTTP/1.1 servers on hyper for the native services, answering in the core's shapes: JSON bodies with
//! `cache-control: no-store`, and every error as an [`ApiError`] from the one table
//! (`edgeshell_core::api_error`), with `Retry-After` where its row allows a retry.

use bytes::Bytes;
use edgeshell_core::api_error::{ApiError, ErrorCode, JSON_HEADERS};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A complete response.
pub type Reply = Response<Full<Bytes>>;

/// A response of `status` with `body` of `content_type`, which no cache may keep.
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Ok(value) = content_type.parse() {
        headers.insert(hyper::header::CONTENT_TYPE, value);
    }
    headers.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    response
}

/// A JSON response.
pub fn json(status: u16, body: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(body) {
        Ok(bytes) => respond(status, JSON_HEADERS[0].1, bytes),
        Err(e) => error(&ApiError::new(ErrorCode::InternalError, format!("serializing the answer: {e}"))),
    }
}

/// The answer for an error of the table.
pub fn error(e: &ApiError) -> Reply {
    let mut response = respond(e.status(), JSON_HEADERS[0].1, e.body());
    for (name, value) in e.headers() {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The token of `Authorization: Bearer <token>`, if any.
pub fn bearer<T>(req: &Request<T>) -> Option<&str> {
    let value = req.headers().get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// The whole body, at most `max` bytes; a longer one is `body_too_large`.
pub async fn read_body(body: Incoming, max: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(ApiError::new(ErrorCode::BodyTooLarge, format!("the body may hold at most {max} bytes ({e})"))),
    }
}

/// The answer for a route that exists but not for this method.
pub fn method_not_allowed(allowed: &str) -> Reply {
    error(&ApiError::new(ErrorCode::MethodNotAllowed, format!("this route takes {allowed}")))
}

/// The answer for a path with no route.
pub fn not_found(path: &str) -> Reply {
    error(&ApiError::new(ErrorCode::NotFound, format!("no route {path}")))
}

/// Serves HTTP/1.1 (with keep-alive) on `listener`, each request answered by `handle`, until the task
/// is dropped. Accepted connections set `TCP_NODELAY`: answers are small and a delayed ACK once cost a
/// JTI check 40 ms (docs/perf/control-plane.md).
pub async fn serve<S, F, Fut>(listener: TcpListener, state: Arc<S>, handle: F)
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors and the like: wait a little instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_table_s_status_body_and_retry_after() {
        let response = error(&ApiError::new(ErrorCode::DatabaseUnavailable, "down"));
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let response = not_found("/x");
        assert_eq!(response.status(), 404);
        assert!(response.headers().get("retry-after").is_none());
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let req = |v: &str| Request::builder().header("authorization", v).body(()).unwrap();
        assert_eq!(bearer(&req("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&req("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&req("Basic abc")), None);
        assert_eq!(bearer(&req("Bearer ")), None);
    }
}

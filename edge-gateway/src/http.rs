//! Plain HTTP answers of the gateway: every error is an [`ApiError`] of the core's one table
//! (`edgeshell_core::api_error`), in its JSON shape, with `Retry-After` where its row allows a retry.

pub use edgeshell_core::api_error::{ApiError, ErrorCode};
use subtle::ConstantTimeEq;
use worker::{Env, Request, Response, Result};

/// A bug or platform failure on our side.
pub fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InternalError, message)
}

/// The edge's own internal routes take the control plane's internal key as `Authorization: Bearer`,
/// compared in constant time; a misconfigured key refuses every call.
pub fn require_internal(req: &Request, env: &Env) -> std::result::Result<(), ApiError> {
    let expected =
        crate::config::internal_key(env).map_err(|e| ApiError::new(ErrorCode::Misconfigured, e.to_string()))?;
    let presented = req.headers().get("authorization").ok().flatten().unwrap_or_default();
    let presented = presented.strip_prefix("Bearer ").unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Unauthorized, "missing or wrong internal API key"))
    }
}

/// The JSON answer for an error.
pub fn error(error: &ApiError) -> Result<Response> {
    let mut response = Response::from_bytes(error.body())?.with_status(error.status());
    for (name, value) in error.headers() {
        response.headers_mut().set(name, &value)?;
    }
    Ok(response)
}

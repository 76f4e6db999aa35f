//! Plain HTTP answers of the gateway: every error is an [`ApiError`] of the core's one table
//! (`edgeshell_core::api_error`), in its JSON shape, with `Retry-After` where its row allows a retry.

pub use edgeshell_core::api_error::{ApiError, ErrorCode};
use worker::{Response, Result};

/// A bug or platform failure on our side.
pub fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InternalError, message)
}

/// The JSON answer for an error.
pub fn error(error: &ApiError) -> Result<Response> {
    let mut response = Response::from_bytes(error.body())?.with_status(error.status());
    for (name, value) in error.headers() {
        response.headers_mut().set(name, &value)?;
    }
    Ok(response)
}

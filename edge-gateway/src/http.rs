//! Plain HTTP answers of the gateway: JSON errors in the control plane's shape,
//! `{"error": {"code": "...", "message": "..."}}`, with a stable code.

use worker::{Response, Result};

/// A request that failed, with its HTTP status and stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl Failure {
    /// A failure with this status, code and message.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure { status, code: code.into(), message: message.into() }
    }

    /// A bug or platform failure on our side.
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(500, "internal_error", message)
    }
}

/// The JSON answer for a failure.
pub fn error(failure: &Failure) -> Result<Response> {
    let body = serde_json::json!({ "error": { "code": failure.code, "message": failure.message } });
    let mut response = Response::from_json(&body)?.with_status(failure.status);
    if failure.status == 503 {
        response.headers_mut().set("retry-after", "1")?;
    }
    Ok(response)
}

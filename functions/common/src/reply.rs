//! Responses: JSON bodies, and every error as an [`ApiError`] of the core's one table
//! (`edgeshell_core::api_error`): `{"error": {"code", "message"}}` with the row's status, and
//! `Retry-After` where retrying helps.

pub use edgeshell_core::api_error::{ApiError, ErrorCode, JSON_HEADERS};
use spin_sdk::http::Response;

/// What a handler returns.
pub type Reply = Result<Response, ApiError>;

/// 500: a bug or a misconfiguration; the message is logged, the client gets a generic one.
pub fn internal(message: impl Into<String>) -> ApiError {
    let message = message.into();
    eprintln!("internal error: {message}");
    ApiError::new(ErrorCode::InternalError, "the function failed; see its log")
}

/// The response for an error.
pub fn error_response(error: &ApiError) -> Response {
    let mut builder = Response::builder();
    builder.status(error.status());
    for (name, value) in error.headers() {
        builder.header(name, value);
    }
    builder.body(error.body()).build()
}

/// A JSON response.
pub fn json(status: u16, body: &impl serde::Serialize) -> Reply {
    json_with(status, body, &[])
}

/// A JSON response with extra headers.
pub fn json_with(status: u16, body: &impl serde::Serialize, headers: &[(&str, String)]) -> Reply {
    let body = serde_json::to_vec(body).map_err(|e| internal(format!("serializing a response: {e}")))?;
    let mut builder = Response::builder();
    builder.status(status);
    for (name, value) in JSON_HEADERS {
        builder.header(name, value);
    }
    for (name, value) in headers {
        builder.header(*name, value.as_str());
    }
    Ok(builder.body(body).build())
}

/// Turns a handler's result into the response.
pub fn finish(reply: Reply) -> Response {
    reply.unwrap_or_else(|e| error_response(&e))
}

//! Responses: JSON bodies, and every error as `{"error": {"code", "message"}}` with a stable code, the
//! right status, and `Retry-After` where retrying helps.

use spin_sdk::http::Response;

/// What a handler returns.
pub type Reply = Result<Response, Failure>;

/// A failed request, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status.
    pub status: u16,
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// Seconds after which a retry may succeed.
    pub retry_after: Option<u64>,
}

impl Failure {
    /// A failure without `Retry-After`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Failure {
        Failure { status, code, message: message.into(), retry_after: None }
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Failure {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Failure {
        Failure::new(400, code, message)
    }

    /// 500: a bug or a misconfiguration; the message is logged, the client gets a generic one.
    pub fn internal(message: impl Into<String>) -> Failure {
        let message = message.into();
        eprintln!("internal error: {message}");
        Failure::new(500, "internal_error", "the function failed; see its log")
    }

    /// The response.
    pub fn into_response(self) -> Response {
        let mut builder = Response::builder();
        builder.status(self.status);
        for (name, value) in self.headers() {
            builder.header(name, value);
        }
        builder.body(self.body()).build()
    }

    /// The JSON body: `{"error": {"code", "message"}}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } }).to_string().into_bytes()
    }

    /// The headers every error carries, and `Retry-After` where retrying helps.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = JSON_HEADERS.map(|(name, value)| (name, value.to_owned())).to_vec();
        if let Some(secs) = self.retry_after {
            headers.push(("retry-after", secs.to_string()));
        }
        headers
    }
}

/// The headers of every JSON answer: the type, and that no cache may keep it.
pub const JSON_HEADERS: [(&str, &str); 2] = [("content-type", "application/json"), ("cache-control", "no-store")];

/// A JSON response.
pub fn json(status: u16, body: &impl serde::Serialize) -> Reply {
    json_with(status, body, &[])
}

/// A JSON response with extra headers.
pub fn json_with(status: u16, body: &impl serde::Serialize, headers: &[(&str, String)]) -> Reply {
    let body = serde_json::to_vec(body).map_err(|e| Failure::internal(format!("serializing a response: {e}")))?;
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
    reply.unwrap_or_else(Failure::into_response)
}

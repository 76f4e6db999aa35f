//! The one table of HTTP errors, as [`crate::protocol::CloseCode`] is for WebSocket closes: every error
//! any edgeshell service answers (the control functions, the Worker, the token signer, the dev issuer,
//! the functions host and the pool agent) has a row here with its stable code, HTTP status, meaning and
//! whether retrying can help, and travels in one JSON shape:
//!
//! ```json
//! {"error": {"code": "quota_exceeded", "message": "5 sessions are already running; end one first"}}
//! ```
//!
//! with `Retry-After` (seconds) when the row says a retry helps. No handler invents a code: it builds an
//! [`ApiError`] from an [`ErrorCode`], so a code outside the table does not compile.
//! `docs/errors.md` reproduces the table; a tidy test keeps the two equal.

use serde::{Deserialize, Serialize};

/// Whether a client should send the same request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retrying the same request cannot help; change it (or the credentials) first.
    Never,
    /// A retry may succeed after this many seconds (the answer's `Retry-After` may say more exactly).
    After(u64),
}

macro_rules! error_table {
    ($( $(#[doc = $doc:literal])+ $variant:ident = ($name:literal, $status:literal, $retry:expr), )+) => {
        /// A stable error code. See the module documentation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])+ $variant, )+
        }

        /// Every error code, in table order.
        pub const ALL_ERROR_CODES: &[ErrorCode] = &[$(ErrorCode::$variant),+];

        impl ErrorCode {
            /// The machine-readable name: the `code` of the JSON body.
            pub const fn name(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)+ }
            }

            /// The HTTP status every answer with this code carries.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)+ }
            }

            /// Whether (and after how long) a retry may succeed.
            pub const fn retry(self) -> Retry {
                match self { $(ErrorCode::$variant => $retry,)+ }
            }

            /// What the code means, in one sentence (the table's doc line).
            pub fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => concat!($($doc),+).trim_ascii(),)+ }
            }
        }
    };
}

use Retry::{After, Never};

error_table! {
    /// The request is malformed: unreadable JSON, a missing or unknown field, a bad query.
    BadRequest = ("bad_request", 400, Never),
    /// A session id that is not one.
    BadSession = ("bad_session", 400, Never),
    /// An end reason the edge may not report.
    BadReason = ("bad_reason", 400, Never),
    /// A token id (`jti`) that is not one.
    BadJti = ("bad_jti", 400, Never),
    /// An expiry in the past or too far ahead.
    BadExpiry = ("bad_expiry", 400, Never),
    /// An artifact path outside the rules (relative, no `..`, bounded length).
    BadPath = ("bad_path", 400, Never),
    /// A SHA-256 that is not 64 hex digits.
    BadSha256 = ("bad_sha256", 400, Never),
    /// An upload whose bytes are not what it declared (its SHA-256 or its `Content-Length`).
    ContentMismatch = ("content_mismatch", 400, Never),
    /// A pool endpoint the control plane may not call.
    BadEndpoint = ("bad_endpoint", 400, Never),
    /// A pool's capacity or load out of range.
    BadCapacity = ("bad_capacity", 400, Never),
    /// A region name that is not one.
    BadRegion = ("bad_region", 400, Never),
    /// A session asked of a template no region offers (`GET /api/templates` lists them).
    UnknownTemplate = ("unknown_template", 400, Never),
    /// A session variable its template does not let users set, or a value out of bounds.
    BadEnv = ("bad_env", 400, Never),
    /// A repository its template does not take, or a URL or branch out of bounds.
    BadRepo = ("bad_repo", 400, Never),
    /// A pool command on the wrong route, or not a command at all.
    BadCommand = ("bad_command", 400, Never),
    /// A dev user name the dev issuer refuses.
    BadUser = ("bad_user", 400, Never),
    /// A start whose deadline has already passed.
    DeadlinePassed = ("deadline_passed", 400, Never),
    /// A session's deadline lies beyond the pool's ceiling on a runner's life.
    BeyondRuntime = ("beyond_runtime", 400, Never),
    /// An upload without a body.
    EmptyBody = ("empty_body", 400, Never),
    /// A session frame that breaks the protocol (a refused upgrade of the native room).
    ProtocolError = ("protocol_error", 400, Never),
    /// No credential, or a malformed, forged or unknown one; or a bad resume ticket.
    Unauthorized = ("unauthorized", 401, Never),
    /// The token or the seat's authorization expired: get a new token.
    TokenExpired = ("token_expired", 401, Never),
    /// No OIDC ID token in `Authorization: Bearer`.
    MissingIdToken = ("missing_id_token", 401, Never),
    /// The ID token does not verify (signature, issuer, audience, expiry, unknown key).
    InvalidIdToken = ("invalid_id_token", 401, Never),
    /// No pool API key in `Authorization: Bearer`.
    MissingApiKey = ("missing_api_key", 401, Never),
    /// An unknown or revoked pool API key.
    InvalidApiKey = ("invalid_api_key", 401, Never),
    /// A valid credential that does not grant this: another session, scope, body or path.
    Forbidden = ("forbidden", 403, Never),
    /// A pool key or command for another region.
    WrongRegion = ("wrong_region", 403, Never),
    /// No such route.
    NotFound = ("not_found", 404, Never),
    /// No such session (or not the caller's).
    SessionNotFound = ("session_not_found", 404, Never),
    /// No such artifact (or its content is gone).
    ArtifactNotFound = ("artifact_not_found", 404, Never),
    /// The route exists but not for this method.
    MethodNotAllowed = ("method_not_allowed", 405, Never),
    /// A connection of a session went silent (a refused upgrade of the native room).
    HeartbeatTimeout = ("heartbeat_timeout", 408, After(1)),
    /// The token's one-time id (or a link) was already used.
    ReplayedToken = ("replayed_token", 409, Never),
    /// The session already has an artifact at this path.
    ArtifactExists = ("artifact_exists", 409, Never),
    /// Another upload to this artifact's path is under way; send it again once that one is done.
    UploadInProgress = ("upload_in_progress", 409, Never),
    /// The pool already runs a runner for this session.
    AlreadyRunning = ("already_running", 409, Never),
    /// A newer connection of the same seat took over.
    Superseded = ("superseded", 409, Never),
    /// The resume point is no longer held: attach afresh with a new token.
    ResumeFailed = ("resume_failed", 409, Never),
    /// The session ended (exited, ended by its owner or the edge, idle, deadline).
    SessionEnded = ("session_ended", 410, Never),
    /// The session's runner stopped answering and did not come back.
    RunnerLost = ("runner_lost", 410, Never),
    /// An upload without `Content-Length`.
    LengthRequired = ("length_required", 411, Never),
    /// The body is larger than the route accepts.
    BodyTooLarge = ("body_too_large", 413, Never),
    /// An artifact over the size, count or per-user storage limit.
    ArtifactLimit = ("artifact_limit", 413, Never),
    /// The signer refuses these claims (unknown members, wrong issuer, over the kind's lifetime).
    ClaimsRefused = ("claims_refused", 422, Never),
    /// The signer refuses claims not issued now (back-dated or post-dated).
    NotIssuedNow = ("not_issued_now", 422, Never),
    /// A session route was asked without a WebSocket upgrade.
    UpgradeRequired = ("upgrade_required", 426, Never),
    /// Too many live sessions or new sessions for this user; `Retry-After` says when.
    QuotaExceeded = ("quota_exceeded", 429, After(30)),
    /// Requests come too often (pool heartbeats).
    RateLimited = ("rate_limited", 429, After(1)),
    /// Input arrives faster than the session's program reads it (a close of the session's socket).
    InputOverflow = ("input_overflow", 429, After(1)),
    /// A bug or a platform failure on our side; the details are in the service's log.
    InternalError = ("internal_error", 500, After(1)),
    /// The service's settings are wrong (a missing binding, variable or key).
    Misconfigured = ("misconfigured", 500, Never),
    /// The signing keys are set but unusable.
    SigningKeyUnusable = ("signing_key_unusable", 500, Never),
    /// Signing failed at the signer.
    SigningFailed = ("signing_failed", 500, After(1)),
    /// The control plane answered the edge with something that is not its API.
    BadControlAnswer = ("bad_control_answer", 502, After(1)),
    /// The artifact store failed.
    StorageUnavailable = ("storage_unavailable", 502, After(1)),
    /// The pool's backend could not start the runner.
    RunnerStartFailed = ("runner_start_failed", 502, After(1)),
    /// The pool's backend could not stop the runner.
    RunnerStopFailed = ("runner_stop_failed", 502, After(1)),
    /// The pool agent holding a command went before answering: a start may have happened (stop it).
    PoolAgentLost = ("pool_agent_lost", 502, After(1)),
    /// Too many requests in flight (or a full room); retry shortly.
    Overloaded = ("overloaded", 503, After(1)),
    /// The token signer cannot be reached.
    SignerUnavailable = ("signer_unavailable", 503, After(1)),
    /// The database cannot be reached.
    DatabaseUnavailable = ("database_unavailable", 503, After(1)),
    /// The control plane cannot be reached from the edge.
    ControlUnavailable = ("control_unavailable", 503, After(1)),
    /// No region can take a session now.
    NoRegionAvailable = ("no_region_available", 503, After(5)),
    /// The verifying keys (JWKS) cannot be fetched.
    KeysUnavailable = ("keys_unavailable", 503, After(1)),
    /// The identity provider's keys cannot be fetched, so no ID token can be checked.
    IdentityProviderUnavailable = ("identity_provider_unavailable", 503, After(5)),
    /// The pool is at capacity.
    AtCapacity = ("at_capacity", 503, After(1)),
    /// The pool is draining and takes no new sessions.
    Draining = ("draining", 503, After(5)),
    /// No agent of the region's pool is connected with room for a session.
    NoPoolAgent = ("no_pool_agent", 503, After(1)),
    /// The pool agent did not answer the command in time: it may still be carried out.
    PoolCommandTimeout = ("pool_command_timeout", 504, After(1)),
}

/// The table as Markdown, as `docs/errors.md` holds it.
pub fn render_markdown() -> String {
    let mut out = String::from("| code | HTTP | retry | meaning |\n|---|---|---|---|\n");
    for code in ALL_ERROR_CODES {
        let retry = match code.retry() {
            Retry::Never => "no".to_owned(),
            Retry::After(secs) => format!("after {secs} s"),
        };
        out.push_str(&format!("| `{}` | {} | {retry} | {} |\n", code.name(), code.status(), code.meaning()));
    }
    out
}

impl ErrorCode {
    /// The code for a name, if it is in the table.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ALL_ERROR_CODES.iter().copied().find(|c| c.name() == name)
    }
}

/// A failed request as the client sees it: a code from the table, a message for people, and when a retry
/// may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The row of the table.
    pub code: ErrorCode,
    /// What went wrong, for people; never a secret.
    pub message: String,
    /// `Retry-After` in seconds; `None` when the row says retrying cannot help.
    pub retry_after: Option<u64>,
}

/// The wire shape, `{"error": {"code", "message"}}`, as written.
#[derive(Serialize)]
struct BodyOut<'a> {
    error: InnerOut<'a>,
}

#[derive(Serialize)]
struct InnerOut<'a> {
    code: &'a str,
    message: &'a str,
}

/// The wire shape as read.
#[derive(Deserialize)]
struct BodyIn {
    error: InnerIn,
}

#[derive(Deserialize)]
struct InnerIn {
    code: String,
    #[serde(default)]
    message: String,
}

/// A body that is not an error of the table (what a client got instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAnApiError {
    /// Not `{"error": {"code", "message"}}`.
    #[error("not an edgeshell error body: {0}")]
    Shape(String),
    /// The shape, with a code outside the table.
    #[error("unknown error code {0:?}")]
    UnknownCode(String),
}

impl ApiError {
    /// An error with the row's default `Retry-After`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        let retry_after = match code.retry() {
            Retry::Never => None,
            Retry::After(secs) => Some(secs),
        };
        ApiError { code, message: message.into(), retry_after }
    }

    /// Sets `Retry-After` (at least one second) for a row that allows retries; a row that says retrying
    /// cannot help keeps none.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        if self.code.retry() != Retry::Never {
            self.retry_after = Some(secs.max(1));
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let body = BodyOut { error: InnerOut { code: self.code.name(), message: &self.message } };
        // Serializing two strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The headers every error answer carries besides its status: the JSON type, no caching, and
    /// `Retry-After` where the row allows a retry.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = JSON_HEADERS.map(|(name, value)| (name, value.to_owned())).to_vec();
        if let Some(secs) = self.retry_after {
            headers.push(("retry-after", secs.to_string()));
        }
        headers
    }

    /// Reads an error body (a client of any service, or the edge passing on the control plane's answer);
    /// `retry_after` is the row's default.
    pub fn from_body(body: &[u8]) -> Result<ApiError, NotAnApiError> {
        let parsed: BodyIn = serde_json::from_slice(body).map_err(|e| NotAnApiError::Shape(e.to_string()))?;
        let code = ErrorCode::from_name(&parsed.error.code).ok_or(NotAnApiError::UnknownCode(parsed.error.code))?;
        // `Retry-After` travels as a header; the row's default stands in for it.
        Ok(ApiError::new(code, parsed.error.message))
    }
}

impl core::fmt::Display for ApiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({}): {}", self.code.name(), self.code.status(), self.message)
    }
}

impl core::error::Error for ApiError {}

/// The headers of every JSON answer: the type, and that no cache may keep it.
pub const JSON_HEADERS: [(&str, &str); 2] = [("content-type", "application/json"), ("cache-control", "no-store")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_have_sensible_statuses() {
        for (i, c) in ALL_ERROR_CODES.iter().enumerate() {
            assert!(
                c.name().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                c.name()
            );
            assert!((400..600).contains(&c.status()), "{}", c.name());
            assert!(!c.meaning().is_empty() && c.meaning().ends_with('.'), "{}", c.name());
            assert_eq!(ErrorCode::from_name(c.name()), Some(*c));
            for other in &ALL_ERROR_CODES[i + 1..] {
                assert_ne!(c.name(), other.name());
            }
            // A server error says whether to retry; a client error retries only for limits and timeouts.
            if let Retry::After(secs) = c.retry() {
                assert!(secs >= 1 && (c.status() >= 500 || matches!(c.status(), 408 | 429)), "{}", c.name());
            }
        }
        assert_eq!(ErrorCode::from_name("teapot"), None);
    }

    #[test]
    fn the_wire_shape_round_trips() {
        let e = ApiError::new(ErrorCode::QuotaExceeded, "5 sessions \"running\"").retry_after(12);
        assert_eq!(e.status(), 429);
        let body = e.body();
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"error":{"code":"quota_exceeded","message":"5 sessions \"running\""}}"#
        );
        assert!(e.headers().contains(&("retry-after", "12".to_owned())));
        let back = ApiError::from_body(&body).unwrap();
        assert_eq!((back.code, back.message.as_str()), (ErrorCode::QuotaExceeded, "5 sessions \"running\""));
    }

    #[test]
    fn retry_after_only_where_the_row_allows_it() {
        assert_eq!(ApiError::new(ErrorCode::Forbidden, "no").retry_after(5).retry_after, None);
        assert_eq!(ApiError::new(ErrorCode::DatabaseUnavailable, "down").retry_after, Some(1));
        assert_eq!(ApiError::new(ErrorCode::NoRegionAvailable, "none").retry_after(0).retry_after, Some(1));
    }

    #[test]
    fn other_bodies_are_told_apart() {
        assert!(matches!(ApiError::from_body(b"<html>"), Err(NotAnApiError::Shape(_))));
        assert!(matches!(
            ApiError::from_body(br#"{"error":"at_capacity","message":"x"}"#),
            Err(NotAnApiError::Shape(_))
        ));
        assert_eq!(
            ApiError::from_body(br#"{"error":{"code":"teapot","message":"x"}}"#),
            Err(NotAnApiError::UnknownCode("teapot".into()))
        );
    }
}

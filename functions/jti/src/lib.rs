//! `POST /internal/jti/consume` — the atomic first-use check in Postgres for token ids that no single
//! Durable Object owns (artifact links, pool commands). Internal: callers present the internal API key.
//!
//! Request `{"jti": "...", "expires_at": <seconds>}`; answers `200 {"first_use": true}` on first use,
//! `409` (code `replayed_token`) after, `401` without the key, `400` for bad input, `503` when the
//! database is unreachable (with `Retry-After`). Every error is `{"error": {"code", "message"}}`.
//!
//! It is the hottest route of the control plane, so it reads the request on `wasi:http` directly
//! ([`edgeshell_fn::wasi_http`]): one header and the body, instead of a copy of the whole request.

use edgeshell_control_db::sql::{JTI_CONSUME, JTI_SWEEP};
use edgeshell_core::ids::Jti;
use edgeshell_core::jti::check_expiry;
use edgeshell_core::time::Timestamp;
use edgeshell_fn::db::{text, Db};
use edgeshell_fn::platform::now;
use edgeshell_fn::reply::{ApiError, ErrorCode};
use edgeshell_fn::request::{bearer_of, parse_json, require_internal_key};
use edgeshell_fn::wasi_http::{respond, Incoming};
use serde::Deserialize;
use spin_sdk::http::{IncomingRequest, Method, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::pg4::ParameterValue;

const MAX_BODY_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consume {
    jti: String,
    expires_at: u64,
}

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    respond(
        out,
        match consume(Incoming::new(req)) {
            Ok(true) => Ok((200, br#"{"first_use":true}"#.to_vec())),
            Ok(false) => Err(ApiError::new(ErrorCode::ReplayedToken, "this token id was already used")),
            Err(e) => Err(e),
        },
    )
}

fn consume(req: Incoming) -> Result<bool, ApiError> {
    if !matches!(req.method(), Method::Post) {
        return Err(ApiError::new(ErrorCode::MethodNotAllowed, "use POST"));
    }
    require_internal_key(req.header("authorization").as_deref().and_then(bearer_of))?;
    let input: Consume = parse_json(&req.body(MAX_BODY_BYTES)?, MAX_BODY_BYTES)?;
    let jti = Jti::new(input.jti).map_err(|e| ApiError::new(ErrorCode::BadJti, e.to_string()))?;
    check_expiry(Timestamp::from_secs(input.expires_at), now())
        .map_err(|e| ApiError::new(ErrorCode::BadExpiry, e.to_string()))?;
    let db = Db::open()?;
    let inserted =
        db.execute(JTI_CONSUME, &[text(jti.as_str()), ParameterValue::Floating64(input.expires_at as f64)])?;
    // Cleanup on write, about once every 64 consumes (spread by the id's bytes); failures do not matter.
    if jti.as_str().bytes().fold(0u8, u8::wrapping_add) % 64 == 0 {
        let _ = db.execute(JTI_SWEEP, &[]);
    }
    Ok(inserted == 1)
}

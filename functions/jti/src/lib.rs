//! `POST /internal/jti/consume` — the atomic first-use check in Postgres for token ids that no single
//! Durable Object owns (artifact links, pool commands). Internal: callers present the internal API key.
//!
//! Request `{"jti": "...", "expires_at": <seconds>}`; answers `200 {"first_use": true}` on first use,
//! `409` (code `replayed_token`) after, `401` without the key, `400` for bad input, `503` when the
//! database is unreachable (with `Retry-After`). Every error is `{"error": {"code", "message"}}`.

use edgeshell_control_db::sql::{JTI_CONSUME, JTI_SWEEP};
use edgeshell_core::ids::Jti;
use edgeshell_core::jti::check_expiry;
use edgeshell_core::time::Timestamp;
use serde::Deserialize;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::pg4::{Connection, ParameterValue, PgError};
use spin_sdk::{http_component, variables};
use subtle::ConstantTimeEq;

const MAX_BODY_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consume {
    jti: String,
    expires_at: u64,
}

#[http_component]
fn handle(req: Request) -> Response {
    match consume(&req) {
        Ok(first) if first => json(200, serde_json::json!({ "first_use": true })),
        Ok(_) => error(409, "replayed_token", "this token id was already used"),
        Err((status, code, message)) => error(status, code, &message),
    }
}

type Failure = (u16, &'static str, String);

fn consume(req: &Request) -> Result<bool, Failure> {
    if *req.method() != Method::Post {
        return Err((405, "method_not_allowed", "use POST".into()));
    }
    authorize(req)?;
    let body = req.body();
    if body.len() > MAX_BODY_BYTES {
        return Err((413, "body_too_large", format!("at most {MAX_BODY_BYTES} bytes")));
    }
    let input: Consume =
        serde_json::from_slice(body).map_err(|e| (400, "bad_request", format!("expected {{jti, expires_at}}: {e}")))?;
    let jti = Jti::new(input.jti).map_err(|e| (400, "bad_jti", e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| (500, "internal_error", "clock before the epoch".to_owned()))?;
    let now = Timestamp::from_millis(now.as_millis() as u64);
    check_expiry(Timestamp::from_secs(input.expires_at), now).map_err(|e| (400, "bad_expiry", e.to_string()))?;
    let url = variables::get("database_url").map_err(|e| (500, "internal_error", format!("database_url: {e}")))?;
    let db = Connection::open(&url).map_err(unavailable)?;
    let params = [ParameterValue::Str(jti.as_str().to_owned()), ParameterValue::Floating64(input.expires_at as f64)];
    let inserted = db.execute(JTI_CONSUME, &params).map_err(unavailable)?;
    // Cleanup on write, about once every 64 consumes (spread by the id's bytes); failures do not matter.
    if jti.as_str().bytes().fold(0u8, u8::wrapping_add) % 64 == 0 {
        let _ = db.execute(JTI_SWEEP, &[]);
    }
    Ok(inserted == 1)
}

/// Internal routes take `Authorization: Bearer <internal_api_key>`, compared in constant time.
fn authorize(req: &Request) -> Result<(), Failure> {
    let expected = variables::get("internal_api_key").unwrap_or_default();
    let presented = req
        .header("authorization")
        .and_then(|h| h.as_str())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    let ok = !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()));
    if ok {
        Ok(())
    } else {
        Err((401, "unauthorized", "missing or wrong internal API key".into()))
    }
}

fn unavailable(e: PgError) -> Failure {
    match e {
        PgError::ConnectionFailed(m) => (503, "database_unavailable", format!("the database is unavailable: {m}")),
        other => (500, "database_error", format!("{other:?}")),
    }
}

fn json(status: u16, body: serde_json::Value) -> Response {
    let mut builder = Response::builder();
    builder.status(status).header("content-type", "application/json");
    if status == 503 {
        builder.header("retry-after", "1");
    }
    builder.body(body.to_string()).build()
}

fn error(status: u16, code: &str, message: &str) -> Response {
    json(status, serde_json::json!({ "error": { "code": code, "message": message } }))
}

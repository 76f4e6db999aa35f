//! Users' secrets (API keys, Git tokens): set once, never shown again, injected into that user's
//! runners only.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/secrets` | user (ID token) | names and when each was set, never a value |
//! | `PUT /api/secrets/{name}` | user | `{value}`: set or replace (audited `secret.set`) |
//! | `DELETE /api/secrets/{name}` | user | remove (audited `secret.delete`) |
//! | `POST /internal/secrets/rewrap` | operator (internal key) | after a KEK rotation: rewrap up to 1,000 data keys (users' and sessions') with the current KEK; `{rewrapped, remaining}` |
//! | `POST /api/pools/secrets` | pool agent (pool key) | `{session_id, names}`: the values of those of the session owner's secrets, for a session of the key's region that is starting or running (audited `secret.use`) |
//!
//! Values are sealed with the user's data key, which is stored wrapped by the key-encryption key
//! (`secrets_kek`; `previous_secrets_kek` during a rotation): the rules and the format are the core's
//! `vault`. The database holds ciphertext only; no value is logged or answered to a user.

mod pool;
mod user;

use edgeshell_fn::data_keys as keys;
use edgeshell_fn::reply::{finish, ApiError, ErrorCode};
use edgeshell_fn::request::{segments_after, Request};
use edgeshell_fn::wasi_http::send;
use spin_sdk::http::{IncomingRequest, Method, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let req = Request::new(req);
    send(out, finish(route(&req)));
}

fn route(req: &Request) -> edgeshell_fn::Reply {
    if req.path().starts_with("/internal/") {
        // Internal routes do nothing, not even routing, for a caller without the internal key.
        edgeshell_fn::request::require_internal(req)?;
        return match (req.method(), req.path()) {
            (Method::Post, "/internal/secrets/rewrap") => rewrap(),
            (_, "/internal/secrets/rewrap") => {
                Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here"))
            }
            _ => Err(ApiError::new(ErrorCode::NotFound, "no such route")),
        };
    }
    // Before any authentication: a token of the caller's address.
    edgeshell_fn::ratelimit::admit(req, &edgeshell_fn::db::Db::open()?)?;
    if req.path() == pool::PATH {
        return match req.method() {
            Method::Post => pool::fetch(req),
            _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here")),
        };
    }
    let segments =
        segments_after(req, "/api/secrets").ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such route"))?;
    match (req.method(), segments.as_slice()) {
        (Method::Get, []) => user::list(req),
        (Method::Put, [name]) => user::set(req, name),
        (Method::Delete, [name]) => user::delete(req, name),
        (_, [] | [_]) => Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here")),
        _ => Err(ApiError::new(ErrorCode::NotFound, "no such route")),
    }
}

/// After a KEK rotation: every data key wrapped by an earlier KEK is wrapped by the current one, 1,000
/// per call; the rotation's last step (dropping the old KEK) waits for `remaining: 0`.
fn rewrap() -> edgeshell_fn::Reply {
    let db = edgeshell_fn::db::Db::open()?;
    let ring = keys::ring()?;
    let (rewrapped, remaining) = keys::rewrap_all(&db, &ring, 1000)?;
    db.execute(
        "INSERT INTO audit_log (actor, action, detail) VALUES ('operator', 'secret.rewrap',
         jsonb_build_object('kek', $1::text, 'rewrapped', $2::int8, 'remaining', $3::int8))",
        &[
            edgeshell_fn::db::text(ring.current_id()),
            edgeshell_fn::db::int(rewrapped as i64),
            edgeshell_fn::db::int(remaining as i64),
        ],
    )?;
    edgeshell_fn::reply::json(
        200,
        &serde_json::json!({ "kek": ring.current_id(), "rewrapped": rewrapped, "remaining": remaining }),
    )
}

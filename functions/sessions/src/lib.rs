//! `/api/sessions`: the user's sessions.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/sessions` | mint: authenticate, enforce quotas, place with failover, start the runner, answer the attach token |
//! | `GET /api/sessions` | the caller's recent sessions |
//! | `GET /api/sessions/{id}` | one of them |
//! | `POST /api/sessions/{id}/token` | a fresh attach token for a live session (in-band refresh) |
//! | `POST /api/sessions/{id}/extend` | move a live session's deadline later, within the longest lifetime (audited) |
//! | `DELETE /api/sessions/{id}` | end it: its room at the edge at once (`edge_origin`), and its runner |
//! | `POST /internal/sessions/{id}/ended` | the edge's room reports the session ended (internal key) |
//! | `GET /api/templates` | the templates a user may start, each with the regions offering it |
//!
//! Every public route takes the user's OIDC ID token as `Authorization: Bearer`. Sessions of other users
//! are reported as not found.

mod config;
mod edge;
mod extend;
mod manage;
mod mint;
mod pools;

use edgeshell_fn::reply::{finish, ApiError, ErrorCode};
use edgeshell_fn::request::{require_internal, segments_after, Request};
use edgeshell_fn::wasi_http::send;
use spin_sdk::http::{IncomingRequest, Method, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    send(out, finish(route(&Request::new(req))));
}

fn route(req: &Request) -> edgeshell_fn::Reply {
    if let Some(segments) = segments_after(req, "/internal/sessions") {
        // Internal routes do nothing, not even routing, for a caller without the internal key.
        require_internal(req)?;
        return match (req.method(), segments.as_slice()) {
            (Method::Post, [id, "ended"]) => edge::ended(req, id),
            (_, [_, "ended"]) => Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here")),
            _ => Err(not_found()),
        };
    }
    if req.path() == "/api/templates" {
        edgeshell_fn::ratelimit::admit(req, &edgeshell_fn::db::Db::open()?)?;
        return match req.method() {
            Method::Get => mint::templates(req),
            _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here")),
        };
    }
    let segments = segments_after(req, "/api/sessions").ok_or_else(not_found)?;
    // Before any authentication: a token of the caller's address.
    edgeshell_fn::ratelimit::admit(req, &edgeshell_fn::db::Db::open()?)?;
    match (req.method(), segments.as_slice()) {
        (Method::Post, []) => mint::mint(req),
        (Method::Get, []) => manage::list(req),
        (Method::Get, [id]) => manage::show(req, id),
        (Method::Post, [id, "token"]) => manage::refresh(req, id),
        (Method::Post, [id, "extend"]) => extend::extend(req, id),
        (Method::Delete, [id]) => manage::end(req, id),
        (_, [] | [_] | [_, "token" | "extend"]) => {
            Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here"))
        }
        _ => Err(not_found()),
    }
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

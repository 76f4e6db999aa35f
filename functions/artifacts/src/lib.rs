//! Artifacts: files a session's program produces, stored by the edge (R2) and handed out only to the
//! session's owner through signed, single-use, short-lived links. Every link issued, every upload and
//! every download is written to the audit log.
//!
//! | route | caller | what |
//! |---|---|---|
//! | `GET /api/artifacts?session=ID` | user (ID token) | the session's artifacts |
//! | `POST /api/artifacts/links` | user | `{session_id, path}` -> a download link |
//! | `POST /internal/artifacts` | edge (internal key) | register an upload under the limits (pending) -> its object key |
//! | `POST /internal/artifacts/complete` | edge | `{outcome: stored, size, sha256}` as streamed, or `{outcome: failed}` (path and quota released) |
//! | `POST /internal/artifacts/redeem` | edge | use a link once -> the object key |
//!
//! Limits: the `artifact_*` variables (docs/configuration.md; their defaults are `ArtifactLimits::DEFAULT`,
//! docs/requirements.md#r-limits).

mod edge;
mod user;

use edgeshell_core::artifacts::ArtifactLimits;
use edgeshell_fn::reply::{finish, ApiError, ErrorCode};
use edgeshell_fn::request::{require_internal, Request};
use edgeshell_fn::settings;
use edgeshell_fn::wasi_http::send;
use spin_sdk::http::{IncomingRequest, Method, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let req = Request::new(req);
    send(out, finish(route(&req)));
}

fn route(req: &Request) -> edgeshell_fn::Reply {
    // Internal routes do nothing, not even routing, for a caller without the internal key.
    if req.path().starts_with("/internal/") {
        require_internal(req)?;
    } else {
        // Before any authentication: a token of the caller's address.
        edgeshell_fn::ratelimit::admit(req, &edgeshell_fn::db::Db::open()?)?;
    }
    match (req.method(), req.path()) {
        (Method::Get, "/api/artifacts") => user::list(req),
        (Method::Post, "/api/artifacts/links") => user::link(req),
        (Method::Post, "/internal/artifacts") => edge::register(req),
        (Method::Post, "/internal/artifacts/complete") => edge::complete(req),
        (Method::Post, "/internal/artifacts/redeem") => edge::redeem(req),
        (
            _,
            "/api/artifacts"
            | "/api/artifacts/links"
            | "/internal/artifacts"
            | "/internal/artifacts/complete"
            | "/internal/artifacts/redeem",
        ) => Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed here")),
        _ => Err(ApiError::new(ErrorCode::NotFound, "no such route")),
    }
}

/// The limits in force.
fn limits() -> Result<ArtifactLimits, ApiError> {
    settings::read(|s| {
        Ok(ArtifactLimits {
            max_per_session: s.number("artifact_max_per_session")?,
            max_bytes: s.number("artifact_max_bytes")?,
            max_user_bytes: s.number("artifact_user_bytes")?,
            retention: s.secs("artifact_retention_secs")?,
            link_ttl: s.secs("artifact_link_ttl_secs")?,
        })
    })
}

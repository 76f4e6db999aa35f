//! `POST /internal/sessions/{id}/end` (internal key): the control plane ends a session's room at once
//! when its owner ends the session, so every browser is closed with `session_ended` now rather than
//! when the runner is gone. A session without a room gets 404 and no room is created.

use crate::http::{error, ApiError, ErrorCode};
use crate::room_link;
use edgeshell_core::ids::SessionId;
use worker::{Env, Request, Response, Result};

/// The session id of an end route, if `path` is one.
pub fn route(path: &str) -> Option<&str> {
    path.strip_prefix("/internal/sessions/")?.strip_suffix("/end").filter(|id| !id.contains('/'))
}

/// Serves the route for session `id`.
pub async fn serve(req: &Request, env: &Env, id: &str) -> Result<Response> {
    if let Err(refused) = crate::http::require_internal(req, env) {
        return error(&refused);
    }
    if req.method() != worker::Method::Post {
        return error(&ApiError::new(ErrorCode::MethodNotAllowed, "a room is ended with POST"));
    }
    let session = match SessionId::new(id) {
        Ok(session) => session,
        Err(e) => return error(&ApiError::new(ErrorCode::BadSession, e.to_string())),
    };
    room_link::end(env, &session).await
}

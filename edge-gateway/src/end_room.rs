//! The control plane's word to a session's room (internal key), passed to the room at once:
//!
//! - `POST /internal/sessions/{id}/end`: its owner ended the session, so every browser is closed with
//!   `session_ended` now rather than when the runner is gone;
//! - `POST /internal/sessions/{id}/extend` with `{"ends": <epoch seconds>}`: the session was extended,
//!   so the room moves its deadline and tells its runner and browsers (an earlier deadline is ignored).
//!
//! A session without a room gets 404 (`session_not_found`) and no room is created.

use crate::http::{error, ApiError, ErrorCode};
use crate::room_link::{self, RoomOrder};
use edgeshell_core::ids::SessionId;
use worker::{Env, Request, Response, Result};

/// The session id and the order of a room control route, if `path` is one.
pub fn route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/internal/sessions/")?;
    let (id, order) = rest.split_once('/')?;
    matches!(order, "end" | "extend").then_some((id, order))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Extend {
    ends: u64,
}

/// Serves the route for session `id`.
pub async fn serve(mut req: Request, env: &Env, (id, order): (&str, &str)) -> Result<Response> {
    if let Err(refused) = crate::http::require_internal(&req, env) {
        return error(&refused);
    }
    if req.method() != worker::Method::Post {
        return error(&ApiError::new(ErrorCode::MethodNotAllowed, "a room is ended or extended with POST"));
    }
    let session = match SessionId::new(id) {
        Ok(session) => session,
        Err(e) => return error(&ApiError::new(ErrorCode::BadSession, e.to_string())),
    };
    let order = match order {
        "extend" => match req.json::<Extend>().await {
            Ok(Extend { ends }) => RoomOrder::Extend(ends),
            Err(e) => {
                return error(&ApiError::new(
                    ErrorCode::BadRequest,
                    format!("an extension is {{\"ends\": <epoch seconds>}}: {e}"),
                ))
            }
        },
        _ => RoomOrder::End,
    };
    room_link::order(env, &session, order).await
}

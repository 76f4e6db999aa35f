//! `POST /internal/sessions/{id}/ended` — the edge's room reports that a session ended on its side (the
//! program exited, the runner was lost, idle, deadline), so the session's row and the user's list agree
//! with the room. Internal: the caller presents the internal API key. Idempotent: a session already
//! ended keeps its first reason.

use edgeshell_core::ids::SessionId;
use edgeshell_core::room::EndReason;
use edgeshell_fn::db::{text, Db};
use edgeshell_fn::reply::{json, ApiError, ErrorCode};
use edgeshell_fn::request::Request;
use edgeshell_fn::request::{json_body, require_internal};
use edgeshell_fn::Reply;
use serde::Deserialize;
use std::time::Duration;

/// The reasons a room reports.
const REASONS: &[&str] = &EndReason::NAMES;

#[derive(Deserialize)]
struct Ended {
    reason: String,
    #[serde(default)]
    detail: String,
}

pub(crate) fn ended(req: &Request, id: &str) -> Reply {
    require_internal(req)?;
    let sid = SessionId::new(id).map_err(|e| ApiError::new(ErrorCode::BadSession, e.to_string()))?;
    let input: Ended = json_body(req, 1024)?;
    if !REASONS.contains(&input.reason.as_str()) {
        return Err(ApiError::new(ErrorCode::BadReason, format!("reason must be one of {REASONS:?}")));
    }
    let reason =
        if input.detail.is_empty() { input.reason.clone() } else { format!("{}: {}", input.reason, input.detail) };
    let reason: String = reason.chars().take(200).collect();
    let db = Db::open()?;
    // One statement: the end and its audit row are atomic, and the row is durable when this answers.
    let audited = db.execute(
        "WITH ended AS (
             UPDATE sessions SET state = 'ended', ended_at = now(), end_reason = $2
             WHERE id = $1 AND state <> 'ended' RETURNING id
         )
         INSERT INTO audit_log (actor, action, session_id, detail)
         SELECT 'edge', 'session.ended', id, jsonb_build_object('reason', $2::text) FROM ended",
        &[text(sid.as_str()), text(reason.as_str())],
    )?;
    let changed = audited == 1;
    json(200, &serde_json::json!({ "session_id": sid, "state": "ended", "changed": changed }))
}

/// Ends `sid`'s room at the edge at once (`POST /internal/sessions/{id}/end` with the internal key at
/// `edge_origin`): its browsers are closed with `session_ended` now, not when its runner is gone.
/// True when the room ended or never existed; false when the edge could not be reached (the runner's
/// stop ends the room then).
pub(crate) fn end_room(sid: &SessionId) -> bool {
    order_room(sid, "end", b"{}")
}

/// Tells the session's room its new deadline (`POST {edge_origin}/internal/sessions/{id}/extend`): the
/// room tells its runner and browsers. True when the room took it or there is no room yet (its first
/// token carries the deadline); false when the edge could not be reached (the next attach token tells
/// the room).
pub(crate) fn extend_room(sid: &SessionId, ends: u64) -> bool {
    order_room(sid, "extend", format!("{{\"ends\":{ends}}}").as_bytes())
}

fn order_room(sid: &SessionId, order: &str, body: &[u8]) -> bool {
    let Ok((origin, key)) =
        edgeshell_fn::settings::read(|s| Ok((s.required("edge_origin")?, s.bearer_key("internal_api_key")?)))
    else {
        return false;
    };
    let url = format!("{}/internal/sessions/{sid}/{order}", origin.trim_end_matches('/'));
    let auth = format!("Bearer {key}");
    let call = edgeshell_fn::outbound::Call {
        post: true,
        url: &url,
        headers: &[("authorization", auth.as_str()), ("content-type", "application/json")],
        body,
        timeout: Duration::from_secs(3),
        max_body: 4096,
    };
    match edgeshell_fn::outbound::send(&call) {
        Ok(answer) if answer.status == 200 => true,
        // No room at the edge (the session never had a browser or a runner): nothing to tell there.
        Ok(answer) if answer.status == 404 && String::from_utf8_lossy(&answer.body).contains("session_not_found") => {
            true
        }
        Ok(answer) => {
            eprintln!("sessions: the edge answered HTTP {} to the {order} of {sid}'s room", answer.status);
            false
        }
        Err(e) => {
            eprintln!("sessions: the {order} of {sid}'s room at the edge: {e}");
            false
        }
    }
}

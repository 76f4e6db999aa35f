//! `POST /internal/sessions/{id}/ended` — the edge's room reports that a session ended on its side (the
//! program exited, the runner was lost, idle, deadline), so the session's row and the user's list agree
//! with the room. Internal: the caller presents the internal API key. Idempotent: a session already
//! ended keeps its first reason.

use edgeshell_core::ids::SessionId;
use edgeshell_core::room::EndReason;
use edgeshell_fn::db::{text, Db};
use edgeshell_fn::reply::{json, Failure};
use edgeshell_fn::request::{json_body, require_internal};
use edgeshell_fn::Reply;
use serde::Deserialize;
use spin_sdk::http::Request;

/// The reasons a room reports.
const REASONS: [&str; 5] = EndReason::NAMES;

#[derive(Deserialize)]
struct Ended {
    reason: String,
    #[serde(default)]
    detail: String,
}

pub(crate) fn ended(req: &Request, id: &str) -> Reply {
    require_internal(req)?;
    let sid = SessionId::new(id).map_err(|e| Failure::bad_request("bad_session", e.to_string()))?;
    let input: Ended = json_body(req, 1024)?;
    if !REASONS.contains(&input.reason.as_str()) {
        return Err(Failure::bad_request("bad_reason", format!("reason must be one of {REASONS:?}")));
    }
    let reason =
        if input.detail.is_empty() { input.reason.clone() } else { format!("{}: {}", input.reason, input.detail) };
    let reason: String = reason.chars().take(200).collect();
    let db = Db::open()?;
    let changed = db.transaction(|tx| {
        tx.execute("SET LOCAL synchronous_commit = off", &[])?;
        let row = tx.query_opt(
            "UPDATE sessions SET state = 'ended', ended_at = now(), end_reason = $2
             WHERE id = $1 AND state <> 'ended' RETURNING owner",
            &[text(sid.as_str()), text(reason.as_str())],
        )?;
        if row.is_some() {
            let detail = serde_json::json!({ "reason": reason }).to_string();
            tx.execute(
                "INSERT INTO audit_log (actor, action, session_id, detail) VALUES ('edge', 'session.ended', $1, ($2::text)::jsonb)",
                &[text(sid.as_str()), text(detail)],
            )?;
        }
        Ok(row.is_some())
    })?;
    json(200, &serde_json::json!({ "session_id": sid, "state": "ended", "changed": changed }))
}

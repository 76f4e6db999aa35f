//! `POST /api/sessions/{id}/extend` with `{"by_secs": N}`: moves a live session's deadline later.
//!
//! The rule is the core's ([`edgeshell_core::lifetime::LifetimePolicy::extend`]): the session must be
//! live, and its lifetime from creation stays within the longest the operator allows. The row and its
//! audit entry change in one transaction (the row is the one source of truth), then the room is told
//! (it tells its runner and browsers) and the pool (its agent moves the runner's deadline where it
//! keeps it). Each tier only ever moves a deadline later, so telling them again is harmless; one not
//! reached in time still learns it: the room from the next attach token (every token carries the
//! deadline), the pool from the command its region's pool room keeps until an agent takes it.

use crate::config::Config;
use crate::pools;
use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::lifetime::LifetimeError;
use edgeshell_core::time::Timestamp;
use edgeshell_fn::db::{col, text, Db};
use edgeshell_fn::identity::authenticate;
use edgeshell_fn::platform::now;
use edgeshell_fn::ratelimit;
use edgeshell_fn::reply::{json, ApiError, ErrorCode};
use edgeshell_fn::request::{json_body, Request};
use edgeshell_fn::signing::Signing;
use edgeshell_fn::Reply;
use serde::Deserialize;
use spin_sdk::pg4::ParameterValue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendRequest {
    /// Seconds to add to the current deadline.
    by_secs: u64,
}

pub(crate) fn extend(req: &Request, id: &str) -> Reply {
    let sid = SessionId::new(id).map_err(|_| not_live())?;
    let config = Config::load()?;
    let signing = Signing::load()?;
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "extend")?;
    let input: ExtendRequest = json_body(req, 1024)?;
    let now = now();
    let (region, from, to) = db.transaction(|tx| {
        let row = tx
            .query_opt(
                "SELECT region, extract(epoch FROM created_at)::int8, extract(epoch FROM expires_at)::int8
                 FROM sessions WHERE id = $1 AND owner = $2 AND state = 'running' AND expires_at > now() FOR UPDATE",
                &[text(sid.as_str()), text(user.subject.as_str())],
            )?
            .ok_or_else(not_live)?;
        let region: Option<String> = col(&row, 0)?;
        let created = Timestamp::from_secs(u64::try_from(col::<i64>(&row, 1)?).unwrap_or(0));
        let ends = u64::try_from(col::<i64>(&row, 2)?).unwrap_or(0);
        let to = config.lifetime.extend(created, ends, input.by_secs, now).map_err(|e| match e {
            LifetimeError::Over => not_live(),
            other => ApiError::new(ErrorCode::BadRequest, format!("by_secs: {other}")),
        })?;
        tx.execute(
            "WITH moved AS (
                 UPDATE sessions SET expires_at = to_timestamp($3) WHERE id = $1 RETURNING id
             )
             INSERT INTO audit_log (actor, action, session_id, detail)
             SELECT $2, 'session.extend', id, jsonb_build_object('from', $4::int8, 'to', $5::int8) FROM moved",
            &[
                text(sid.as_str()),
                text(user.subject.as_str()),
                ParameterValue::Floating64(to as f64),
                ParameterValue::Int64(ends as i64),
                ParameterValue::Int64(to as i64),
            ],
        )?;
        Ok((region, ends, to))
    })?;
    let room_extended = crate::edge::extend_room(&sid, to);
    let runner_extended = match region.as_deref().map(RegionId::new) {
        Some(Ok(region)) => pools::extend(&signing, &region, &sid, to),
        _ => false,
    };
    let longest = config.lifetime.max_lifetime.as_secs();
    json(
        200,
        &serde_json::json!({
            "session_id": sid,
            "expires_at": to,
            "extended_by": to - from,
            "longest_secs": longest,
            "room_extended": room_extended,
            "runner_extended": runner_extended,
        }),
    )
}

fn not_live() -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, "no such live session")
}

//! The caller's sessions: list, show, refresh the attach token, end. Other users' sessions are "not
//! found", so ids cannot be probed.

use crate::config::Config;
use crate::mint::Minted;
use crate::pools;
use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::pool_api::attach_path;
use edgeshell_fn::db::{col, text, Db};
use edgeshell_fn::identity::authenticate;
use edgeshell_fn::platform::{entropy, now};
use edgeshell_fn::ratelimit;
use edgeshell_fn::reply::{self, json, ApiError, ErrorCode};
use edgeshell_fn::request::Request;
use edgeshell_fn::signing::Signing;
use edgeshell_fn::Reply;
use serde::Serialize;
use spin_sdk::pg4::DbValue;

/// A session as its owner sees it.
#[derive(Serialize)]
struct SessionView {
    session_id: String,
    region: Option<String>,
    state: String,
    created_at: i64,
    expires_at: i64,
    /// The latest an extension may move `expires_at` to.
    longest_expires_at: i64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    /// The template it runs.
    template: String,
}

const COLUMNS: &str = "id, region, CASE WHEN state <> 'ended' AND expires_at <= now() THEN 'ended' ELSE state END,
    extract(epoch FROM created_at)::int8, extract(epoch FROM expires_at)::int8,
    extract(epoch FROM ended_at)::int8, CASE WHEN state <> 'ended' AND expires_at <= now() THEN 'expired' ELSE end_reason END,
    template";

fn view(row: &[DbValue], longest: i64) -> Result<SessionView, ApiError> {
    let created_at: i64 = col(row, 3)?;
    Ok(SessionView {
        longest_expires_at: created_at.saturating_add(longest),
        session_id: col(row, 0)?,
        region: col(row, 1)?,
        state: col(row, 2)?,
        created_at,
        expires_at: col(row, 4)?,
        ended_at: col(row, 5)?,
        end_reason: col(row, 6)?,
        template: col(row, 7)?,
    })
}

pub(crate) fn list(req: &Request) -> Reply {
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "sessions")?;
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM sessions WHERE owner = $1 ORDER BY created_at DESC LIMIT 100"),
        &[text(user.subject.as_str())],
    )?;
    let longest = longest_secs()?;
    let sessions = rows.iter().map(|r| view(r, longest)).collect::<Result<Vec<_>, _>>()?;
    json(200, &serde_json::json!({ "sessions": sessions }))
}

/// The longest lifetime sessions may reach with extensions.
fn longest_secs() -> Result<i64, ApiError> {
    Ok(i64::try_from(Config::load()?.lifetime.max_lifetime.as_secs()).unwrap_or(i64::MAX))
}

fn session_id(id: &str) -> Result<SessionId, ApiError> {
    SessionId::new(id).map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, "no such session")
}

pub(crate) fn show(req: &Request, id: &str) -> Reply {
    let sid = session_id(id)?;
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "sessions")?;
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM sessions WHERE id = $1 AND owner = $2"),
            &[text(sid.as_str()), text(user.subject.as_str())],
        )?
        .ok_or_else(not_found)?;
    json(200, &view(&row, longest_secs()?)?)
}

/// A fresh attach token for a live session: the browser refreshes in-band before the old one expires.
pub(crate) fn refresh(req: &Request, id: &str) -> Reply {
    let sid = session_id(id)?;
    let config = Config::load()?;
    let signing = Signing::load()?;
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "refresh")?;
    let row = db
        .query_opt(
            "SELECT region, extract(epoch FROM expires_at)::int8 FROM sessions
             WHERE id = $1 AND owner = $2 AND state = 'running' AND expires_at > now()",
            &[text(sid.as_str()), text(user.subject.as_str())],
        )?
        .ok_or_else(|| ApiError::new(ErrorCode::SessionNotFound, "no such live session"))?;
    let region = RegionId::new(col::<String>(&row, 0)?).map_err(|e| reply::internal(e.to_string()))?;
    let ends = u64::try_from(col::<i64>(&row, 1)?).unwrap_or(0);
    let terms = config.lifetime.terms_until(ends);
    let claims =
        signing.issuer.attach_for(&user.subject, (&sid, &region), terms, entropy(), now(), config.attach_token_secs);
    json(
        200,
        &Minted {
            ws_url: format!("{}{}", config.edge_url, attach_path(&sid)),
            token: signing.sign(&claims)?,
            expires_at: claims.exp,
            session_expires_at: ends,
            session_id: sid,
            region,
        },
    )
}

/// Ends a session and stops its runner. Ending an ended session succeeds (idempotent).
pub(crate) fn end(req: &Request, id: &str) -> Reply {
    let sid = session_id(id)?;
    let signing = Signing::load()?;
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "end")?;
    // One statement: the end and its audit row are atomic, and the row is durable when this answers.
    let ended = db.query_opt(
        "WITH ended AS (
             UPDATE sessions SET state = 'ended', ended_at = now(), end_reason = 'ended by its owner'
             WHERE id = $1 AND owner = $2 AND state <> 'ended' RETURNING region
         ), audited AS (
             INSERT INTO audit_log (actor, action, session_id) SELECT $2, 'session.end', $1 FROM ended
         )
         SELECT region FROM ended",
        &[text(sid.as_str()), text(user.subject.as_str())],
    )?;
    let Some(row) = ended else {
        // Already ended, or not the caller's.
        db.query_opt(
            "SELECT 1 FROM sessions WHERE id = $1 AND owner = $2",
            &[text(sid.as_str()), text(user.subject.as_str())],
        )?
        .ok_or_else(not_found)?;
        return json(200, &serde_json::json!({ "session_id": sid, "state": "ended", "runner_stopped": true }));
    };
    // Its browsers are told first (`session_ended`), then its runner is stopped.
    let room_ended = crate::edge::end_room(&sid);
    let stopped = match col::<Option<String>>(&row, 0)? {
        Some(region) => match RegionId::new(region.as_str()) {
            Ok(region) => pools::stop(&signing, &region, &sid, "ended by its owner"),
            Err(_) => false,
        },
        None => true,
    };
    // A runner whose stop failed is reaped by its pool at the next heartbeat.
    json(
        200,
        &serde_json::json!({ "session_id": sid, "state": "ended", "runner_stopped": stopped, "room_ended": room_ended }),
    )
}

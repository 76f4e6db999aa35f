//! The owner's side: list a session's artifacts and get a download link for one. Ownership is the
//! artifact's own (its `owner` and `region` are kept with it), so the owner keeps access for the
//! whole retention period, after the session's row is gone.

use crate::limits;
use edgeshell_core::artifacts::{download_path, link_claims, ArtifactPath, LinkRequest};
use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::issue::{jti, EDGE_AUDIENCE};
use edgeshell_core::tokens::Method;
use edgeshell_fn::db::{col, text, Db};
use edgeshell_fn::identity::authenticate;
use edgeshell_fn::platform::{entropy, now};
use edgeshell_fn::ratelimit;
use edgeshell_fn::reply::{json, ApiError, ErrorCode};
use edgeshell_fn::request::Request;
use edgeshell_fn::request::{json_body, query_param};
use edgeshell_fn::settings;
use edgeshell_fn::signing::Signing;
use edgeshell_fn::Reply;
use serde::Deserialize;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, "no such session")
}

/// Whether the caller owns the session: it is their session, or they own an artifact of it (the
/// session's row is deleted a day after it ends; its artifacts stay for their retention).
fn owns(db: &Db, sid: &SessionId, owner: &str) -> Result<bool, ApiError> {
    let row = db.query_opt(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND owner = $2)
                     OR EXISTS (SELECT 1 FROM artifacts WHERE session_id = $1 AND owner = $2 AND expires_at > now())",
        &[text(sid.as_str()), text(owner)],
    )?;
    Ok(row.is_some())
}

pub(crate) fn list(req: &Request) -> Reply {
    let sid = query_param(req, "session")
        .and_then(|s| SessionId::new(s).ok())
        .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "name the session: /api/artifacts?session=ID"))?;
    let db = Db::open()?;
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "artifacts")?;
    if !owns(&db, &sid, user.subject.as_str())? {
        return Err(not_found());
    }
    let rows = db.query(
        "SELECT path, size_bytes, encode(sha256, 'hex'), extract(epoch FROM created_at)::int8,
                extract(epoch FROM expires_at)::int8
         FROM artifacts WHERE session_id = $1 AND owner = $2 AND state = 'stored' AND expires_at > now()
         ORDER BY path",
        &[text(sid.as_str()), text(user.subject.as_str())],
    )?;
    let mut artifacts = Vec::new();
    for r in rows {
        artifacts.push(serde_json::json!({
            "path": col::<String>(&r, 0)?,
            "size": col::<i64>(&r, 1)?,
            "sha256": col::<Option<String>>(&r, 2)?,
            "created_at": col::<i64>(&r, 3)?,
            "expires_at": col::<i64>(&r, 4)?,
        }));
    }
    json(200, &serde_json::json!({ "session_id": sid, "artifacts": artifacts }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkInput {
    session_id: String,
    path: String,
}

pub(crate) fn link(req: &Request) -> Reply {
    let db = Db::open()?;
    // Who is calling comes first: an unauthenticated caller's body is never read.
    let user = authenticate(req, &db)?;
    ratelimit::per_user(&db, user.subject.as_str(), "links")?;
    let input: LinkInput = json_body(req, 4096)?;
    let sid = SessionId::new(input.session_id).map_err(|_| not_found())?;
    let path = ArtifactPath::new(&input.path).map_err(|e| ApiError::new(ErrorCode::BadPath, e.to_string()))?;
    let limits = limits()?;
    let signing = Signing::load()?;
    let edge = settings::required("edge_url")?;
    let origin = edge.replacen("wss://", "https://", 1).replacen("ws://", "http://", 1);
    // The artifact's own owner and region: a link works for the whole retention period.
    let row = db.query_opt(
        "SELECT COALESCE(a.region, s.region) FROM artifacts a LEFT JOIN sessions s ON s.id = a.session_id
         WHERE a.session_id = $1 AND a.path = $2 AND a.owner = $3 AND a.state = 'stored' AND a.expires_at > now()",
        &[text(sid.as_str()), text(path.as_str()), text(user.subject.as_str())],
    )?;
    let Some(row) = row else {
        return Err(if owns(&db, &sid, user.subject.as_str())? {
            ApiError::new(ErrorCode::ArtifactNotFound, "no such artifact")
        } else {
            not_found()
        });
    };
    let region: Option<String> = col(&row, 0)?;
    let region = region
        .and_then(|r| RegionId::new(r).ok())
        .ok_or_else(|| ApiError::new(ErrorCode::ArtifactNotFound, "the artifact's session left no region"))?;
    let now = now();
    let claims = link_claims(
        LinkRequest {
            issuer: &signing.issuer.issuer,
            audience: EDGE_AUDIENCE,
            owner: &user.subject,
            session: &sid,
            region: &region,
            path: &path,
            method: Method::Get,
            jti: jti(entropy()),
        },
        &limits,
        now,
    );
    let token = signing.sign(&claims)?;
    let detail = serde_json::json!({ "path": path.as_str(), "jti": claims.jti, "expires_at": claims.exp }).to_string();
    db.execute(
        "INSERT INTO audit_log (actor, action, session_id, detail) VALUES ($1, 'artifact.link', $2, ($3::text)::jsonb)",
        &[text(user.subject.as_str()), text(sid.as_str()), text(detail)],
    )?;
    // The token goes in a header, never the URL: URLs end up in logs (Cloudflare's, proxies').
    let url = format!("{}{}", origin.trim_end_matches('/'), download_path(&sid, &path));
    json(201, &serde_json::json!({ "url": url, "token": token, "expires_at": claims.exp }))
}

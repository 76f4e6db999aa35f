//! The edge's side (internal key): register an upload under the limits (a pending row reserving its
//! path and declared size; only while the session is live), complete it with what the edge counted
//! while streaming it (stored, replacing the version stored at its path before, or deleted again if it
//! failed, leaving that version as it was), and redeem a download link exactly once. The edge has already verified
//! the runner's `artifact:put` token or the link's signature and claims; these routes do what needs
//! the database. Both registering and redeeming answer the session's data key (unwrapped with the
//! KEK ring, `edgeshell_fn::data_keys`), with which the edge seals an upload as it streams it and opens
//! a download (`edgeshell_core::sealed_stream`); a new upload also gets its object's nonce prefix.

use crate::limits;
use edgeshell_control_db::sql::JTI_CONSUME;
use edgeshell_core::artifacts::{ArtifactPath, Usage};
use edgeshell_core::ids::{Jti, SessionId};
use edgeshell_core::jti::check_expiry;
use edgeshell_core::sealed_stream::NONCE_PREFIX;
use edgeshell_core::time::Timestamp;
use edgeshell_fn::data_keys::{self, Holder};
use edgeshell_fn::db::{col, int, text, Db};
use edgeshell_fn::platform::{entropy, now};
use edgeshell_fn::reply::{self, json, ApiError, ErrorCode};
use edgeshell_fn::request::Request;
use edgeshell_fn::request::{json_body, require_internal};
use edgeshell_fn::Reply;
use serde::Deserialize;
use spin_sdk::pg4::ParameterValue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    session_id: String,
    path: String,
    size: u64,
    /// Hex SHA-256 of the content, when the uploader computed it.
    #[serde(default)]
    sha256: Option<String>,
    /// Replace an artifact stored at the path (else such an upload is refused).
    #[serde(default)]
    replace: bool,
}

fn ids(session: String, path: &str) -> Result<(SessionId, ArtifactPath), ApiError> {
    let sid = SessionId::new(session).map_err(|e| ApiError::new(ErrorCode::BadSession, e.to_string()))?;
    let path = ArtifactPath::new(path).map_err(|e| ApiError::new(ErrorCode::BadPath, e.to_string()))?;
    Ok((sid, path))
}

fn hex32(s: &str) -> Result<Vec<u8>, ApiError> {
    edgeshell_core::bundles::parse_hex32(s)
        .map(|b| b.to_vec())
        .ok_or_else(|| ApiError::new(ErrorCode::BadSha256, "sha256 must be 64 hex digits"))
}

pub(crate) fn register(req: &Request) -> Reply {
    require_internal(req)?;
    let input: Upload = json_body(req, 4096)?;
    let (sid, path) = ids(input.session_id, &input.path)?;
    let sha = input.sha256.as_deref().map(hex32).transpose()?;
    let limits = limits()?;
    let db = Db::open()?;
    // The session's data key first: made once per session (one left by a refused upload is cleaned up).
    let key = data_keys::for_holder(&db, &data_keys::ring()?, Holder::Session, sid.as_str())?;
    let created = db.transaction(|tx| {
        let owner_row = tx
            .query_opt(
                "SELECT owner, region, state <> 'ended' AND expires_at > now() FROM sessions WHERE id = $1",
                &[text(sid.as_str())],
            )?
            .ok_or_else(|| ApiError::new(ErrorCode::SessionNotFound, "no such session"))?;
        let owner: String = col(&owner_row, 0)?;
        let region: Option<String> = col(&owner_row, 1)?;
        // The upload token lives as long as the session may: it is of use only while the session is.
        if !col::<bool>(&owner_row, 2)? {
            return Err(ApiError::new(ErrorCode::SessionEnded, "the session has ended: it takes no more uploads"));
        }
        // Serialize uploads of one user so two cannot both fit the last free bytes.
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 11))", &[text(owner.as_str())])?;
        // An expired version at the path is past its retention: it goes now rather than at cleanup.
        tx.execute(
            "DELETE FROM artifacts WHERE session_id = $1 AND path = $2 AND expires_at <= now()",
            &[text(sid.as_str()), text(path.as_str())],
        )?;
        let at_path = tx.query(
            "SELECT state FROM artifacts WHERE session_id = $1 AND path = $2",
            &[text(sid.as_str()), text(path.as_str())],
        )?;
        for row in &at_path {
            match col::<String>(row, 0)?.as_str() {
                "pending" => {
                    return Err(ApiError::new(ErrorCode::UploadInProgress, "another upload to this path is under way"))
                }
                _ if !input.replace => {
                    return Err(ApiError::new(
                        ErrorCode::ArtifactExists,
                        "the session already has an artifact at this path (upload without If-None-Match to replace it)",
                    ))
                }
                _ => {}
            }
        }
        // The limits count what will be stored: this path once, whatever version it had.
        let usage_row = tx
            .query_opt(
                "SELECT (SELECT count(DISTINCT path) FROM artifacts
                         WHERE session_id = $1 AND path <> $3 AND expires_at > now()),
                        (SELECT COALESCE(sum(size_bytes), 0)::int8 FROM artifacts
                         WHERE owner = $2 AND NOT (session_id = $1 AND path = $3) AND expires_at > now())",
                &[text(sid.as_str()), text(owner.as_str()), text(path.as_str())],
            )?
            .ok_or_else(|| reply::internal("usage query returned no row"))?;
        let usage = Usage {
            session_artifacts: u32::try_from(col::<i64>(&usage_row, 0)?).unwrap_or(u32::MAX),
            user_bytes: u64::try_from(col::<i64>(&usage_row, 1)?).unwrap_or(u64::MAX),
        };
        limits.check_upload(usage, input.size).map_err(|e| ApiError::new(ErrorCode::ArtifactLimit, e.to_string()))?;
        let now = now();
        let expires = limits.expires_at(now);
        // Each version its own object: a replacement never overwrites the version still stored.
        let version = edgeshell_core::bundles::hex(&entropy()[..8]);
        let object_key = format!("sessions/{sid}/{version}/{}", path.as_str());
        let inserted = tx.execute(
            "INSERT INTO artifacts (session_id, path, owner, size_bytes, sha256, object_key, expires_at, region, state, sealed)
             VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), $8, 'pending', true) ON CONFLICT DO NOTHING",
            &[
                text(sid.as_str()),
                text(path.as_str()),
                text(owner.as_str()),
                int(i64::try_from(input.size).unwrap_or(i64::MAX)),
                sha.map_or(ParameterValue::DbNull, ParameterValue::Binary),
                text(object_key.as_str()),
                ParameterValue::Floating64(expires.as_secs() as f64),
                region.map_or(ParameterValue::DbNull, ParameterValue::Str),
            ],
        )?;
        if inserted == 0 {
            return Err(ApiError::new(ErrorCode::UploadInProgress, "another upload to this path is under way"));
        }
        Ok(serde_json::json!({ "object_key": object_key, "expires_at": expires.as_secs() }))
    })?;
    let mut created = created;
    created["data_key"] = key.to_transport().expose().into();
    created["nonce_prefix"] = edgeshell_core::base64url::encode(&entropy()[..NONCE_PREFIX]).into();
    json(201, &created)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Completion {
    session_id: String,
    path: String,
    /// `stored` or `failed`.
    outcome: String,
    /// Bytes streamed into storage (stored).
    #[serde(default)]
    size: Option<u64>,
    /// Their SHA-256, hex, computed while streaming (stored).
    #[serde(default)]
    sha256: Option<String>,
    /// Why it failed (failed), for the audit log.
    #[serde(default)]
    reason: Option<String>,
}

/// Completes a registered upload: `stored` records the size and SHA-256 the edge counted (never more
/// than was reserved) and deletes the version it replaces (answering that version's object key as
/// `superseded`, for the edge to delete), `failed` deletes the pending row, releasing its path and
/// quota and leaving a stored version as it was. Both are audited.
pub(crate) fn complete(req: &Request) -> Reply {
    require_internal(req)?;
    let input: Completion = json_body(req, 4096)?;
    let (sid, path) = ids(input.session_id, &input.path)?;
    let db = Db::open()?;
    let answer = db.transaction(|tx| {
        let row = tx
            .query_opt(
                "SELECT size_bytes FROM artifacts WHERE session_id = $1 AND path = $2 AND state = 'pending' FOR UPDATE",
                &[text(sid.as_str()), text(path.as_str())],
            )?
            .ok_or_else(|| ApiError::new(ErrorCode::ArtifactNotFound, "no upload in progress at this path"))?;
        let reserved = u64::try_from(col::<i64>(&row, 0)?).unwrap_or(0);
        let mut superseded: Option<String> = None;
        let (action, detail) = match input.outcome.as_str() {
            "stored" => {
                let size =
                    input.size.ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "a stored upload has a size"))?;
                let sha = input
                    .sha256
                    .as_deref()
                    .map(hex32)
                    .transpose()?
                    .ok_or_else(|| ApiError::new(ErrorCode::BadSha256, "a stored upload has its sha256"))?;
                if size > reserved {
                    return Err(ApiError::new(ErrorCode::ContentMismatch, "more bytes were stored than were reserved"));
                }
                superseded = tx
                    .query_opt(
                        "DELETE FROM artifacts WHERE session_id = $1 AND path = $2 AND state = 'stored'
                         RETURNING object_key",
                        &[text(sid.as_str()), text(path.as_str())],
                    )?
                    .map(|row| col::<String>(&row, 0))
                    .transpose()?;
                tx.execute(
                    "UPDATE artifacts SET state = 'stored', size_bytes = $3, sha256 = $4
                     WHERE session_id = $1 AND path = $2 AND state = 'pending'",
                    &[
                        text(sid.as_str()),
                        text(path.as_str()),
                        int(i64::try_from(size).unwrap_or(i64::MAX)),
                        ParameterValue::Binary(sha),
                    ],
                )?;
                let detail = serde_json::json!({
                    "path": path.as_str(), "size": size, "sha256": input.sha256, "replaced": superseded.is_some(),
                });
                ("artifact.upload", detail)
            }
            "failed" => {
                tx.execute(
                    "DELETE FROM artifacts WHERE session_id = $1 AND path = $2 AND state = 'pending'",
                    &[text(sid.as_str()), text(path.as_str())],
                )?;
                let reason: String = input.reason.unwrap_or_default().chars().take(300).collect();
                ("artifact.upload_failed", serde_json::json!({ "path": path.as_str(), "reason": reason }))
            }
            other => return Err(ApiError::new(ErrorCode::BadRequest, format!("outcome {other:?}: stored or failed"))),
        };
        tx.execute(
            "INSERT INTO audit_log (actor, action, session_id, detail) VALUES ($1, $2, $3, ($4::text)::jsonb)",
            &[text(format!("runner:{sid}")), text(action), text(sid.as_str()), text(detail.to_string())],
        )?;
        Ok(serde_json::json!({
            "session_id": sid.as_str(), "path": path.as_str(), "outcome": input.outcome, "superseded": superseded,
        }))
    })?;
    json(200, &answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Redeem {
    jti: String,
    expires_at: u64,
    session_id: String,
    path: String,
    /// Who downloads (the link's subject).
    owner: String,
}

pub(crate) fn redeem(req: &Request) -> Reply {
    require_internal(req)?;
    let input: Redeem = json_body(req, 4096)?;
    let (sid, path) = ids(input.session_id, &input.path)?;
    let jti = Jti::new(input.jti).map_err(|e| ApiError::new(ErrorCode::BadJti, e.to_string()))?;
    check_expiry(Timestamp::from_secs(input.expires_at), now())
        .map_err(|e| ApiError::new(ErrorCode::BadExpiry, e.to_string()))?;
    let db = Db::open()?;
    let object = db.transaction(|tx| {
        let row = tx
            .query_opt(
                "SELECT object_key, size_bytes, sealed FROM artifacts
                 WHERE session_id = $1 AND path = $2 AND owner = $3 AND state = 'stored' AND expires_at > now()",
                &[text(sid.as_str()), text(path.as_str()), text(input.owner.as_str())],
            )?
            .ok_or_else(|| ApiError::new(ErrorCode::ArtifactNotFound, "no such artifact"))?;
        let first = tx.execute(JTI_CONSUME, &[
            text(jti.as_str()),
            ParameterValue::Floating64(input.expires_at as f64),
        ])?;
        if first != 1 {
            return Err(ApiError::new(ErrorCode::ReplayedToken, "this link was already used"));
        }
        let detail = serde_json::json!({ "path": path.as_str(), "jti": jti.as_str() }).to_string();
        tx.execute(
            "INSERT INTO audit_log (actor, action, session_id, detail) VALUES ($1, 'artifact.download', $2, ($3::text)::jsonb)",
            &[text(input.owner.as_str()), text(sid.as_str()), text(detail)],
        )?;
        Ok(serde_json::json!({
            "object_key": col::<String>(&row, 0)?, "size": col::<i64>(&row, 1)?, "sealed": col::<bool>(&row, 2)?,
        }))
    })?;
    let mut object = object;
    if object["sealed"] == true {
        let key = data_keys::existing(&db, &data_keys::ring()?, Holder::Session, sid.as_str())?
            .ok_or_else(|| reply::internal("a sealed artifact's session key is gone"))?;
        object["data_key"] = key.to_transport().expose().into();
    }
    json(200, &object)
}

//! A pool agent starting a session's runner fetches the values of the secrets the session's template
//! takes, from the session's owner's secrets: only for a session placed in the agent's own region
//! (its pool key says which) that is starting or running. Every value handed out is audited by name.

use edgeshell_core::ids::SessionId;
use edgeshell_core::pool_api::{api_key_hash, PoolSecrets, PoolSecretsRequest};
use edgeshell_fn::data_keys as keys;
use edgeshell_fn::db::{col, text, Db};
use edgeshell_fn::reply::{self, json, ApiError, ErrorCode};
use edgeshell_fn::request::{bearer, json_body, Request};
use edgeshell_fn::Reply;
use std::collections::BTreeMap;

/// The route.
pub(crate) const PATH: &str = edgeshell_core::pool_api::POOL_SECRETS_PATH;

pub(crate) fn fetch(req: &Request) -> Reply {
    let key = bearer(req).ok_or_else(|| ApiError::new(ErrorCode::MissingApiKey, "send the pool key as Bearer"))?;
    let db = Db::open()?;
    let (_, region) = edgeshell_fn::registry::key_owner(&db, &api_key_hash(&key))?;
    let input: PoolSecretsRequest = json_body(req, 8 * 1024)?;
    input.check().map_err(|e| ApiError::new(ErrorCode::BadRequest, e))?;
    let sid: &SessionId = &input.session_id;
    // Another region's session, or one that is over, is not found: a pool learns nothing of it.
    let owner: String = db
        .query_opt(
            "SELECT owner FROM sessions WHERE id = $1 AND region = $2 AND state IN ('starting', 'running')
             AND expires_at > now()",
            &[text(sid.as_str()), text(region.as_str())],
        )?
        .map(|r| col(&r, 0))
        .transpose()?
        .ok_or_else(|| {
            ApiError::new(ErrorCode::SessionNotFound, format!("no live session {sid} in region {region}"))
        })?;
    let names = serde_json::to_string(&input.names).map_err(|e| reply::internal(e.to_string()))?;
    let rows = db.query(
        "SELECT name, sealed FROM user_secrets
         WHERE owner = $1 AND name IN (SELECT jsonb_array_elements_text(($2::text)::jsonb)) ORDER BY name",
        &[text(owner.as_str()), text(names)],
    )?;
    let mut env = BTreeMap::new();
    if !rows.is_empty() {
        let ring = keys::ring()?;
        let key = keys::existing(&db, &ring, keys::Holder::User, &owner)?
            .ok_or_else(|| reply::internal("secrets without a data key"))?;
        for row in rows {
            let name: String = col(&row, 0)?;
            let sealed: Vec<u8> = col(&row, 1)?;
            let value = key.open(&owner, &name, &sealed).map_err(|e| reply::internal(format!("secret {name}: {e}")))?;
            let value = String::from_utf8(value).map_err(|_| reply::internal(format!("secret {name}: not UTF-8")))?;
            env.insert(name, value.into());
        }
    }
    let used: Vec<&String> = env.keys().collect();
    db.execute(
        "INSERT INTO audit_log (actor, action, session_id, detail)
         VALUES ($1, 'secret.use', $2, jsonb_build_object('names', ($3::text)::jsonb, 'region', $4::text))",
        &[
            text(owner.as_str()),
            text(sid.as_str()),
            text(serde_json::to_string(&used).map_err(|e| reply::internal(e.to_string()))?),
            text(region.as_str()),
        ],
    )?;
    json(200, &PoolSecrets { env })
}

//! Pool keys: created by an operator, shown once, stored only as SHA-256, revocable. A region may hold
//! several live keys at once. `rotate` makes a new key for an old key's region and lets the old one live
//! a grace period for the rollout; `revoke` ends a key now. The edge checks a connecting agent's key and
//! checks connected agents' keys again every minute, so a revoked key's agents are cut off within one.

use crate::DbError;
use edgeshell_core::pool_api::{api_key, api_key_hash};
use rand::RngCore;
use tokio_postgres::Client;

/// Creates a key for `region`; returns `(key_id, key)`. The key is not stored and cannot be shown again.
pub async fn add(client: &Client, region: &str) -> Result<(String, String), DbError> {
    let mut rng = rand::rngs::OsRng;
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let key_id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let key = api_key(&key_id, secret);
    client
        .execute(
            "INSERT INTO pool_api_keys (key_id, region, key_sha256) VALUES ($1, $2, $3)",
            &[&key_id, &region, &api_key_hash(&key).as_slice()],
        )
        .await?;
    Ok((key_id, key))
}

/// Revokes a key now (also one rotated and still in its grace); true if a live key was revoked.
pub async fn revoke(client: &Client, key_id: &str) -> Result<bool, DbError> {
    let n = client
        .execute(
            "UPDATE pool_api_keys SET revoked_at = now() WHERE key_id = $1 AND (revoked_at IS NULL OR revoked_at > now())",
            &[&key_id],
        )
        .await?;
    Ok(n == 1)
}

/// A new key for the region of `old`, which stays valid `grace_secs` more (0: revoked now); `None` when
/// `old` is not a live key.
pub async fn rotate(client: &Client, old: &str, grace_secs: u64) -> Result<Option<(String, String, String)>, DbError> {
    let region: Option<String> = client
        .query_opt(
            "SELECT region FROM pool_api_keys WHERE key_id = $1 AND (revoked_at IS NULL OR revoked_at > now())",
            &[&old],
        )
        .await?
        .map(|r| r.get(0));
    let Some(region) = region else { return Ok(None) };
    let (key_id, key) = add(client, &region).await?;
    let grace = i64::try_from(grace_secs).unwrap_or(i64::MAX);
    client
        .execute(
            "UPDATE pool_api_keys SET revoked_at = now() + make_interval(secs => $2::int8)
             WHERE key_id = $1 AND (revoked_at IS NULL OR revoked_at > now() + make_interval(secs => $2::int8))",
            &[&old, &grace],
        )
        .await?;
    Ok(Some((region, key_id, key)))
}

/// Live keys as `(key_id, region, created_at)` text rows.
pub async fn list(client: &Client) -> Result<Vec<(String, String, String)>, DbError> {
    let rows = client
        .query(
            "SELECT key_id, region, created_at::text FROM pool_api_keys
             WHERE revoked_at IS NULL OR revoked_at > now() ORDER BY region, created_at",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

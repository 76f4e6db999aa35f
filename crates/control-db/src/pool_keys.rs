//! Pool API keys: created by an operator, shown once, stored only as SHA-256, revocable. A region may
//! hold several live keys at once, so a key is rotated by adding the new one, deploying it, then revoking
//! the old one.

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

/// Revokes a key; true if a live key was revoked.
pub async fn revoke(client: &Client, key_id: &str) -> Result<bool, DbError> {
    let n = client
        .execute("UPDATE pool_api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", &[&key_id])
        .await?;
    Ok(n == 1)
}

/// Live keys as `(key_id, region, created_at)` text rows.
pub async fn list(client: &Client) -> Result<Vec<(String, String, String)>, DbError> {
    let rows = client
        .query(
            "SELECT key_id, region, created_at::text FROM pool_api_keys WHERE revoked_at IS NULL ORDER BY region, created_at",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

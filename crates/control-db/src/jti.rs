//! The atomic first-use check for token ids: one `INSERT ... ON CONFLICT DO NOTHING`. Postgres takes a
//! row lock on the unique key, so of any number of concurrent inserts of one `jti` exactly one inserts a
//! row; the rest see a conflict. The expiry is kept so the row can be swept once the token is dead.

use crate::DbError;
use tokio_postgres::GenericClient;

/// Records `$1` (jti) with expiry `$2` (seconds since the epoch); one row affected means first use.
pub const CONSUME: &str =
    "INSERT INTO token_jtis (jti, expires_at) VALUES ($1, to_timestamp($2)) ON CONFLICT (jti) DO NOTHING";

/// Opportunistic cleanup on write: a bounded sweep of expired ids, cheap enough to run now and then.
pub const SWEEP: &str =
    "DELETE FROM token_jtis WHERE jti IN (SELECT jti FROM token_jtis WHERE expires_at < now() LIMIT 100)";

/// Consumes `jti`; `true` on first use.
pub async fn consume_once(client: &impl GenericClient, jti: &str, expires_at_secs: i64) -> Result<bool, DbError> {
    let expires = expires_at_secs as f64;
    Ok(client.execute(CONSUME, &[&jti, &expires]).await? == 1)
}

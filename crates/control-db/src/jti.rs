//! The one-time JTI check from native code, with the same statement the `jti` component runs.

use crate::sql::JTI_CONSUME;
use crate::DbError;
use tokio_postgres::GenericClient;

/// Consumes `jti`; `true` on first use.
pub async fn consume_once(client: &impl GenericClient, jti: &str, expires_at_secs: i64) -> Result<bool, DbError> {
    let expires = expires_at_secs as f64;
    Ok(client.execute(JTI_CONSUME, &[&jti, &expires]).await? == 1)
}

//! The periodic cleanup job: expired token ids, old rate-limit windows, sessions past their expiry,
//! ended sessions after a day (kept that long for "my sessions" and support), and artifact records past
//! their retention (the objects themselves expire by the bucket's lifecycle rule, set to the same
//! retention), uploads left pending for an hour, and sessions' data keys once nothing of theirs is left. Run it with `edgeshell-db cleanup SECONDS` as a long-running job, or one pass at a time
//! from a scheduler (a Kubernetes CronJob in production).

use crate::DbError;
use tokio_postgres::Client;

/// What one cleanup pass removed or changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    /// Expired JTIs deleted.
    pub jtis: u64,
    /// Rate-limit windows deleted.
    pub mint_windows: u64,
    /// Token buckets untouched for an hour (full again by then) deleted.
    pub rate_buckets: u64,
    /// Sessions marked ended because they expired.
    pub sessions_expired: u64,
    /// Ended sessions deleted.
    pub sessions_deleted: u64,
    /// Artifact records past their retention deleted.
    pub artifacts_expired: u64,
    /// Uploads registered an hour ago and never completed (the edge that streamed them was lost),
    /// deleted to release their paths and quota.
    pub uploads_abandoned: u64,
    /// Sessions' data keys whose session and artifacts are all gone.
    pub session_keys: u64,
}

/// Runs one cleanup pass.
pub async fn cleanup(client: &Client) -> Result<Cleaned, DbError> {
    Ok(Cleaned {
        jtis: client.execute("DELETE FROM token_jtis WHERE expires_at < now()", &[]).await?,
        mint_windows: client
            .execute("DELETE FROM mint_windows WHERE window_start < now() - interval '1 hour'", &[])
            .await?,
        rate_buckets: client
            .execute(
                "DELETE FROM rate_buckets WHERE at_ms < (extract(epoch FROM now() - interval '1 hour') * 1000)::int8",
                &[],
            )
            .await?,
        sessions_expired: client
            .execute(
                "UPDATE sessions SET state = 'ended', ended_at = now(), end_reason = 'expired'
                 WHERE state <> 'ended' AND expires_at < now()",
                &[],
            )
            .await?,
        sessions_deleted: client
            .execute("DELETE FROM sessions WHERE state = 'ended' AND ended_at < now() - interval '1 day'", &[])
            .await?,
        artifacts_expired: client.execute("DELETE FROM artifacts WHERE expires_at < now()", &[]).await?,
        uploads_abandoned: client
            .execute("DELETE FROM artifacts WHERE state = 'pending' AND created_at < now() - interval '1 hour'", &[])
            .await?,
        // After the artifacts: a key goes with the last of them (what the bucket may still hold of them
        // then opens with nothing).
        session_keys: client
            .execute(
                "DELETE FROM session_keys k WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = k.session_id)
                 AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.session_id = k.session_id)",
                &[],
            )
            .await?,
    })
}

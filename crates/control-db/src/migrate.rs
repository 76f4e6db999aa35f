//! Versioned migrations: each applied once, in order, inside one transaction guarded by an advisory
//! lock (so concurrent deploys serialize), with a SHA-256 of its text recorded so an edited migration is
//! detected instead of silently diverging.

use crate::DbError;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// One migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version, starting at 1, without gaps.
    pub version: i32,
    /// A short name (the file name without the number).
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Every migration, in order. The files are `functions/migrations/NNNN_name.sql`.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("../../../functions/migrations/0001_initial.sql") },
    Migration {
        version: 2,
        name: "provider_keys",
        sql: include_str!("../../../functions/migrations/0002_provider_keys.sql"),
    },
    Migration {
        version: 3,
        name: "rate_buckets",
        sql: include_str!("../../../functions/migrations/0003_rate_buckets.sql"),
    },
    Migration {
        version: 4,
        name: "artifact_uploads",
        sql: include_str!("../../../functions/migrations/0004_artifact_uploads.sql"),
    },
    Migration {
        version: 5,
        name: "pool_agents",
        sql: include_str!("../../../functions/migrations/0005_pool_agents.sql"),
    },
    Migration {
        version: 6,
        name: "pool_templates",
        sql: include_str!("../../../functions/migrations/0006_pool_templates.sql"),
    },
    Migration {
        version: 7,
        name: "user_secrets",
        sql: include_str!("../../../functions/migrations/0007_user_secrets.sql"),
    },
    Migration {
        version: 8,
        name: "artifact_versions",
        sql: include_str!("../../../functions/migrations/0008_artifact_versions.sql"),
    },
    Migration {
        version: 9,
        name: "sealed_artifacts",
        sql: include_str!("../../../functions/migrations/0009_sealed_artifacts.sql"),
    },
];

/// An arbitrary constant naming the migration lock.
const LOCK_KEY: i64 = 0x6564_6765_7368_6c6c; // "edgeshll"

/// Applies pending migrations; returns the versions applied now (empty when up to date).
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, DbError> {
    let tx = client.transaction().await?;
    // Lock first: even `CREATE TABLE IF NOT EXISTS` races with itself in Postgres.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer     PRIMARY KEY,
            name       text        NOT NULL,
            sha256     bytea       NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let applied = tx.query("SELECT version, name, sha256 FROM schema_migrations ORDER BY version", &[]).await?;
    for row in &applied {
        let version: i32 = row.get(0);
        let Some(known) = MIGRATIONS.iter().find(|m| m.version == version) else {
            return Err(DbError::UnknownVersion(version));
        };
        let sha: Vec<u8> = row.get(2);
        if sha != checksum(known.sql) {
            return Err(DbError::ChecksumMismatch { version, name: row.get(1) });
        }
    }
    let mut now_applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.iter().any(|r| r.get::<_, i32>(0) == m.version)) {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &checksum(m.sql)],
        )
        .await?;
        now_applied.push(m.version);
    }
    tx.commit().await?;
    Ok(now_applied)
}

/// The versions recorded as applied.
pub async fn applied_versions(client: &Client) -> Result<Vec<i32>, DbError> {
    let rows = client.query("SELECT version FROM schema_migrations ORDER BY version", &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn checksum(sql: &str) -> Vec<u8> {
    Sha256::digest(sql.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_and_match_the_files() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../functions/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let expected: Vec<String> = MIGRATIONS.iter().map(|m| format!("{:04}_{}.sql", m.version, m.name)).collect();
        assert_eq!(files, expected, "every migration file is listed in MIGRATIONS, in order");
    }
}

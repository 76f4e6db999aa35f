//! The control plane's Postgres schema and the statements that must be exactly right everywhere they
//! run: versioned migrations ([`migrate`]), the periodic cleanup job ([`cleanup`]), the atomic
//! one-time JTI check ([`jti`]), and pool API keys ([`pool_keys`]).
//!
//! The SQL text lives in `functions/migrations` and in [`sql`], which has no dependencies (build with
//! `default-features = false`), so the wasm components and native tools run the same statements.

pub mod sql;

#[cfg(feature = "native")]
pub mod cleanup;
#[cfg(feature = "native")]
pub mod jti;
#[cfg(feature = "native")]
pub mod migrate;
#[cfg(feature = "native")]
pub mod pool_keys;

/// Why a database operation failed.
#[cfg(feature = "native")]
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Postgres refused or the connection failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// An applied migration differs from the one in this build: someone edited history.
    #[error("migration {version} ({name}) was applied with different contents; never edit an applied migration")]
    ChecksumMismatch {
        /// Its version.
        version: i32,
        /// Its name.
        name: String,
    },
    /// The database has migrations this build does not know: it is older than the schema.
    #[error("the database has migration {0}, which this build does not know; deploy a newer build")]
    UnknownVersion(i32),
}

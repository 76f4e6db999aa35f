//! Statements that must be byte-for-byte the same wherever they run: in the wasm components (through
//! Spin's Postgres interface) and in native tools and tests. No dependencies, so components can use it.

/// The atomic first-use check: records `$1` (jti) with expiry `$2` (seconds since the epoch, double
/// precision). Postgres takes a row lock on the unique key, so of any number of concurrent inserts of one
/// `jti` exactly one inserts a row: one row affected means first use.
pub const JTI_CONSUME: &str =
    "INSERT INTO token_jtis (jti, expires_at) VALUES ($1, to_timestamp($2)) ON CONFLICT (jti) DO NOTHING";

/// Opportunistic cleanup on write: a bounded sweep of expired ids, cheap enough to run now and then.
pub const JTI_SWEEP: &str =
    "DELETE FROM token_jtis WHERE jti IN (SELECT jti FROM token_jtis WHERE expires_at < now() LIMIT 100)";

//! The one-time-use port for token ids that no single Durable Object owns (artifact links, pool
//! commands): `consume_once` must be atomic across every caller. Postgres implements it in the control
//! functions (`INSERT ... ON CONFLICT DO NOTHING`); [`MemoryJtiStore`] serves unit tests and single-process
//! tools.

use crate::ids::Jti;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// No token we issue lives longer than a day; an id claimed to expire later is a caller's bug, not a
/// reason to remember it for ever.
pub const MAX_JTI_TTL: core::time::Duration = core::time::Duration::from_secs(24 * 60 * 60);

/// Why an id cannot be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JtiError {
    /// Already expired: its token cannot verify, so recording it proves nothing.
    #[error("expires_at is in the past")]
    Expired,
    /// Further away than any token we issue lives.
    #[error("expires_at is more than a day away")]
    TooFar,
}

/// Checks the expiry a caller wants an id remembered until.
pub fn check_expiry(expires_at: Timestamp, now: Timestamp) -> Result<(), JtiError> {
    if expires_at <= now {
        Err(JtiError::Expired)
    } else if expires_at > now + MAX_JTI_TTL {
        Err(JtiError::TooFar)
    } else {
        Ok(())
    }
}

/// Whether this use was the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// First use: proceed.
    First,
    /// Seen before: refuse as a replay.
    Replayed,
}

/// Atomic first-use check for token ids, remembered until `expires_at` (after which the token cannot
/// verify anyway).
#[allow(async_fn_in_trait)]
pub trait JtiStore {
    /// Why the store could not answer (database down, ...). Callers must fail closed.
    type Error;
    /// Records `jti` and reports whether this was its first use.
    async fn consume_once(&self, jti: &Jti, expires_at: Timestamp, now: Timestamp) -> Result<Consumed, Self::Error>;
}

/// An in-memory store, safe to share between threads.
#[derive(Debug, Default)]
pub struct MemoryJtiStore {
    seen: Mutex<BTreeMap<Jti, Timestamp>>,
}

impl JtiStore for MemoryJtiStore {
    type Error = core::convert::Infallible;

    async fn consume_once(&self, jti: &Jti, expires_at: Timestamp, now: Timestamp) -> Result<Consumed, Self::Error> {
        // A poisoned lock means another thread panicked mid-insert; the map itself is still consistent.
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.retain(|_, exp| *exp > now);
        if seen.contains_key(jti) {
            return Ok(Consumed::Replayed);
        }
        seen.insert(jti.clone(), expires_at);
        Ok(Consumed::First)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expires_in_secs: i64, expected: Result<(), JtiError>) {
        let now = Timestamp::from_secs(1_000_000);
        let at = Timestamp::from_secs((1_000_000 + expires_in_secs) as u64);
        assert_eq!(check_expiry(at, now), expected, "{expires_in_secs}");
    }

    #[test]
    fn expiry_bounds() {
        check(-1, Err(JtiError::Expired));
        check(0, Err(JtiError::Expired));
        check(1, Ok(()));
        check(86_400, Ok(()));
        check(86_401, Err(JtiError::TooFar));
    }
}

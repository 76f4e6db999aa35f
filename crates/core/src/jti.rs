//! The one-time-use port for token ids that no single Durable Object owns (artifact links, pool
//! commands): `consume_once` must be atomic across every caller. Postgres implements it in the control
//! functions (`INSERT ... ON CONFLICT DO NOTHING`); [`MemoryJtiStore`] serves unit tests and single-process
//! tools.

use crate::ids::Jti;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::sync::Mutex;

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

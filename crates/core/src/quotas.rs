//! Per-user quotas on minting sessions: live sessions at once, and a token bucket of mints (a burst of
//! `mints_per_minute`, refilled at that rate), so no window edge lets twice the limit through. The
//! control plane keeps the counts in Postgres; this decides, and says when to retry.

use crate::ratelimit::{BucketState, TokenBucket};
use crate::time::Timestamp;
use core::time::Duration;

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaPolicy {
    /// Sessions one user may have running or starting.
    pub max_live_sessions: u32,
    /// Mints one user may make at once, and per minute sustained.
    pub mints_per_minute: u32,
}

impl QuotaPolicy {
    /// The defaults (docs/requirements.md#r-limits: 5 concurrent agents per user).
    pub const DEFAULT: QuotaPolicy = QuotaPolicy { max_live_sessions: 5, mints_per_minute: 20 };

    /// The user's mint bucket.
    pub fn mint_bucket(&self) -> TokenBucket {
        TokenBucket { burst: self.mints_per_minute, per_minute: self.mints_per_minute }
    }
}

impl Default for QuotaPolicy {
    fn default() -> Self {
        QuotaPolicy::DEFAULT
    }
}

/// What the user has now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Sessions running or starting.
    pub live_sessions: u32,
    /// The user's mint bucket as stored (`None`: never used, full).
    pub mints: Option<BucketState>,
}

/// A refused mint; both map to HTTP 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// Too many live sessions; retrying helps only after one ends.
    #[error("{limit} sessions are already running; end one first")]
    TooManySessions {
        /// The limit.
        limit: u32,
    },
    /// Too many mints just now.
    #[error("too many new sessions; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// Until the bucket has a token again.
        retry_after: Duration,
    },
}

impl QuotaError {
    /// The `Retry-After` to send, in whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            QuotaError::TooManySessions { .. } => 30,
            QuotaError::RateLimited { retry_after } => retry_after.as_millis().div_ceil(1000).max(1) as u64,
        }
    }
}

impl QuotaPolicy {
    /// Whether one more mint is allowed at `now`; the mint bucket's state to store when it is.
    pub fn check_mint(&self, usage: QuotaUsage, now: Timestamp) -> Result<BucketState, QuotaError> {
        if usage.live_sessions >= self.max_live_sessions {
            return Err(QuotaError::TooManySessions { limit: self.max_live_sessions });
        }
        self.mint_bucket()
            .take(usage.mints, now)
            .map_err(|limited| QuotaError::RateLimited { retry_after: limited.retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + ms)
    }

    #[test]
    fn live_sessions_cap_and_a_bucket_of_mints_with_no_double_burst_at_a_minute_edge() {
        let policy = QuotaPolicy { max_live_sessions: 5, mints_per_minute: 20 };
        let full = QuotaUsage::default();
        assert_eq!(
            policy.check_mint(QuotaUsage { live_sessions: 5, ..full }, at(0)),
            Err(QuotaError::TooManySessions { limit: 5 })
        );
        // 20 at the end of one minute...
        let mut state = None;
        for _ in 0..20 {
            state = Some(policy.check_mint(QuotaUsage { live_sessions: 0, mints: state }, at(59_900)).unwrap());
        }
        // ...and not 20 more at the start of the next: one token comes back every 3 s.
        let refused = policy.check_mint(QuotaUsage { live_sessions: 0, mints: state }, at(60_100)).unwrap_err();
        assert_eq!(refused.retry_after_secs(), 3);
        assert!(policy.check_mint(QuotaUsage { live_sessions: 0, mints: state }, at(62_900)).is_ok());
    }
}

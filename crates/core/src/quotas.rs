//! Per-user quotas on minting sessions: live sessions at once, and mints per fixed time window. The
//! control plane counts in Postgres; this decides, and says when to retry.

use crate::time::Timestamp;
use core::time::Duration;

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaPolicy {
    /// Sessions one user may have running or starting.
    pub max_live_sessions: u32,
    /// Mints allowed per window.
    pub mints_per_window: u32,
    /// The window length.
    pub window: Duration,
}

impl QuotaPolicy {
    /// The defaults (docs/requirements.md#r-limits: 5 concurrent agents per user).
    pub const DEFAULT: QuotaPolicy =
        QuotaPolicy { max_live_sessions: 5, mints_per_window: 20, window: Duration::from_secs(60) };
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
    /// Mints in the current window.
    pub mints_in_window: u32,
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
    /// Too many mints in this window.
    #[error("too many new sessions; retry in {} s", retry_after.as_secs())]
    RateLimited {
        /// When the window resets.
        retry_after: Duration,
    },
}

impl QuotaError {
    /// The `Retry-After` to send, in whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            QuotaError::TooManySessions { .. } => 30,
            QuotaError::RateLimited { retry_after } => retry_after.as_secs().max(1),
        }
    }
}

impl QuotaPolicy {
    /// The start of the window containing `now` (windows are aligned to the epoch).
    pub fn window_start(&self, now: Timestamp) -> Timestamp {
        let w = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX).max(1);
        Timestamp::from_millis(now.as_millis() / w * w)
    }

    /// Whether one more mint is allowed at `now`.
    pub fn check_mint(&self, usage: QuotaUsage, now: Timestamp) -> Result<(), QuotaError> {
        if usage.live_sessions >= self.max_live_sessions {
            return Err(QuotaError::TooManySessions { limit: self.max_live_sessions });
        }
        if usage.mints_in_window >= self.mints_per_window {
            let next = self.window_start(now) + self.window;
            return Err(QuotaError::RateLimited { retry_after: next.since(now).max(Duration::from_secs(1)) });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(live: u32, mints: u32, at_ms: u64, expected: Result<(), QuotaError>) {
        let usage = QuotaUsage { live_sessions: live, mints_in_window: mints };
        assert_eq!(QuotaPolicy::default().check_mint(usage, Timestamp::from_millis(at_ms)), expected);
    }

    #[test]
    fn decisions() {
        check(0, 0, 0, Ok(()));
        check(4, 19, 0, Ok(()));
        check(5, 0, 0, Err(QuotaError::TooManySessions { limit: 5 }));
        check(0, 20, 45_000, Err(QuotaError::RateLimited { retry_after: Duration::from_secs(15) }));
        check(0, 20, 59_900, Err(QuotaError::RateLimited { retry_after: Duration::from_secs(1) }));
        assert_eq!(
            QuotaPolicy::default().window_start(Timestamp::from_millis(125_000)),
            Timestamp::from_millis(120_000)
        );
        assert_eq!(QuotaError::RateLimited { retry_after: Duration::from_millis(200) }.retry_after_secs(), 1);
    }
}

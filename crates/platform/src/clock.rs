//! The wall clock, read here so that the core never reads one: every state machine and check takes
//! `now` as a [`Timestamp`].

use edgeshell_core::time::Timestamp;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch.
pub fn now() -> Timestamp {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// How long until `at` (zero when it has passed), for sleeping until a machine's next deadline.
pub fn until(at: Timestamp) -> Duration {
    at.since(now())
}

/// A `SystemTime` as a [`Timestamp`].
pub fn timestamp(at: SystemTime) -> Timestamp {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_agrees_with_itself() {
        let before = now();
        assert!(until(before + Duration::from_secs(60)) > Duration::from_secs(59));
        assert_eq!(until(before), Duration::ZERO);
        assert!(timestamp(SystemTime::now()) >= before);
    }
}

//! How long a session lives: the operator's [`LifetimePolicy`] (a new session's lifetime and the
//! longest one, how long a session runs with no browser attached, the idle rule), what a mint and an
//! extension may ask for, and the [`Terms`] every tier enforces.
//!
//! The control plane decides a session's terms once, from its policy, and carries them: in every
//! attach and join token (the `ses` claim) for the room, and as the start command's `deadline` for the
//! pool and the runner. An extension moves the deadline in the control plane's row first, then tells
//! the room (which tells its runner and browsers) and the pool. No tier keeps a default of its own; the
//! room ends the session at its deadline with the true reason, and the runner and the pool stop theirs
//! only a little later ([`BACKSTOP`]), in case the room cannot.

use crate::time::Timestamp;
use core::time::Duration;
use serde::{Deserialize, Serialize};

/// The shortest lifetime a mint may ask for.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);

/// The longest lifetime any policy may allow (a week): a defence in depth checked on every token, so
/// not even a misconfigured control plane can make a session without an end.
pub const LIFETIME_CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long after the deadline the runner and the pool stop a session themselves: the room ends it at
/// the deadline (telling every browser why), and these catch a room that could not.
pub const BACKSTOP: Duration = Duration::from_secs(5);

/// The operator's rules for session lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimePolicy {
    /// A new session's lifetime when its mint asks for none.
    pub default_lifetime: Duration,
    /// The longest a session may live from its creation, extensions included.
    pub max_lifetime: Duration,
    /// How long a session keeps running with no browser attached (`None`: until its deadline).
    pub detached: Option<Duration>,
    /// A session with neither input nor output for this long ends as idle (`None`: never).
    pub idle: Option<Duration>,
}

impl LifetimePolicy {
    /// The defaults: 8 hours, at most 24, running detached until the deadline, idle after an hour.
    pub const DEFAULT: LifetimePolicy = LifetimePolicy {
        default_lifetime: Duration::from_secs(8 * 3600),
        max_lifetime: Duration::from_secs(24 * 3600),
        detached: None,
        idle: Some(Duration::from_secs(3600)),
    };

    /// Checks the policy itself (the control plane refuses to start with a bad one).
    pub fn check(&self) -> Result<(), String> {
        if self.max_lifetime > LIFETIME_CEILING {
            return Err(format!("the longest lifetime may be at most {} s", LIFETIME_CEILING.as_secs()));
        }
        if self.default_lifetime < MIN_LIFETIME || self.default_lifetime > self.max_lifetime {
            return Err(format!(
                "the default lifetime ({} s) must lie between {} s and the longest ({} s)",
                self.default_lifetime.as_secs(),
                MIN_LIFETIME.as_secs(),
                self.max_lifetime.as_secs()
            ));
        }
        Ok(())
    }

    /// The terms of a session minted at `now` that asked for `requested` seconds (or none).
    pub fn terms_at_mint(&self, requested: Option<u64>, now: Timestamp) -> Result<Terms, LifetimeError> {
        let lifetime = match requested {
            None => self.default_lifetime,
            Some(secs) if secs < MIN_LIFETIME.as_secs() => {
                return Err(LifetimeError::TooShort { min_secs: MIN_LIFETIME.as_secs() })
            }
            Some(secs) if secs > self.max_lifetime.as_secs() => {
                return Err(LifetimeError::TooLong { max_secs: self.max_lifetime.as_secs() })
            }
            Some(secs) => Duration::from_secs(secs),
        };
        Ok(self.terms_until((now + lifetime).as_secs()))
    }

    /// The terms of a session ending at `ends` (seconds since the epoch) under this policy's rules.
    pub fn terms_until(&self, ends: u64) -> Terms {
        Terms { ends, idle: self.idle.map(|d| d.as_secs()), detached: self.detached.map(|d| d.as_secs()) }
    }

    /// The latest a session created at `created` may end, however it is extended.
    pub fn latest_end(&self, created: Timestamp) -> Timestamp {
        created + self.max_lifetime
    }

    /// The new deadline of a session created at `created` and ending at `ends`, extended at `now` by
    /// `by_secs`. It must still be live, and the result must stay within the longest lifetime.
    pub fn extend(&self, created: Timestamp, ends: u64, by_secs: u64, now: Timestamp) -> Result<u64, LifetimeError> {
        if ends <= now.as_secs() {
            return Err(LifetimeError::Over);
        }
        if by_secs == 0 {
            return Err(LifetimeError::TooShort { min_secs: 1 });
        }
        let latest = self.latest_end(created).as_secs();
        let wanted = ends.saturating_add(by_secs);
        if wanted > latest {
            return Err(LifetimeError::BeyondLongest {
                max_secs: self.max_lifetime.as_secs(),
                allowed_secs: latest.saturating_sub(ends),
            });
        }
        Ok(wanted)
    }
}

impl Default for LifetimePolicy {
    fn default() -> Self {
        LifetimePolicy::DEFAULT
    }
}

/// A session's terms as every tier enforces them (the `ses` claim of attach and join tokens). Every
/// field is always written (`null` for none): the room also stores them in its state, whose encoding
/// cannot skip fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// The deadline, seconds since the epoch.
    pub ends: u64,
    /// Seconds without input or output after which the session ends as idle; `null`: never.
    pub idle: Option<u64>,
    /// Seconds the session keeps running with no browser attached; `null`: until `ends`.
    pub detached: Option<u64>,
}

impl Terms {
    /// Terms ending `secs` after `now`, with neither an idle nor a detached rule (for tools, tests
    /// and benchmarks that make tokens of their own).
    pub fn lasting(now: Timestamp, secs: u64) -> Terms {
        Terms { ends: now.as_secs().saturating_add(secs), idle: None, detached: None }
    }

    /// The deadline.
    pub fn deadline(&self) -> Timestamp {
        Timestamp::from_secs(self.ends)
    }

    /// The idle rule.
    pub fn idle(&self) -> Option<Duration> {
        self.idle.map(Duration::from_secs)
    }

    /// The detached rule.
    pub fn detached(&self) -> Option<Duration> {
        self.detached.map(Duration::from_secs)
    }
}

/// Why a lifetime was refused; the message names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    /// Shorter than allowed.
    #[error("must be at least {min_secs} s")]
    TooShort {
        /// The shortest allowed.
        min_secs: u64,
    },
    /// Longer than the policy's longest lifetime.
    #[error("may be at most {max_secs} s")]
    TooLong {
        /// The longest allowed.
        max_secs: u64,
    },
    /// An extension past the longest lifetime from the session's creation.
    #[error("a session lives at most {max_secs} s; this one may be extended by {allowed_secs} s more")]
    BeyondLongest {
        /// The longest lifetime.
        max_secs: u64,
        /// How much further it may go.
        allowed_secs: u64,
    },
    /// The session has already ended.
    #[error("the session has already ended")]
    Over,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);

    #[test]
    fn a_mint_gets_the_default_or_what_it_asks_within_the_bounds() {
        let p = LifetimePolicy::DEFAULT;
        assert_eq!(p.check(), Ok(()));
        let t = p.terms_at_mint(None, NOW).unwrap();
        assert_eq!((t.ends, t.idle, t.detached), (NOW.as_secs() + 8 * 3600, Some(3600), None));
        assert_eq!(p.terms_at_mint(Some(600), NOW).unwrap().ends, NOW.as_secs() + 600);
        assert_eq!(p.terms_at_mint(Some(24 * 3600), NOW).unwrap().ends, NOW.as_secs() + 24 * 3600);
        assert_eq!(p.terms_at_mint(Some(24 * 3600 + 1), NOW), Err(LifetimeError::TooLong { max_secs: 86_400 }));
        assert_eq!(p.terms_at_mint(Some(59), NOW), Err(LifetimeError::TooShort { min_secs: 60 }));
    }

    #[test]
    fn an_extension_stays_within_the_longest_lifetime_from_creation() {
        let p = LifetimePolicy::DEFAULT;
        let created = NOW - Duration::from_secs(3600);
        let ends = (created + Duration::from_secs(8 * 3600)).as_secs();
        assert_eq!(p.extend(created, ends, 3600, NOW), Ok(ends + 3600));
        assert_eq!(p.extend(created, ends, 16 * 3600, NOW), Ok(created.as_secs() + 24 * 3600));
        assert_eq!(
            p.extend(created, ends, 16 * 3600 + 1, NOW),
            Err(LifetimeError::BeyondLongest { max_secs: 86_400, allowed_secs: 16 * 3600 })
        );
        assert_eq!(p.extend(created, NOW.as_secs(), 60, NOW), Err(LifetimeError::Over));
        assert_eq!(p.extend(created, ends, 0, NOW), Err(LifetimeError::TooShort { min_secs: 1 }));
    }

    #[test]
    fn a_policy_beyond_the_ceiling_or_with_a_default_past_its_longest_is_refused() {
        let week =
            LifetimePolicy { max_lifetime: LIFETIME_CEILING + Duration::from_secs(1), ..LifetimePolicy::DEFAULT };
        assert!(week.check().is_err());
        let inverted = LifetimePolicy { default_lifetime: Duration::from_secs(25 * 3600), ..LifetimePolicy::DEFAULT };
        assert!(inverted.check().unwrap_err().contains("between"));
    }

    #[test]
    fn terms_travel_as_compact_json_and_refuse_strangers() {
        let t = Terms { ends: 5, idle: None, detached: Some(60) };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"ends":5,"idle":null,"detached":60}"#);
        assert_eq!(serde_json::from_str::<Terms>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Terms>(r#"{"ends":5,"idle":null,"detached":null,"forever":true}"#).is_err());
    }
}

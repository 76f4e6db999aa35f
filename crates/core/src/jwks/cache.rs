//! The JWKS cache *policy* as a value: what to do on each lookup, given the keys held, their age, fetches
//! in flight and past failures. The platform adapter does the fetching and the waiting; this decides.
//!
//! - Keys younger than `refresh_after` are fresh. Older ones are still served while a single background
//!   refresh runs ([`JwksCache::poll_refresh`]).
//! - An unknown `kid` triggers at most one refetch per `unknown_kid_cooldown` (single flight: while a fetch
//!   is in flight, lookups wait for it instead of starting another).
//! - When the issuer is down, the keys held keep working up to `max_stale` after their last good fetch.

use super::{JwksError, KeySet, VerifyingKey};
use crate::ids::Kid;
use crate::time::Timestamp;
use core::time::Duration;

/// Tunables of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Age after which a background refresh is started.
    pub refresh_after: Duration,
    /// Age after which keys are no longer served, even if the issuer is down.
    pub max_stale: Duration,
    /// Minimum time between two refetches caused by unknown kids.
    pub unknown_kid_cooldown: Duration,
    /// Minimum time between two fetches after a failed one.
    pub error_backoff: Duration,
    /// A fetch in flight for longer than this is presumed lost.
    pub fetch_timeout: Duration,
    /// Whether keys whose refresh failed are still served (up to `max_stale`) while the issuer is
    /// down. Off, a failed refresh retires them at once: no token verifies until a fetch succeeds,
    /// for operators who would rather refuse than trust keys the issuer may have revoked.
    pub serve_stale: bool,
}

impl CachePolicy {
    /// Refresh after 5 minutes, serve stale keys for a day, one unknown-kid refetch per 30 s, 5 s of
    /// backoff after a failure, 5 s per fetch.
    pub const DEFAULT: CachePolicy = CachePolicy {
        refresh_after: Duration::from_secs(5 * 60),
        max_stale: Duration::from_secs(24 * 60 * 60),
        unknown_kid_cooldown: Duration::from_secs(30),
        error_backoff: Duration::from_secs(5),
        fetch_timeout: Duration::from_secs(5),
        serve_stale: true,
    };
}

impl CachePolicy {
    /// How long a request may wait for the keys: a fetch in flight may take `fetch_timeout` before it
    /// is presumed lost, then the request's own fetch as long again, and a second for the rest.
    pub fn max_wait(&self) -> Duration {
        self.fetch_timeout.saturating_mul(2).saturating_add(Duration::from_secs(1))
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy::DEFAULT
    }
}

/// How usable the held keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// No keys were ever fetched.
    Empty,
    /// Younger than `refresh_after`.
    Fresh,
    /// Older than `refresh_after`; served while a refresh is attempted.
    RefreshDue,
    /// A refresh failed since the last good fetch; still served, up to `max_stale`.
    Stale,
    /// Older than `max_stale`: not served.
    Expired,
}

/// The outcome of looking a kid up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Use this key.
    Key(&'a VerifyingKey),
    /// Fetch the JWKS now (the fetch is registered as in flight), report it with
    /// [`JwksCache::on_fetch`], then look up again.
    Fetch,
    /// A fetch is in flight: wait for it, then look up again.
    Wait,
    /// The kid is unknown and a refetch is not allowed now (cooldown or backoff): refuse the token.
    Unknown,
    /// No usable keys and no fetch allowed now (issuer down and keys expired): refuse with "unavailable".
    Unavailable,
}

/// Counters for metrics; monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheMetrics {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Of those, answered with stale keys while the issuer was failing.
    pub stale_hits: u64,
    /// Lookups of a kid not in the cache.
    pub misses: u64,
    /// Fetches started because of an unknown kid or a cold cache.
    pub refetches: u64,
    /// Fetches started as background refreshes.
    pub refreshes: u64,
    /// Unknown-kid refetches refused by the cooldown.
    pub cooldown_refusals: u64,
    /// Fetches that succeeded.
    pub fetch_ok: u64,
    /// Fetches that failed.
    pub fetch_errors: u64,
}

/// The times a cache's decisions depend on, for caches that live outside one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTimes {
    /// When the held keys were fetched.
    pub fetched_at: Timestamp,
    /// The last refetch caused by an unknown kid.
    pub last_unknown_kid_fetch: Option<Timestamp>,
    /// The last failed fetch since the last good one.
    pub last_failure: Option<Timestamp>,
}

/// The cache state for one issuer.
#[derive(Debug, Clone)]
pub struct JwksCache {
    policy: CachePolicy,
    keys: Option<KeySet>,
    fetched_at: Timestamp,
    in_flight_since: Option<Timestamp>,
    last_unknown_kid_fetch: Option<Timestamp>,
    last_failure: Option<Timestamp>,
    metrics: CacheMetrics,
}

impl JwksCache {
    /// An empty cache.
    pub fn new(policy: CachePolicy) -> Self {
        JwksCache {
            policy,
            keys: None,
            fetched_at: Timestamp::EPOCH,
            in_flight_since: None,
            last_unknown_kid_fetch: None,
            last_failure: None,
            metrics: CacheMetrics::default(),
        }
    }

    /// A cache primed with keys fetched at `fetched_at` (e.g. restored from the platform's HTTP cache).
    pub fn with_keys(policy: CachePolicy, keys: KeySet, fetched_at: Timestamp) -> Self {
        let mut cache = JwksCache::new(policy);
        cache.keys = Some(keys);
        cache.fetched_at = fetched_at;
        cache
    }

    /// Restores a cache whose state was kept outside memory (a table, a storage object): the keys and
    /// the times that the cooldown and backoff rules depend on.
    pub fn restore(policy: CachePolicy, keys: Option<KeySet>, times: CacheTimes) -> Self {
        let mut cache = JwksCache::new(policy);
        cache.keys = keys;
        cache.fetched_at = times.fetched_at;
        cache.last_unknown_kid_fetch = times.last_unknown_kid_fetch;
        cache.last_failure = times.last_failure;
        cache
    }

    /// The times to keep with the keys for [`JwksCache::restore`].
    pub fn times(&self) -> CacheTimes {
        CacheTimes {
            fetched_at: self.fetched_at,
            last_unknown_kid_fetch: self.last_unknown_kid_fetch,
            last_failure: self.last_failure,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &CachePolicy {
        &self.policy
    }

    /// The counters.
    pub fn metrics(&self) -> CacheMetrics {
        self.metrics
    }

    /// The keys held, whatever their age.
    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }

    /// When the held keys were fetched.
    pub fn fetched_at(&self) -> Option<Timestamp> {
        self.keys.as_ref().map(|_| self.fetched_at)
    }

    /// How usable the held keys are at `now`.
    pub fn freshness(&self, now: Timestamp) -> Freshness {
        if self.keys.is_none() {
            return Freshness::Empty;
        }
        let age = now.since(self.fetched_at);
        let failed = self.last_failure.is_some_and(|f| f >= self.fetched_at);
        if age >= self.policy.max_stale || (failed && !self.policy.serve_stale) {
            Freshness::Expired
        } else if failed {
            Freshness::Stale
        } else if age >= self.policy.refresh_after {
            Freshness::RefreshDue
        } else {
            Freshness::Fresh
        }
    }

    fn in_flight(&self, now: Timestamp) -> bool {
        self.in_flight_since.is_some_and(|since| now.since(since) < self.policy.fetch_timeout)
    }

    fn backing_off(&self, now: Timestamp) -> bool {
        self.last_failure.is_some_and(|f| now.since(f) < self.policy.error_backoff)
    }

    /// Decides how to get the key `kid` at `now`.
    pub fn lookup(&mut self, kid: &Kid, now: Timestamp) -> Lookup<'_> {
        let freshness = self.freshness(now);
        let usable = !matches!(freshness, Freshness::Empty | Freshness::Expired);
        let held = usable && self.keys.as_ref().is_some_and(|k| k.get(kid).is_some());
        if held {
            self.metrics.hits += 1;
            if freshness == Freshness::Stale {
                self.metrics.stale_hits += 1;
            }
            return match self.keys.as_ref().and_then(|k| k.get(kid)) {
                Some(key) => Lookup::Key(key),
                None => Lookup::Unavailable,
            };
        }
        self.metrics.misses += 1;
        if self.in_flight(now) {
            return Lookup::Wait;
        }
        if self.backing_off(now) {
            return if usable { Lookup::Unknown } else { Lookup::Unavailable };
        }
        if usable && self.last_unknown_kid_fetch.is_some_and(|t| now.since(t) < self.policy.unknown_kid_cooldown) {
            self.metrics.cooldown_refusals += 1;
            return Lookup::Unknown;
        }
        if usable {
            self.last_unknown_kid_fetch = Some(now);
        }
        self.metrics.refetches += 1;
        self.in_flight_since = Some(now);
        Lookup::Fetch
    }

    /// True when a background refresh should start now; it is then registered as in flight. Call on every
    /// request; at most one refresh runs at a time, and none during an error backoff.
    pub fn poll_refresh(&mut self, now: Timestamp) -> bool {
        let due = matches!(self.freshness(now), Freshness::RefreshDue | Freshness::Stale | Freshness::Expired);
        if !due || self.in_flight(now) || self.backing_off(now) {
            return false;
        }
        self.metrics.refreshes += 1;
        self.in_flight_since = Some(now);
        true
    }

    /// Records the outcome of a fetch started by [`Lookup::Fetch`] or [`JwksCache::poll_refresh`].
    /// A failure keeps the held keys, which stay usable up to `max_stale`.
    pub fn on_fetch(&mut self, result: Result<KeySet, JwksError>, now: Timestamp) {
        self.in_flight_since = None;
        match result {
            Ok(keys) => {
                self.metrics.fetch_ok += 1;
                self.keys = Some(keys);
                self.fetched_at = now;
                self.last_failure = None;
            }
            Err(_) => {
                self.metrics.fetch_errors += 1;
                self.last_failure = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::Alg;

    fn key(kid: &str) -> VerifyingKey {
        let mut n = vec![0xC5u8; 256];
        n[255] = 0x01;
        VerifyingKey::rsa(Kid::new(kid).unwrap(), Alg::Rs256, &n, &[1, 0, 1]).unwrap()
    }

    fn keys(kids: &[&str]) -> KeySet {
        KeySet::from_keys(kids.iter().map(|k| key(k)).collect()).unwrap()
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(1_000_000 + secs)
    }

    fn kid(k: &str) -> Kid {
        Kid::new(k).unwrap()
    }

    fn outcome(l: Lookup<'_>) -> &'static str {
        match l {
            Lookup::Key(_) => "key",
            Lookup::Fetch => "fetch",
            Lookup::Wait => "wait",
            Lookup::Unknown => "unknown",
            Lookup::Unavailable => "unavailable",
        }
    }

    #[test]
    fn cold_start_fetches_once_and_others_wait() {
        let mut c = JwksCache::new(CachePolicy::default());
        assert_eq!(outcome(c.lookup(&kid("a"), at(0))), "fetch");
        assert_eq!(outcome(c.lookup(&kid("a"), at(0))), "wait");
        c.on_fetch(Ok(keys(&["a"])), at(1));
        assert_eq!(outcome(c.lookup(&kid("a"), at(1))), "key");
        assert_eq!(c.metrics().refetches, 1);
    }

    #[test]
    fn unknown_kid_refetches_once_per_cooldown() {
        let mut c = JwksCache::with_keys(CachePolicy::default(), keys(&["a"]), at(0));
        assert_eq!(outcome(c.lookup(&kid("b"), at(1))), "fetch");
        c.on_fetch(Ok(keys(&["a"])), at(1));
        // Flood of unknown kids: all refused without fetching until the cooldown passes.
        for i in 0..100 {
            assert_eq!(outcome(c.lookup(&kid(&format!("x{i}")), at(2))), "unknown");
        }
        assert_eq!(c.metrics().refetches, 1);
        assert_eq!(c.metrics().cooldown_refusals, 100);
        assert_eq!(outcome(c.lookup(&kid("b"), at(32))), "fetch");
        c.on_fetch(Ok(keys(&["a", "b"])), at(32));
        assert_eq!(outcome(c.lookup(&kid("b"), at(32))), "key");
    }

    #[test]
    fn stale_keys_are_served_only_when_the_policy_says_so() {
        for serve_stale in [true, false] {
            let p = CachePolicy { serve_stale, ..CachePolicy::default() };
            let mut c = JwksCache::with_keys(p, keys(&["a"]), at(0));
            assert!(c.poll_refresh(at(301)));
            c.on_fetch(Err(JwksError::Malformed("issuer down".into())), at(302));
            let expected = if serve_stale { "key" } else { "unavailable" };
            assert_eq!(outcome(c.lookup(&kid("a"), at(303))), expected, "serve_stale: {serve_stale}");
            // A good fetch brings them back either way.
            c.on_fetch(Ok(keys(&["a"])), at(310));
            assert_eq!(outcome(c.lookup(&kid("a"), at(311))), "key");
        }
    }

    #[test]
    fn background_refresh_is_single_flight() {
        let p = CachePolicy::default();
        let mut c = JwksCache::with_keys(p, keys(&["a"]), at(0));
        assert!(!c.poll_refresh(at(10)));
        assert_eq!(c.freshness(at(301)), Freshness::RefreshDue);
        assert!(c.poll_refresh(at(301)));
        assert!(!c.poll_refresh(at(302)), "second refresh while one is in flight");
        assert_eq!(outcome(c.lookup(&kid("a"), at(302))), "key", "keys still served during refresh");
        // A lost fetch stops blocking after the fetch timeout.
        assert!(c.poll_refresh(at(301 + 11)));
    }

    #[test]
    fn issuer_down_serves_stale_until_max_stale() {
        let p = CachePolicy::default();
        let mut c = JwksCache::with_keys(p, keys(&["a"]), at(0));
        assert!(c.poll_refresh(at(400)));
        c.on_fetch(Err(JwksError::Fetch("connection refused".into())), at(400));
        assert_eq!(c.freshness(at(401)), Freshness::Stale);
        assert_eq!(outcome(c.lookup(&kid("a"), at(401))), "key");
        assert_eq!(c.metrics().stale_hits, 1);
        assert!(!c.poll_refresh(at(402)), "error backoff");
        assert!(c.poll_refresh(at(406)));
        c.on_fetch(Err(JwksError::Fetch("down".into())), at(406));
        let day = 24 * 60 * 60;
        assert_eq!(outcome(c.lookup(&kid("a"), at(day - 1))), "key");
        assert_eq!(c.freshness(at(day)), Freshness::Expired);
        assert_eq!(outcome(c.lookup(&kid("a"), at(day))), "fetch");
        c.on_fetch(Err(JwksError::Fetch("down".into())), at(day));
        assert_eq!(outcome(c.lookup(&kid("a"), at(day + 1))), "unavailable");
        assert_eq!(c.metrics().fetch_errors, 3);
    }

    #[test]
    fn recovery_replaces_keys() {
        let mut c = JwksCache::with_keys(CachePolicy::default(), keys(&["old"]), at(0));
        assert!(c.poll_refresh(at(300)));
        c.on_fetch(Ok(keys(&["new"])), at(300));
        assert_eq!(c.freshness(at(300)), Freshness::Fresh);
        assert_eq!(outcome(c.lookup(&kid("new"), at(300))), "key");
    }

    #[test]
    fn restored_state_keeps_the_cooldown() {
        let mut cache = JwksCache::with_keys(CachePolicy::default(), keys(&["a"]), at(0));
        assert_eq!(cache.lookup(&kid("b"), at(1)), Lookup::Fetch);
        cache.on_fetch(Ok(keys(&["a"])), at(1));
        let mut restored = JwksCache::restore(CachePolicy::default(), cache.keys().cloned(), cache.times());
        assert_eq!(restored.lookup(&kid("b"), at(2)), Lookup::Unknown, "cooldown survives the restore");
        assert_eq!(restored.lookup(&kid("b"), at(40)), Lookup::Fetch);
    }
}

//! Rate limits as token buckets, and who a caller is before authentication.
//!
//! A [`TokenBucket`] holds up to `burst` tokens and gains `per_minute` of them a minute; each request
//! takes one. Unlike a fixed window it never lets `2 × limit` through across a window's edge: at most
//! `burst` at once, then the refill rate. The control plane stores one [`BucketState`] per key (a
//! client address, or a user and a route) and asks [`TokenBucket::take`] under a lock.
//!
//! Before a request is authenticated, the only thing known about its sender is where it came from:
//! [`ClientAddr`] picks that from what the platform and trusted proxies say, and keys IPv6 callers by
//! their /64 (one subscriber's allocation), so one host cannot dodge the limit by changing addresses.

use crate::time::Timestamp;
use core::net::IpAddr;
use core::time::Duration;

/// Tokens are counted in thousandths, so refills of a fraction of a token add up exactly.
const MILLI: u64 = 1000;

/// A token bucket: at most `burst` requests at once, `per_minute` sustained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens when full: the largest burst.
    pub burst: u32,
    /// Tokens added per minute.
    pub per_minute: u32,
}

/// One bucket's stored state: its tokens (in thousandths) when last touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    /// Tokens × 1000.
    pub milli_tokens: u64,
    /// When they were counted.
    pub at: Timestamp,
}

/// A refused request: wait this long for the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; retry in {} s", self.retry_after_secs())]
pub struct Limited {
    /// Until a token is there.
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

impl TokenBucket {
    /// The state of a bucket never used: full.
    pub fn full(&self, now: Timestamp) -> BucketState {
        BucketState { milli_tokens: u64::from(self.burst) * MILLI, at: now }
    }

    /// Takes a token from `state` (`None`: a new, full bucket) at `now`: the state to store, or how
    /// long to wait. A refused take stores nothing (the state is unchanged), so refused floods do not
    /// push the next token further away.
    pub fn take(&self, state: Option<BucketState>, now: Timestamp) -> Result<BucketState, Limited> {
        let state = state.unwrap_or_else(|| self.full(now));
        let cap = u64::from(self.burst) * MILLI;
        // A clock that went back refills nothing.
        let elapsed_ms = now.as_millis().saturating_sub(state.at.as_millis());
        let refill = elapsed_ms.saturating_mul(u64::from(self.per_minute)) / 60;
        let tokens = state.milli_tokens.saturating_add(refill).min(cap);
        if tokens >= MILLI {
            return Ok(BucketState { milli_tokens: tokens - MILLI, at: now.max(state.at) });
        }
        let missing = MILLI - tokens;
        let wait_ms = match self.per_minute {
            0 => u64::MAX / 2,
            per_minute => (missing * 60).div_ceil(u64::from(per_minute)),
        };
        Err(Limited { retry_after: Duration::from_millis(wait_ms) })
    }
}

/// Where a request came from, as far as this hop can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    /// The caller's address: the one a trusted forwarder vouches for when there is one (the edge
    /// passing on a browser's API call, having shown the internal key), else the one `trusted_hops`
    /// proxies from the right of `X-Forwarded-For` (each trusted proxy appends what it saw; 0: none
    /// is trusted), else the transport's peer (`spin-client-addr`). `None` when nothing names a
    /// valid address.
    pub fn resolve(
        vouched: Option<&str>,
        forwarded_for: Option<&str>,
        trusted_hops: usize,
        peer: Option<&str>,
    ) -> Option<ClientAddr> {
        if let Some(addr) = vouched.and_then(parse_addr) {
            return Some(ClientAddr(addr));
        }
        if trusted_hops > 0 {
            let hops: Vec<&str> = forwarded_for.unwrap_or_default().split(',').map(str::trim).collect();
            // With N trusted proxies, the Nth entry from the right is what the first of them saw.
            if let Some(addr) =
                hops.len().checked_sub(trusted_hops).and_then(|i| hops.get(i)).and_then(|h| parse_addr(h))
            {
                return Some(ClientAddr(addr));
            }
        }
        peer.and_then(parse_addr).map(ClientAddr)
    }

    /// The rate-limit key: the address, an IPv6 one cut to its /64 (IPv4-mapped IPv6 as IPv4).
    pub fn key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => format!("addr:{v4}"),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => format!("addr:{v4}"),
                None => {
                    let s = v6.segments();
                    format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

/// An address with or without a port: `1.2.3.4`, `1.2.3.4:5`, `::1`, `[::1]:5`.
fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(addr);
    }
    text.parse::<core::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: TokenBucket = TokenBucket { burst: 5, per_minute: 60 };

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + ms)
    }

    /// Takes from `state` `n` times at `now`; returns how many went through and the state.
    fn take_n(
        bucket: &TokenBucket,
        mut state: Option<BucketState>,
        n: usize,
        now: Timestamp,
    ) -> (usize, Option<BucketState>) {
        let mut passed = 0;
        for _ in 0..n {
            if let Ok(next) = bucket.take(state, now) {
                state = Some(next);
                passed += 1;
            }
        }
        (passed, state)
    }

    #[test]
    fn a_burst_then_the_rate_and_never_twice_the_limit_across_a_boundary() {
        let (passed, state) = take_n(&LIMIT, None, 100, at(0));
        assert_eq!(passed, 5, "the burst");
        assert_eq!(LIMIT.take(state, at(0)), Err(Limited { retry_after: Duration::from_secs(1) }));
        assert_eq!(LIMIT.take(state, at(400)).unwrap_err().retry_after, Duration::from_millis(600));
        // A minute of steady requests, two a second: one a second goes through.
        let mut state = state;
        let mut passed = 0;
        for half_second in 1..=120 {
            let (n, next) = take_n(&LIMIT, state, 1, at(half_second * 500));
            passed += n;
            state = next;
        }
        assert_eq!(passed, 60);
        // Whatever the timing, no 60-second span lets more than burst + rate through.
        let mut state = None;
        let mut times = Vec::new();
        for ms in (0..180_000).step_by(97) {
            if let Ok(next) = LIMIT.take(state, at(ms)) {
                state = Some(next);
                times.push(ms);
            }
        }
        for (i, start) in times.iter().enumerate() {
            let within = times[i..].iter().take_while(|t| **t < start + 60_000).count();
            assert!(within <= 5 + 60, "{within} in the minute from {start} ms");
        }
    }

    #[test]
    fn refusals_do_not_delay_the_next_token_and_a_clock_going_back_refills_nothing() {
        let (_, state) = take_n(&LIMIT, None, 5, at(0));
        let state = state.unwrap();
        for ms in 0..999 {
            assert!(LIMIT.take(Some(state), at(ms)).is_err());
        }
        assert!(LIMIT.take(Some(state), at(1000)).is_ok());
        let later = BucketState { milli_tokens: 0, at: at(5_000) };
        assert!(LIMIT.take(Some(later), at(0)).is_err());
        assert_eq!(Limited { retry_after: Duration::from_millis(1) }.retry_after_secs(), 1);
        assert_eq!(Limited { retry_after: Duration::from_millis(2_001) }.retry_after_secs(), 3);
        let never = TokenBucket { burst: 0, per_minute: 0 };
        assert!(never.take(None, at(0)).unwrap_err().retry_after > Duration::from_secs(86_400));
    }

    #[test]
    fn the_client_is_the_vouched_then_the_trusted_forwarded_then_the_peer() {
        let key = |v, f, h, p| ClientAddr::resolve(v, f, h, p).map(|c| c.key());
        assert_eq!(key(Some("203.0.113.9"), Some("1.1.1.1"), 1, Some("10.0.0.1:4")), Some("addr:203.0.113.9".into()));
        // One trusted proxy: the rightmost entry is what it saw; the rest is the client's to forge.
        assert_eq!(key(None, Some("6.6.6.6, 198.51.100.7"), 1, Some("10.0.0.1:4")), Some("addr:198.51.100.7".into()));
        assert_eq!(key(None, Some("6.6.6.6, 198.51.100.7, 10.1.1.1"), 2, None), Some("addr:198.51.100.7".into()));
        // Not trusted: the header is ignored, the peer counts.
        assert_eq!(key(None, Some("6.6.6.6"), 0, Some("127.0.0.2:5555")), Some("addr:127.0.0.2".into()));
        // Fewer hops than trusted, or junk: the peer.
        assert_eq!(key(None, Some("junk"), 1, Some("127.0.0.1")), Some("addr:127.0.0.1".into()));
        assert_eq!(key(None, None, 3, Some("[2001:db8:1:2:3:4:5:6]:80")), Some("addr:2001:db8:1:2::/64".into()));
        assert_eq!(key(None, None, 0, Some("::ffff:192.0.2.1")), Some("addr:192.0.2.1".into()));
        assert_eq!(key(Some("nonsense"), None, 0, None), None);
        // Two addresses in one /64 share a bucket.
        assert_eq!(key(None, None, 0, Some("2001:db8::1")), key(None, None, 0, Some("2001:db8::ffff:1")));
    }
}

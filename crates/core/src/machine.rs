//! The one shape of every protocol state machine in the core: the session room ([`crate::room`]), the
//! runner's link ([`crate::runner_link`]) and the browser's link ([`crate::browser_link`]).
//!
//! The contract, after quinn-proto's sans-io design: a machine never reads a clock, never sleeps and
//! never touches a socket. Its host
//!
//! 1. feeds each thing that happened with [`StateMachine::handle_event`]`(event, now)`,
//! 2. carries out the effects handed back, in order (send these bytes, close that connection, dial,
//!    stop the program...),
//! 3. asks [`StateMachine::poll_timeout`] when the machine next needs the time, arms one timer for it
//!    (re-arming whenever the answer changes), and when it fires calls
//!    [`StateMachine::handle_timeout`]`(now)` and carries out those effects too.
//!
//! Every deadline (heartbeats, silence, idle, grace periods, reconnect backoff) lives inside the
//! machine, so each is tested by feeding times, not by waiting. Randomness comes in from the host:
//! as bytes in the events that need them (the room's resume tickets), or as a seed at creation for
//! reconnect jitter ([`Jitter`]).

use crate::time::Timestamp;
use core::time::Duration;

/// A sans-io state machine. See the module documentation for the contract.
pub trait StateMachine {
    /// What can happen to it.
    type Event;
    /// What it asks its host to do.
    type Effect;

    /// Handles one event at `now`; deadlines that passed by `now` are acted on first.
    fn handle_event(&mut self, event: Self::Event, now: Timestamp) -> Vec<Self::Effect>;

    /// Acts on every deadline that has passed at `now`.
    fn handle_timeout(&mut self, now: Timestamp) -> Vec<Self::Effect>;

    /// When [`StateMachine::handle_timeout`] is next due; `None` when nothing is scheduled.
    fn poll_timeout(&self) -> Option<Timestamp>;
}

/// Reconnect delays: "full jitter" over an exponential bound, so a region's worth of clients does not
/// come back in lockstep, with a floor, because an immediate retry would meet the same failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first attempt's upper bound.
    pub base: Duration,
    /// The largest upper bound.
    pub cap: Duration,
    /// The shortest delay.
    pub floor: Duration,
}

impl Backoff {
    /// The delay before attempt `attempt` (1-based), uniform in `[floor, min(cap, base * 2^(attempt-1))]`
    /// as `random` is uniform over `u32`.
    pub fn delay(&self, attempt: u32, random: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        let bound = self.base.saturating_mul(1 << doublings).min(self.cap).max(self.floor);
        let spread = bound - self.floor;
        let fraction = u128::from(random);
        let extra = spread.as_nanos() * fraction / (u128::from(u32::MAX) + 1);
        self.floor + Duration::from_nanos(u64::try_from(extra).unwrap_or(u64::MAX))
    }
}

/// A small pseudo-random sequence (splitmix64) for reconnect jitter, seeded by the host's randomness.
/// Not for secrets: tickets and token ids take fresh entropy from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jitter(u64);

impl Jitter {
    /// A sequence from the host's random seed.
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// The next value, uniform over `u32`.
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

/// The earliest of some optional deadlines.
pub fn earliest(deadlines: impl IntoIterator<Item = Option<Timestamp>>) -> Option<Timestamp> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff =
        Backoff { base: Duration::from_millis(250), cap: Duration::from_secs(15), floor: Duration::from_millis(50) };

    fn check(attempt: u32, random: u32, expected_ms: u64) {
        assert_eq!(B.delay(attempt, random).as_millis(), u128::from(expected_ms), "attempt {attempt}, random {random}");
    }

    #[test]
    fn backoff_spreads_between_the_floor_and_a_doubling_bound() {
        check(1, 0, 50);
        check(1, u32::MAX, 249);
        check(1, 1 << 31, 150);
        check(2, u32::MAX, 499);
        check(7, u32::MAX, 14_999);
        check(30, u32::MAX, 14_999);
        check(30, 0, 50);
    }

    #[test]
    fn jitter_covers_the_range_and_depends_on_the_seed() {
        let mut a = Jitter::new(1);
        let mut b = Jitter::new(2);
        let xs: Vec<u32> = (0..1000).map(|_| a.next_u32()).collect();
        assert_ne!(xs[..4], (0..4).map(|_| b.next_u32()).collect::<Vec<_>>()[..]);
        assert!(xs.iter().any(|&x| x < u32::MAX / 4) && xs.iter().any(|&x| x > u32::MAX / 4 * 3));
    }
}

//! The lease between a local pool agent and its runners, which lets a runner outlive its agent long
//! enough to be adopted by the next one. The agent refreshes one file in its state directory every
//! [`REFRESH_EVERY`]; each runner looks at it as often and ends its session once no refresh has been
//! seen for the window (`EDGESHELL_POOL_ADOPT_WITHIN_SECS`). So an agent that crashes, is killed or
//! restarts for an upgrade ends no session if it (or another agent on the same state directory) is
//! back within the window, and one that never comes back leaves nothing running for longer.
//!
//! Kubernetes runners need no lease: their Jobs carry their own deadlines and any agent of the region
//! sees them through the API.

use crate::time::Timestamp;
use core::time::Duration;

/// How often the agent refreshes its lease, and how often a runner looks at it.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// How long runners wait for an agent by default (`EDGESHELL_POOL_ADOPT_WITHIN_SECS`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// The shortest window allowed: several refreshes, so one slow write never ends a session.
pub const MIN_WINDOW: Duration = Duration::from_secs(3);

/// A runner's view of its agent's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentLease {
    window: Duration,
    /// The latest refresh seen, never later than when it was seen.
    refreshed: Timestamp,
}

impl AgentLease {
    /// A lease held as of `now` (a runner is started by a live agent), lapsing after `window` without
    /// a refresh.
    pub fn new(window: Duration, now: Timestamp) -> AgentLease {
        AgentLease { window: window.max(MIN_WINDOW), refreshed: now }
    }

    /// One look at the lease: when it was last refreshed (`None`: the file is missing or unreadable,
    /// which is no refresh). Returns whether the lease is still held. A refresh dated in the future
    /// (clocks set back) counts as made `now`; an older refresh than one already seen changes nothing.
    pub fn observe(&mut self, refreshed: Option<Timestamp>, now: Timestamp) -> bool {
        if let Some(at) = refreshed {
            self.refreshed = self.refreshed.max(at.min(now));
        }
        self.held(now)
    }

    /// Whether the agent refreshed the lease within the window before `now`.
    pub fn held(&self, now: Timestamp) -> bool {
        now.since(self.refreshed) <= self.window
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn held_while_refreshed_and_lapses_a_window_after_the_last_refresh() {
        let mut lease = AgentLease::new(WINDOW, at(100));
        for t in 101..=130 {
            assert!(lease.observe(Some(at(t - 1)), at(t)), "refreshed every second: held at {t}");
        }
        // The agent stops at 129: the lease lapses at 139, whether the file stays or goes.
        assert!(lease.observe(Some(at(129)), at(139)));
        assert!(!lease.observe(Some(at(129)), at(140)));
        let mut gone = AgentLease::new(WINDOW, at(100));
        assert!(gone.observe(None, at(110)));
        assert!(!gone.observe(None, at(111)), "a missing file is no refresh");
    }

    #[test]
    fn a_new_agent_within_the_window_keeps_the_lease() {
        let mut lease = AgentLease::new(WINDOW, at(100));
        assert!(lease.observe(None, at(105)));
        assert!(lease.observe(Some(at(108)), at(109)), "the next agent refreshed the same file");
        assert!(lease.observe(None, at(118)));
        assert!(!lease.observe(None, at(119)));
        // Once lapsed, a late refresh holds it again: the runner decides to end at the first lapse.
        assert!(lease.observe(Some(at(119)), at(119)));
    }

    #[test]
    fn clock_oddities_never_extend_the_lease() {
        let mut lease = AgentLease::new(WINDOW, at(100));
        // A refresh dated an hour ahead counts as made now, not as an hour of credit.
        assert!(lease.observe(Some(at(3_700)), at(101)));
        assert!(lease.observe(None, at(111)));
        assert!(!lease.observe(None, at(112)));
        // An older refresh than one seen does not move the lease back.
        let mut lease = AgentLease::new(WINDOW, at(100));
        assert!(lease.observe(Some(at(105)), at(105)));
        assert!(lease.observe(Some(at(90)), at(115)));
        assert!(!lease.observe(Some(at(90)), at(116)));
    }

    #[test]
    fn the_window_has_a_floor() {
        let lease = AgentLease::new(Duration::ZERO, at(100));
        assert_eq!(lease.window(), MIN_WINDOW);
        assert!(lease.held(at(103)));
        assert!(!lease.held(at(104)));
    }
}

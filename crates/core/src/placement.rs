//! Region placement: which regions may take a new session, best first, and how to fail over.
//!
//! [`candidates`] is a pure ordering of the healthy regions: those whose last report had a free slot
//! first, then the user's hint, then measured RTT (regions within `rtt_tolerance` of each other count as
//! equally near and are ordered by free capacity). A region reported full stays a candidate, last: its
//! report is up to a heartbeat old, and its pool room, which knows its agents' load now, takes the start
//! or refuses it at once (a freed slot is never hidden for a heartbeat). Failover is "take the next one" ([`FailoverPlan`]); a region whose start request may
//! have reached the pool (a timeout) must be told to stop that session before the next region is tried,
//! so no runner is orphaned.

use crate::ids::RegionId;
use crate::time::Timestamp;
use core::time::Duration;

/// What the pool registry knows of one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionStatus {
    /// The region.
    pub region: RegionId,
    /// When its pool agent last reported in.
    pub last_heartbeat: Timestamp,
    /// Runners it can hold.
    pub capacity: u32,
    /// Runners it holds.
    pub load: u32,
    /// Draining regions take no new sessions.
    pub draining: bool,
}

/// Tunables of placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementPolicy {
    /// A region whose last heartbeat is older than this is out of placement.
    pub health_ttl: Duration,
    /// RTTs closer than this are treated as equal.
    pub rtt_tolerance: Duration,
}

impl PlacementPolicy {
    /// The defaults.
    pub const DEFAULT: PlacementPolicy =
        PlacementPolicy { health_ttl: Duration::from_secs(5), rtt_tolerance: Duration::from_millis(15) };
}

impl Default for PlacementPolicy {
    fn default() -> Self {
        PlacementPolicy::DEFAULT
    }
}

/// What the client told us about where it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientLocation<'a> {
    /// The region the user picked, if any.
    pub hint: Option<&'a RegionId>,
    /// RTTs the browser measured to each region's probe endpoint.
    pub rtts: &'a [(RegionId, Duration)],
}

/// Why no region could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Every region is stale, draining or full.
    #[error("no healthy region has capacity ({0} regions known)")]
    NoCapacity(usize),
    /// Every candidate was tried and failed.
    #[error("all {0} candidate regions failed to start a runner")]
    AllFailed(usize),
}

/// True when `r` may be offered a new session at `now`: heard from within the health TTL, not draining,
/// with capacity. Its reported load only orders it ([`candidates`]).
pub fn is_eligible(r: &RegionStatus, policy: &PlacementPolicy, now: Timestamp) -> bool {
    !r.draining && r.capacity > 0 && now.since(r.last_heartbeat) < policy.health_ttl
}

/// True when `r` is eligible and its last report had a free slot (the region list's `available`).
pub fn is_available(r: &RegionStatus, policy: &PlacementPolicy, now: Timestamp) -> bool {
    is_eligible(r, policy, now) && r.load < r.capacity
}

/// Eligible regions, best first.
pub fn candidates(
    regions: &[RegionStatus],
    client: ClientLocation<'_>,
    policy: &PlacementPolicy,
    now: Timestamp,
) -> Result<Candidates, PlacementError> {
    let tolerance = policy.rtt_tolerance.as_millis().max(1);
    let mut eligible: Vec<(bool, bool, u128, u64, &RegionId)> = regions
        .iter()
        .filter(|r| is_eligible(r, policy, now))
        .map(|r| {
            let reported_full = r.load >= r.capacity;
            let not_hinted = client.hint != Some(&r.region);
            let rtt = client.rtts.iter().find(|(id, _)| id == &r.region).map(|(_, d)| d.as_millis());
            let rtt_bucket = rtt.map_or(u128::MAX, |ms| ms / tolerance);
            // Utilization in parts per million, so fuller regions sort later.
            let used_ppm = u64::from(r.load) * 1_000_000 / u64::from(r.capacity.max(1));
            (reported_full, not_hinted, rtt_bucket, used_ppm, &r.region)
        })
        .collect();
    if eligible.is_empty() {
        return Err(PlacementError::NoCapacity(regions.len()));
    }
    eligible.sort();
    Ok(Candidates { order: eligible.into_iter().map(|(_, _, _, _, id)| id.clone()).collect(), next: 0 })
}

/// Candidate regions, best first. Iterating is failing over.
#[derive(Debug, Clone)]
pub struct Candidates {
    order: Vec<RegionId>,
    next: usize,
}

impl Candidates {
    /// All candidates, best first, whatever has been consumed.
    pub fn as_slice(&self) -> &[RegionId] {
        &self.order
    }
}

impl Iterator for Candidates {
    type Item = RegionId;
    fn next(&mut self) -> Option<RegionId> {
        let r = self.order.get(self.next).cloned();
        self.next += 1;
        r
    }
}

/// How one attempt to start a runner in a region ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The runner started.
    Started,
    /// Refused before anything started (connection refused, 4xx/5xx answer, overloaded).
    Refused,
    /// No answer in time: the runner may have started.
    TimedOut,
}

/// The next thing a minting request must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask this region to start the runner.
    Start(RegionId),
    /// Tell this region to stop the session's runner (it may exist), then ask for the next step again.
    Stop(RegionId),
    /// Done: the runner runs in this region.
    Placed(RegionId),
    /// Nothing worked; every region that may hold a runner has been told to stop.
    Failed(PlacementError),
}

/// Drives failover across candidates for one session mint.
#[derive(Debug, Clone)]
pub struct FailoverPlan {
    candidates: Candidates,
    tried: usize,
    pending_stop: Option<RegionId>,
    current: Option<RegionId>,
    placed: Option<RegionId>,
}

impl FailoverPlan {
    /// A plan over these candidates.
    pub fn new(candidates: Candidates) -> Self {
        FailoverPlan { candidates, tried: 0, pending_stop: None, current: None, placed: None }
    }

    /// What to do now.
    pub fn step(&mut self) -> Step {
        if let Some(region) = &self.placed {
            return Step::Placed(region.clone());
        }
        if let Some(region) = self.pending_stop.take() {
            return Step::Stop(region);
        }
        match self.candidates.next() {
            Some(region) => {
                self.tried += 1;
                self.current = Some(region.clone());
                Step::Start(region)
            }
            None => Step::Failed(PlacementError::AllFailed(self.tried)),
        }
    }

    /// Records how the last `Start` ended.
    pub fn record(&mut self, outcome: AttemptOutcome) {
        let Some(region) = self.current.take() else {
            return;
        };
        match outcome {
            AttemptOutcome::Started => self.placed = Some(region),
            AttemptOutcome::Refused => {}
            AttemptOutcome::TimedOut => self.pending_stop = Some(region),
        }
    }
}

/// Where each region's session rooms should be created at the edge: a Cloudflare location hint per
/// region (`weur`, `enam`, ...), so a room sits near its runner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationHints(Vec<(RegionId, String)>);

impl LocationHints {
    /// Parses `eu=weur,us=enam` (whitespace and a trailing comma allowed).
    pub fn parse(text: &str) -> Result<LocationHints, String> {
        let mut hints = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (region, hint) =
                pair.split_once('=').ok_or_else(|| format!("location hint {pair:?} is not region=hint"))?;
            let region = RegionId::new(region.trim()).map_err(|e| format!("location hint {pair:?}: {e}"))?;
            let hint = hint.trim();
            if hint.is_empty() || hint.len() > 16 || !hint.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(format!("location hint {hint:?} is not a location name (weur, enam, ...)"));
            }
            hints.push((region, hint.to_owned()));
        }
        Ok(LocationHints(hints))
    }

    /// The hint for `region`, if one is configured.
    pub fn hint(&self, region: &RegionId) -> Option<&str> {
        self.0.iter().find(|(r, _)| r == region).map(|(_, h)| h.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: &str, age_s: u64, load: u32, capacity: u32) -> RegionStatus {
        RegionStatus {
            region: RegionId::new(id).unwrap(),
            last_heartbeat: Timestamp::from_secs(100 - age_s),
            capacity,
            load,
            draining: false,
        }
    }

    fn rid(id: &str) -> RegionId {
        RegionId::new(id).unwrap()
    }

    fn check(regions: &[RegionStatus], hint: Option<&str>, rtts: &[(&str, u64)], expected: &[&str]) {
        let hint = hint.map(rid);
        let rtts: Vec<_> = rtts.iter().map(|(r, ms)| (rid(r), Duration::from_millis(*ms))).collect();
        let got: Vec<String> = candidates(
            regions,
            ClientLocation { hint: hint.as_ref(), rtts: &rtts },
            &PlacementPolicy::default(),
            Timestamp::from_secs(100),
        )
        .map(|c| c.map(|r| r.to_string()).collect())
        .unwrap_or_default();
        assert_eq!(got, expected);
    }

    #[test]
    fn ordering() {
        let regions = [region("eu", 1, 5, 10), region("us", 1, 1, 10), region("ap", 1, 0, 10)];
        // No information: least utilized first.
        check(&regions, None, &[], &["ap", "us", "eu"]);
        // RTT beats utilization; unknown RTT goes last.
        check(&regions, None, &[("eu", 20), ("us", 90)], &["eu", "us", "ap"]);
        // Within tolerance, utilization decides.
        check(&regions, None, &[("eu", 31), ("us", 32), ("ap", 200)], &["us", "eu", "ap"]);
        // The user's hint wins.
        check(&regions, Some("ap"), &[("eu", 20), ("ap", 300)], &["ap", "eu", "us"]);
    }

    #[test]
    fn unhealthy_regions_drop_out_and_full_ones_come_last() {
        let mut draining = region("dr", 1, 0, 10);
        draining.draining = true;
        let regions = [region("stale", 5, 0, 10), region("full", 1, 10, 10), draining, region("ok", 4, 9, 10)];
        // "full" was full a heartbeat ago: still offered, after every region with room, hint or not.
        check(&regions, Some("full"), &[], &["ok", "full"]);
        check(&regions[..3], None, &[], &["full"]);
        check(&[region("stale", 5, 0, 10), region("none", 1, 0, 0)], None, &[], &[]);
    }

    #[test]
    fn failover_stops_what_may_have_started() {
        let regions = [region("a", 1, 0, 10), region("b", 1, 1, 10), region("c", 1, 2, 10)];
        let c = candidates(&regions, ClientLocation::default(), &PlacementPolicy::default(), Timestamp::from_secs(100))
            .unwrap();
        let mut plan = FailoverPlan::new(c);
        assert_eq!(plan.step(), Step::Start(rid("a")));
        plan.record(AttemptOutcome::TimedOut);
        assert_eq!(plan.step(), Step::Stop(rid("a")));
        assert_eq!(plan.step(), Step::Start(rid("b")));
        plan.record(AttemptOutcome::Refused);
        assert_eq!(plan.step(), Step::Start(rid("c")));
        plan.record(AttemptOutcome::Started);
        assert_eq!(plan.step(), Step::Placed(rid("c")));
    }

    #[test]
    fn failover_exhausts() {
        let regions = [region("a", 1, 0, 10)];
        let c = candidates(&regions, ClientLocation::default(), &PlacementPolicy::default(), Timestamp::from_secs(100))
            .unwrap();
        let mut plan = FailoverPlan::new(c);
        assert_eq!(plan.step(), Step::Start(rid("a")));
        plan.record(AttemptOutcome::TimedOut);
        assert_eq!(plan.step(), Step::Stop(rid("a")));
        assert_eq!(plan.step(), Step::Failed(PlacementError::AllFailed(1)));
    }

    #[test]
    fn location_hints_parse_and_refuse_garbage() {
        let hints = LocationHints::parse(" eu=weur, us=enam ,").unwrap();
        assert_eq!(hints.hint(&RegionId::new("us").unwrap()), Some("enam"));
        assert_eq!(hints.hint(&RegionId::new("ap").unwrap()), None);
        assert_eq!(LocationHints::parse("").unwrap(), LocationHints::default());
        for bad in ["eu", "eu=WEUR", "eu=", "../x=weur", "eu=we ur"] {
            assert!(LocationHints::parse(bad).is_err(), "{bad}");
        }
    }
}

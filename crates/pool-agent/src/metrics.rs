//! The agent's Prometheus metrics on `prometheus-client`, rendered in the OpenMetrics text format at
//! `GET /metrics`: runners held, starts by result, start latency (histogram), runner failures,
//! rejected commands by reason, heartbeats by result, commands taken, the edge connection, and the
//! runners an agent found left by an earlier one (reaped or adopted). Every series carries the pool's
//! `region` and `backend`, and every series exists from the start (at 0), so a dashboard or an alert
//! on a rate sees it before its first event.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the start-latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The labels of every series: which pool.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Pool {
    region: String,
    backend: String,
}

/// How a start ended, for the `result` label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum StartResult {
    /// Started.
    Ok,
    /// The backend failed.
    Failed,
    /// Refused before trying (capacity, draining, duplicate, region).
    Refused,
}

/// [`StartResult`] as the label spells it.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Started {
    ok,
    failed,
    refused,
}

impl From<StartResult> for Started {
    fn from(result: StartResult) -> Started {
        match result {
            StartResult::Ok => Started::ok,
            StartResult::Failed => Started::failed,
            StartResult::Refused => Started::refused,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Start {
    #[prometheus(flatten)]
    pool: Pool,
    result: Started,
}

/// Why a command was refused, from its HTTP status.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Reason {
    unauthorized,
    forbidden,
    bad_command,
    keys_unavailable,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rejected {
    #[prometheus(flatten)]
    pool: Pool,
    reason: Reason,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Outcome {
    ok,
    failed,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Heartbeat {
    #[prometheus(flatten)]
    pool: Pool,
    result: Outcome,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Kind {
    start,
    stop,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Command {
    #[prometheus(flatten)]
    pool: Pool,
    kind: Kind,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The agent's metrics; shared by reference.
#[derive(Debug)]
pub struct Metrics {
    pool: Pool,
    registry: Registry,
    runners: Family<Pool, Gauge>,
    capacity: Family<Pool, Gauge>,
    starts: Family<Start, Counter>,
    start_seconds: Family<Pool, Histogram, fn() -> Histogram>,
    stops: Family<Pool, Counter>,
    failures: Family<Pool, Counter>,
    rejected: Family<Rejected, Counter>,
    heartbeats: Family<Heartbeat, Counter>,
    commands: Family<Command, Counter>,
    edge_connected: Family<Pool, Gauge>,
    edge_connects: Family<Pool, Counter>,
    reaped: Family<Pool, Counter>,
    adopted: Family<Pool, Counter>,
}

impl Metrics {
    /// The metrics of the pool in `region` on `backend` (`local` or `kubernetes`), every series at 0.
    pub fn new(region: &str, backend: &str) -> Metrics {
        let pool = Pool { region: region.to_owned(), backend: backend.to_owned() };
        let mut registry = Registry::default();
        let start_seconds = Family::<Pool, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let metrics = Metrics {
            pool,
            runners: Family::default(),
            capacity: Family::default(),
            starts: Family::default(),
            start_seconds,
            stops: Family::default(),
            failures: Family::default(),
            rejected: Family::default(),
            heartbeats: Family::default(),
            commands: Family::default(),
            edge_connected: Family::default(),
            edge_connects: Family::default(),
            reaped: Family::default(),
            adopted: Family::default(),
            registry: Registry::default(),
        };
        registry.register("edgeshell_pool_runners", "Runners held now", metrics.runners.clone());
        registry.register("edgeshell_pool_capacity", "Runners the pool can hold", metrics.capacity.clone());
        registry.register("edgeshell_pool_runner_starts", "Start commands by result", metrics.starts.clone());
        registry.register(
            "edgeshell_pool_runner_start_seconds",
            "From start command to runner started",
            metrics.start_seconds.clone(),
        );
        registry.register("edgeshell_pool_runner_stops", "Runners stopped on command", metrics.stops.clone());
        registry.register(
            "edgeshell_pool_runner_failures",
            "Runners that failed to start or ended abnormally",
            metrics.failures.clone(),
        );
        registry.register(
            "edgeshell_pool_commands_rejected",
            "Commands refused before acting, by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            "edgeshell_pool_heartbeats",
            "Heartbeats to the control plane by result",
            metrics.heartbeats.clone(),
        );
        registry.register(
            "edgeshell_pool_commands",
            "Verified commands taken from the pool room, by kind (a stop may come again until answered)",
            metrics.commands.clone(),
        );
        registry.register(
            "edgeshell_pool_edge_connected",
            "1 while the connection to the region's pool room at the edge is up",
            metrics.edge_connected.clone(),
        );
        registry.register(
            "edgeshell_pool_edge_connects",
            "Connections opened to the region's pool room",
            metrics.edge_connects.clone(),
        );
        registry.register(
            "edgeshell_pool_reaped",
            "Runners left by an earlier agent and removed",
            metrics.reaped.clone(),
        );
        registry.register(
            "edgeshell_pool_adopted",
            "Runners left by an earlier agent, still healthy and held again (their sessions carried on)",
            metrics.adopted.clone(),
        );
        let metrics = Metrics { registry, ..metrics };
        metrics.create_every_series();
        metrics
    }

    /// Every series at 0, so that each is exposed before its first event.
    fn create_every_series(&self) {
        let p = &self.pool;
        for family in [&self.runners, &self.capacity, &self.edge_connected] {
            let _ = family.get_or_create(p);
        }
        for family in [&self.stops, &self.failures, &self.edge_connects, &self.reaped, &self.adopted] {
            let _ = family.get_or_create(p);
        }
        let _ = self.start_seconds.get_or_create(p);
        for result in [Started::ok, Started::failed, Started::refused] {
            let _ = self.starts.get_or_create(&Start { pool: p.clone(), result });
        }
        for reason in [Reason::unauthorized, Reason::forbidden, Reason::bad_command, Reason::keys_unavailable] {
            let _ = self.rejected.get_or_create(&Rejected { pool: p.clone(), reason });
        }
        for result in [Outcome::ok, Outcome::failed] {
            let _ = self.heartbeats.get_or_create(&Heartbeat { pool: p.clone(), result });
        }
        for kind in [Kind::start, Kind::stop] {
            let _ = self.commands.get_or_create(&Command { pool: p.clone(), kind });
        }
    }

    /// A start attempt and, when it started, how long it took.
    pub fn start(&self, result: StartResult, seconds: Option<f64>) {
        self.starts.get_or_create(&Start { pool: self.pool.clone(), result: result.into() }).inc();
        if result == StartResult::Failed {
            self.failures.get_or_create(&self.pool).inc();
        }
        if let Some(s) = seconds {
            self.start_seconds.get_or_create(&self.pool).observe(s);
        }
    }

    /// A runner stopped on command.
    pub fn stopped(&self) {
        self.stops.get_or_create(&self.pool).inc();
    }

    /// A runner ended abnormally.
    pub fn runner_failed(&self) {
        self.failures.get_or_create(&self.pool).inc();
    }

    /// A command was refused with this HTTP status.
    pub fn rejected(&self, status: u16) {
        let reason = match status {
            401 => Reason::unauthorized,
            403 => Reason::forbidden,
            503 => Reason::keys_unavailable,
            _ => Reason::bad_command,
        };
        self.rejected.get_or_create(&Rejected { pool: self.pool.clone(), reason }).inc();
    }

    /// A heartbeat's outcome.
    pub fn heartbeat(&self, ok: bool) {
        let result = if ok { Outcome::ok } else { Outcome::failed };
        self.heartbeats.get_or_create(&Heartbeat { pool: self.pool.clone(), result }).inc();
    }

    /// A verified command taken from the pool room (a start, or a stop).
    pub fn command(&self, start: bool) {
        let kind = if start { Kind::start } else { Kind::stop };
        self.commands.get_or_create(&Command { pool: self.pool.clone(), kind }).inc();
    }

    /// The connection to the edge's pool room opened (`true`) or went down.
    pub fn edge_connected(&self, up: bool) {
        self.edge_connected.get_or_create(&self.pool).set(i64::from(up));
        if up {
            self.edge_connects.get_or_create(&self.pool).inc();
        }
    }

    /// Runners left by an earlier agent and removed.
    pub fn reaped(&self, n: usize) {
        self.reaped.get_or_create(&self.pool).inc_by(n as u64);
    }

    /// Runners left by an earlier agent and held again.
    pub fn adopted(&self, n: usize) {
        self.adopted.get_or_create(&self.pool).inc_by(n as u64);
    }

    /// The exposition text ([`CONTENT_TYPE`]); `runners` and `capacity` are the current gauges.
    pub fn render(&self, runners: usize, capacity: u32) -> String {
        self.runners.get_or_create(&self.pool).set(i64::try_from(runners).unwrap_or(i64::MAX));
        self.capacity.get_or_create(&self.pool).set(i64::from(capacity));
        let mut out = String::new();
        // Writing to a String cannot fail; the encoder only fails on its writer's errors.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_counters_a_cumulative_histogram_and_every_series_from_the_start() {
        let fresh = Metrics::new("eu", "local").render(0, 8);
        for expected in [
            "edgeshell_pool_adopted_total{region=\"eu\",backend=\"local\"} 0",
            "edgeshell_pool_edge_connected{region=\"eu\",backend=\"local\"} 0",
            "edgeshell_pool_commands_rejected_total{region=\"eu\",backend=\"local\",reason=\"keys_unavailable\"} 0",
            "edgeshell_pool_runner_start_seconds_count{region=\"eu\",backend=\"local\"} 0",
        ] {
            assert!(fresh.contains(expected), "missing {expected}\n{fresh}");
        }
        let m = Metrics::new("eu", "local");
        m.start(StartResult::Ok, Some(0.02));
        m.start(StartResult::Ok, Some(0.2));
        m.start(StartResult::Failed, None);
        m.rejected(401);
        m.edge_connected(true);
        let text = m.render(1, 8);
        for expected in [
            "# TYPE edgeshell_pool_runner_starts counter",
            "edgeshell_pool_runners{region=\"eu\",backend=\"local\"} 1",
            "edgeshell_pool_capacity{region=\"eu\",backend=\"local\"} 8",
            "edgeshell_pool_runner_starts_total{region=\"eu\",backend=\"local\",result=\"ok\"} 2",
            "edgeshell_pool_runner_starts_total{region=\"eu\",backend=\"local\",result=\"failed\"} 1",
            "edgeshell_pool_runner_failures_total{region=\"eu\",backend=\"local\"} 1",
            "edgeshell_pool_commands_rejected_total{region=\"eu\",backend=\"local\",reason=\"unauthorized\"} 1",
            "edgeshell_pool_edge_connected{region=\"eu\",backend=\"local\"} 1",
            "edgeshell_pool_edge_connects_total{region=\"eu\",backend=\"local\"} 1",
            "edgeshell_pool_runner_start_seconds_bucket{le=\"0.025\",region=\"eu\",backend=\"local\"} 1",
            "edgeshell_pool_runner_start_seconds_bucket{le=\"0.25\",region=\"eu\",backend=\"local\"} 2",
            "edgeshell_pool_runner_start_seconds_bucket{le=\"+Inf\",region=\"eu\",backend=\"local\"} 2",
            "edgeshell_pool_runner_start_seconds_count{region=\"eu\",backend=\"local\"} 2",
            "# EOF",
        ] {
            assert!(text.contains(expected), "missing {expected}\n{text}");
        }
    }
}

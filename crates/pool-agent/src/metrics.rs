//! The agent's Prometheus metrics, kept in atomics and rendered in the text exposition format at
//! `GET /metrics`: runners held, starts by result, start latency (histogram), runner failures,
//! rejected commands by reason, heartbeats by result, and the edge connection.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the start-latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Counters and gauges; shared by reference.
#[derive(Debug, Default)]
pub struct Metrics {
    starts_ok: AtomicU64,
    starts_failed: AtomicU64,
    starts_refused: AtomicU64,
    stops: AtomicU64,
    failures: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    rejected_unauthorized: AtomicU64,
    rejected_forbidden: AtomicU64,
    rejected_bad: AtomicU64,
    rejected_unavailable: AtomicU64,
    heartbeats_ok: AtomicU64,
    heartbeats_failed: AtomicU64,
    reaped: AtomicU64,
    adopted: AtomicU64,
    edge_connected: AtomicU64,
    edge_connects: AtomicU64,
    commands_start: AtomicU64,
    commands_stop: AtomicU64,
}

/// Why a start did not happen, for the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartResult {
    /// Started.
    Ok,
    /// The backend failed.
    Failed,
    /// Refused before trying (capacity, draining, duplicate, region).
    Refused,
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// A start attempt and, when it started, how long it took.
    pub fn start(&self, result: StartResult, seconds: Option<f64>) {
        inc(match result {
            StartResult::Ok => &self.starts_ok,
            StartResult::Failed => &self.starts_failed,
            StartResult::Refused => &self.starts_refused,
        });
        if result == StartResult::Failed {
            inc(&self.failures);
        }
        if let Some(s) = seconds {
            for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
                if s <= *bound {
                    inc(bucket);
                }
            }
            inc(&self.latency_count);
            self.latency_sum_micros.fetch_add((s * 1e6) as u64, Ordering::Relaxed);
        }
    }

    /// A runner stopped on command.
    pub fn stopped(&self) {
        inc(&self.stops);
    }

    /// A runner ended abnormally.
    pub fn runner_failed(&self) {
        inc(&self.failures);
    }

    /// A command was refused with this HTTP status.
    pub fn rejected(&self, status: u16) {
        inc(match status {
            401 => &self.rejected_unauthorized,
            403 => &self.rejected_forbidden,
            503 => &self.rejected_unavailable,
            _ => &self.rejected_bad,
        });
    }

    /// A heartbeat's outcome.
    pub fn heartbeat(&self, ok: bool) {
        inc(if ok { &self.heartbeats_ok } else { &self.heartbeats_failed });
    }

    /// A verified command taken from the pool room (a start, or a stop).
    pub fn command(&self, start: bool) {
        inc(if start { &self.commands_start } else { &self.commands_stop });
    }

    /// The connection to the edge's pool room opened (`true`) or went down.
    pub fn edge_connected(&self, up: bool) {
        self.edge_connected.store(u64::from(up), Ordering::Relaxed);
        if up {
            inc(&self.edge_connects);
        }
    }

    /// Runners left by an earlier agent and removed.
    pub fn reaped(&self, n: usize) {
        self.reaped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Runners left by an earlier agent and held again.
    pub fn adopted(&self, n: usize) {
        self.adopted.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The exposition text; `runners` and `capacity` are the current gauges.
    pub fn render(&self, region: &str, backend: &str, runners: usize, capacity: u32) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let labels = format!("region=\"{region}\",backend=\"{backend}\"");
        let mut line = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (extra, value) in samples {
                let sep = if extra.is_empty() { "" } else { "," };
                let _ = writeln!(out, "{name}{{{labels}{sep}{extra}}} {value}");
            }
        };
        line("edgeshell_pool_runners", "gauge", "Runners held now.", &[("", runners as u64)]);
        line("edgeshell_pool_capacity", "gauge", "Runners the pool can hold.", &[("", u64::from(capacity))]);
        line(
            "edgeshell_pool_runner_starts_total",
            "counter",
            "Start commands by result.",
            &[
                ("result=\"ok\"", get(&self.starts_ok)),
                ("result=\"failed\"", get(&self.starts_failed)),
                ("result=\"refused\"", get(&self.starts_refused)),
            ],
        );
        line("edgeshell_pool_runner_stops_total", "counter", "Runners stopped on command.", &[("", get(&self.stops))]);
        line(
            "edgeshell_pool_runner_failures_total",
            "counter",
            "Runners that failed to start or ended abnormally.",
            &[("", get(&self.failures))],
        );
        line(
            "edgeshell_pool_commands_rejected_total",
            "counter",
            "Commands refused before acting, by reason.",
            &[
                ("reason=\"unauthorized\"", get(&self.rejected_unauthorized)),
                ("reason=\"forbidden\"", get(&self.rejected_forbidden)),
                ("reason=\"bad_command\"", get(&self.rejected_bad)),
                ("reason=\"keys_unavailable\"", get(&self.rejected_unavailable)),
            ],
        );
        line(
            "edgeshell_pool_heartbeats_total",
            "counter",
            "Heartbeats to the control plane by result.",
            &[("result=\"ok\"", get(&self.heartbeats_ok)), ("result=\"failed\"", get(&self.heartbeats_failed))],
        );
        line(
            "edgeshell_pool_commands_total",
            "counter",
            "Verified commands taken from the pool room, by kind (a stop may come again until answered).",
            &[("kind=\"start\"", get(&self.commands_start)), ("kind=\"stop\"", get(&self.commands_stop))],
        );
        line(
            "edgeshell_pool_edge_connected",
            "gauge",
            "1 while the connection to the region's pool room at the edge is up.",
            &[("", get(&self.edge_connected))],
        );
        line(
            "edgeshell_pool_edge_connects_total",
            "counter",
            "Connections opened to the region's pool room.",
            &[("", get(&self.edge_connects))],
        );
        line(
            "edgeshell_pool_reaped_total",
            "counter",
            "Runners left by an earlier agent and removed.",
            &[("", get(&self.reaped))],
        );
        line(
            "edgeshell_pool_adopted_total",
            "counter",
            "Runners left by an earlier agent, still healthy and held again (their sessions carried on).",
            &[("", get(&self.adopted))],
        );
        let name = "edgeshell_pool_runner_start_seconds";
        let _ = writeln!(out, "# HELP {name} From start command to runner started.\n# TYPE {name} histogram");
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {}", get(bucket));
        }
        let count = get(&self.latency_count);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", get(&self.latency_sum_micros) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.start(StartResult::Ok, Some(0.02));
        m.start(StartResult::Ok, Some(0.2));
        m.start(StartResult::Failed, None);
        m.rejected(401);
        let text = m.render("eu", "local", 1, 8);
        for expected in [
            "edgeshell_pool_runners{region=\"eu\",backend=\"local\"} 1",
            "edgeshell_pool_runner_starts_total{region=\"eu\",backend=\"local\",result=\"ok\"} 2",
            "edgeshell_pool_runner_failures_total{region=\"eu\",backend=\"local\"} 1",
            "edgeshell_pool_commands_rejected_total{region=\"eu\",backend=\"local\",reason=\"unauthorized\"} 1",
            "edgeshell_pool_runner_start_seconds_bucket{region=\"eu\",backend=\"local\",le=\"0.025\"} 1",
            "edgeshell_pool_runner_start_seconds_bucket{region=\"eu\",backend=\"local\",le=\"0.25\"} 2",
            "edgeshell_pool_runner_start_seconds_bucket{region=\"eu\",backend=\"local\",le=\"+Inf\"} 2",
            "edgeshell_pool_runner_start_seconds_count{region=\"eu\",backend=\"local\"} 2",
        ] {
            assert!(text.contains(expected), "missing {expected}\n{text}");
        }
    }
}

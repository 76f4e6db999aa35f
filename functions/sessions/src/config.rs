//! The component's settings, from Spin variables, with the brief's defaults.

use core::time::Duration;
use edgeshell_core::placement::PlacementPolicy;
use edgeshell_core::quotas::QuotaPolicy;
use edgeshell_fn::reply::Failure;
use edgeshell_fn::request::{number_variable, variable};

/// Settings of minting.
pub(crate) struct Config {
    /// The edge's WebSocket origin (`wss://edge.example.com`); browsers attach and runners join there.
    pub(crate) edge_url: String,
    /// A session's hard deadline after its start.
    pub(crate) session_max: Duration,
    /// Per-user limits.
    pub(crate) quota: QuotaPolicy,
    /// Which regions count as healthy.
    pub(crate) placement: PlacementPolicy,
    /// How long a pool may take to accept a start.
    pub(crate) pool_timeout: Duration,
    /// How long an attach token lives (clamped by `Issuer::attach_for`).
    pub(crate) attach_token_secs: u64,
}

impl Config {
    pub(crate) fn load() -> Result<Config, Failure> {
        let edge_url = variable("edge_url")?.trim_end_matches('/').to_owned();
        if !(edge_url.starts_with("ws://") || edge_url.starts_with("wss://")) {
            return Err(Failure::internal(format!("edge_url must be ws:// or wss://, not {edge_url:?}")));
        }
        let defaults = (QuotaPolicy::default(), PlacementPolicy::default());
        let secs = |name, default: Duration| number_variable(name, default.as_secs()).map(Duration::from_secs);
        Ok(Config {
            edge_url,
            session_max: secs("session_max_secs", Duration::from_secs(600))?,
            quota: QuotaPolicy {
                max_live_sessions: u32::try_from(number_variable("max_live_sessions", 5)?).unwrap_or(u32::MAX),
                mints_per_window: u32::try_from(number_variable("mints_per_minute", 20)?).unwrap_or(u32::MAX),
                window: Duration::from_secs(60),
            },
            placement: PlacementPolicy {
                health_ttl: secs("pool_health_ttl_secs", defaults.1.health_ttl)?,
                ..defaults.1
            },
            pool_timeout: Duration::from_millis(number_variable("pool_timeout_ms", 3000)?),
            attach_token_secs: number_variable("attach_token_secs", 600)?,
        })
    }
}

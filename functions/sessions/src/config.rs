//! The component's settings, from Spin variables (the core's catalogue holds their defaults).

use core::time::Duration;
use edgeshell_core::lifetime::LifetimePolicy;
use edgeshell_core::placement::PlacementPolicy;
use edgeshell_core::quotas::QuotaPolicy;
use edgeshell_fn::reply::ApiError;
use edgeshell_fn::settings;

/// Settings of minting.
pub(crate) struct Config {
    /// The edge's WebSocket origin (`wss://edge.example.com`); browsers attach and runners join there.
    pub(crate) edge_url: String,
    /// Session lifetimes: the default, the longest, the detached and idle rules.
    pub(crate) lifetime: LifetimePolicy,
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
    pub(crate) fn load() -> Result<Config, ApiError> {
        settings::read(|s| {
            let edge_url = s.required("edge_url")?.trim_end_matches('/').to_owned();
            if !(edge_url.starts_with("ws://") || edge_url.starts_with("wss://")) {
                return Err(s.invalid("edge_url", format!("must be ws:// or wss://, not {edge_url:?}")));
            }
            let idle = s.secs("session_idle_secs")?;
            let lifetime = LifetimePolicy {
                default_lifetime: s.secs("session_lifetime_secs")?,
                max_lifetime: s.secs("session_max_lifetime_secs")?,
                detached: s.parse::<u64>("session_detached_secs")?.map(Duration::from_secs),
                idle: (!idle.is_zero()).then_some(idle),
            };
            lifetime.check().map_err(|why| s.invalid("session_lifetime_secs", why))?;
            Ok(Config {
                edge_url,
                lifetime,
                quota: QuotaPolicy {
                    max_live_sessions: s.number("max_live_sessions")?,
                    mints_per_minute: s.number("mints_per_minute")?,
                },
                placement: PlacementPolicy { health_ttl: s.secs("pool_health_ttl_secs")?, ..PlacementPolicy::DEFAULT },
                pool_timeout: s.millis("pool_timeout_ms")?,
                attach_token_secs: s.number("attach_token_secs")?,
            })
        })
    }
}

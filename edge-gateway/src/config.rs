//! The gateway's configuration, from the Worker's vars and secrets: the core's catalogue of the edge's
//! settings (`edgeshell_core::settings::EDGE`, listed in docs/configuration.md and `wrangler.toml`), read
//! with the core's reader. Every value is checked when read; a missing or malformed one is a clear
//! error, never a default that silently lets tokens through.

use edgeshell_core::ids::RegionId;
use edgeshell_core::issue::EDGE_AUDIENCE;
use edgeshell_core::jwks::cache::CachePolicy;
use edgeshell_core::placement::LocationHints;
use edgeshell_core::room::RoomConfig;
use edgeshell_core::settings::{Program, Reader, SettingsError};
use edgeshell_core::tokens::{ValidationOptions, Validator};
use edgeshell_core::web_policy::PageOrigins;
use worker::Env;

/// What the Worker and the room need from the environment.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The control plane's `iss`.
    pub token_issuer: String,
    /// Where the control plane publishes its keys.
    pub jwks_url: String,
    /// The control plane's base URL, for its internal routes.
    pub control_url: String,
    /// Cloudflare location hints by region (`eu=weur,us=enam`).
    pub location_hints: LocationHints,
    /// The rooms' tunables.
    pub room: RoomConfig,
    /// Whether rooms accept sockets with the hibernation API.
    pub hibernation: bool,
    /// The page origins that may attach besides the edge's own.
    pub page_origins: PageOrigins,
    /// How the isolate caches the control plane's keys.
    pub jwks_policy: CachePolicy,
    /// How often a pool room checks its connected agents' keys again.
    pub pool_key_recheck: std::time::Duration,
}

/// A configuration value that is missing or malformed.
pub type ConfigError = SettingsError;

/// A var, else a secret, of the Worker's environment.
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).or_else(|| env.secret(name).ok().map(|s| s.to_string()))
}

/// A service the edge sends its internal key to or takes its keys from: https, or http to this machine
/// (the core's `service_url` rule).
fn http_url(settings: &Reader<'_>, name: &str) -> Result<String, ConfigError> {
    settings.required(name)?;
    let value = settings.service_url(name)?.unwrap_or_default();
    worker::Url::parse(&value).map_err(|e| settings.invalid(name, format!("{value:?}: {e}")))?;
    Ok(value)
}

impl EdgeConfig {
    /// Reads and checks the configuration (the core's catalogue of the edge's settings).
    pub fn from_env(env: &Env) -> Result<EdgeConfig, ConfigError> {
        let get = |name: &str| lookup(env, name);
        let settings = Reader::new(Program::Edge, &get);
        let room = RoomConfig {
            runner_grace: settings.millis("ROOM_RUNNER_GRACE_MS")?,
            join_timeout: settings.secs("ROOM_JOIN_TIMEOUT_SECS")?,
            resume_window: settings.secs("ROOM_RESUME_WINDOW_SECS")?,
            tombstone: settings.secs("ROOM_TOMBSTONE_SECS")?,
            ..RoomConfig::DEFAULT
        };
        let hints = settings.text("REGION_LOCATION_HINTS")?.unwrap_or_default();
        Ok(EdgeConfig {
            token_issuer: settings.required("TOKEN_ISSUER")?,
            jwks_url: http_url(&settings, "JWKS_URL")?,
            control_url: http_url(&settings, "CONTROL_URL")?,
            location_hints: LocationHints::parse(&hints)
                .map_err(|e| settings.invalid("REGION_LOCATION_HINTS", e.to_string()))?,
            room,
            hibernation: settings.choice("ROOM_HIBERNATION", &["on", "off"])? == 0,
            page_origins: PageOrigins::parse(&settings.text("PAGE_ORIGINS")?.unwrap_or_default())
                .map_err(|e| settings.invalid("PAGE_ORIGINS", e))?,
            jwks_policy: CachePolicy {
                refresh_after: settings.secs("JWKS_REFRESH_SECS")?,
                serve_stale: settings.choice("JWKS_SERVE_STALE", &["on", "off"])? == 0,
                ..CachePolicy::DEFAULT
            },
            pool_key_recheck: settings.secs("POOL_KEY_RECHECK_SECS")?,
        })
    }

    /// The validator of tokens addressed to the edge.
    pub fn validator(&self) -> Validator {
        Validator::new(ValidationOptions::new(self.token_issuer.clone(), EDGE_AUDIENCE))
    }

    /// The location hint for a region's room, if one is configured.
    pub fn location_hint(&self, region: &RegionId) -> Option<&str> {
        self.location_hints.hint(region)
    }
}

/// The bearer key of the control plane's internal routes (a secret).
pub fn internal_key(env: &Env) -> Result<String, ConfigError> {
    let get = |name: &str| lookup(env, name);
    Reader::new(Program::Edge, &get).bearer_key("INTERNAL_API_KEY")
}

/// Reads other settings of the edge's catalogue (the page's sign-in) with the core's reader.
pub fn read<T>(env: &Env, read: impl FnOnce(&Reader<'_>) -> Result<T, ConfigError>) -> Result<T, ConfigError> {
    let get = |name: &str| lookup(env, name);
    read(&Reader::new(Program::Edge, &get))
}

//! The gateway's configuration, from the Worker's vars and secrets (documented in `wrangler.toml`).
//! Every value is checked when read; a missing or malformed one is a clear error, never a default that
//! silently lets tokens through.

use core::time::Duration;
use edgeshell_core::ids::RegionId;
use edgeshell_core::issue::EDGE_AUDIENCE;
use edgeshell_core::placement::LocationHints;
use edgeshell_core::room::RoomConfig;
use edgeshell_core::tokens::{ValidationOptions, Validator};
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
}

/// A configuration value that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "configuration: {}", self.0)
    }
}

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string()).filter(|v| !v.trim().is_empty())
}

fn required(env: &Env, name: &str) -> Result<String, ConfigError> {
    var(env, name).ok_or_else(|| ConfigError(format!("{name} is not set")))
}

fn number(env: &Env, name: &str, default: u64) -> Result<u64, ConfigError> {
    match var(env, name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError(format!("{name}={v:?} is not a whole number"))),
    }
}

fn http_url(name: &str, value: String) -> Result<String, ConfigError> {
    let parsed = worker::Url::parse(&value).map_err(|e| ConfigError(format!("{name}={value:?}: {e}")))?;
    match parsed.scheme() {
        "https" | "http" => Ok(value.trim_end_matches('/').to_owned()),
        other => Err(ConfigError(format!("{name} must be an http(s) URL, not {other}:"))),
    }
}

impl EdgeConfig {
    /// Reads and checks the configuration.
    pub fn from_env(env: &Env) -> Result<EdgeConfig, ConfigError> {
        let defaults = RoomConfig::default();
        let secs = |name: &str, default: Duration| number(env, name, default.as_secs()).map(Duration::from_secs);
        let room = RoomConfig {
            runner_grace: Duration::from_millis(number(
                env,
                "ROOM_RUNNER_GRACE_MS",
                defaults.runner_grace.as_millis() as u64,
            )?),
            join_timeout: secs("ROOM_JOIN_TIMEOUT_SECS", defaults.join_timeout)?,
            resume_window: secs("ROOM_RESUME_WINDOW_SECS", defaults.resume_window)?,
            idle_timeout: secs("ROOM_IDLE_TIMEOUT_SECS", defaults.idle_timeout)?,
            max_duration: secs("ROOM_MAX_DURATION_SECS", defaults.max_duration)?,
            ..defaults
        };
        let hibernation = match var(env, "ROOM_HIBERNATION").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(ConfigError(format!("ROOM_HIBERNATION={other:?} is neither on nor off"))),
        };
        Ok(EdgeConfig {
            token_issuer: required(env, "TOKEN_ISSUER")?,
            jwks_url: http_url("JWKS_URL", required(env, "JWKS_URL")?)?,
            control_url: http_url("CONTROL_URL", required(env, "CONTROL_URL")?)?,
            location_hints: LocationHints::parse(&var(env, "REGION_LOCATION_HINTS").unwrap_or_default())
                .map_err(|e| ConfigError(format!("REGION_LOCATION_HINTS: {e}")))?,
            room,
            hibernation,
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
    env.secret("INTERNAL_API_KEY")
        .ok()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConfigError("the secret INTERNAL_API_KEY is not set".into()))
}

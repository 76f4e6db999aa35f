//! The wire contract between the control plane and a region's pool agent, and the edge paths a session
//! uses. Both sides build and parse these types; nothing else defines the shapes.
//!
//! Pool commands travel as `POST` requests whose body is a [`PoolCommand`] and whose
//! `Authorization: Bearer` token is a `pool:command` token signed by the control plane for that body
//! (see [`crate::issue::Issuer::pool_command`]). Pool agents report themselves with a [`Heartbeat`],
//! authenticated with their pool API key.

use crate::api_error::{ApiError, ErrorCode};
use crate::ids::{RegionId, SessionId};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// Where a pool agent takes start commands.
pub const START_PATH: &str = "/v1/runners";

/// Where a pool agent takes the stop command of one session.
pub fn stop_path(session: &SessionId) -> String {
    format!("/v1/runners/{session}/stop")
}

/// The edge path a browser attaches to (WebSocket; token in `Sec-WebSocket-Protocol`).
pub fn attach_path(session: &SessionId) -> String {
    format!("/sessions/{session}/attach")
}

/// The edge path a runner joins its session at (WebSocket).
pub fn join_path(session: &SessionId) -> String {
    format!("/sessions/{session}/join")
}

/// A signed command to a pool agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PoolCommand {
    /// Start the runner of a session.
    Start(StartRunner),
    /// Stop a session's runner (idempotent: stopping an unknown session succeeds).
    Stop {
        /// The session.
        session_id: SessionId,
        /// Why, for logs.
        reason: String,
    },
}

impl PoolCommand {
    /// The session the command is about (must equal the token's `sid`).
    pub fn session(&self) -> &SessionId {
        match self {
            PoolCommand::Start(s) => &s.session_id,
            PoolCommand::Stop { session_id, .. } => session_id,
        }
    }
}

/// What a runner needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRunner {
    /// The session.
    pub session_id: SessionId,
    /// The region the session was placed in (must be the agent's own).
    pub region: RegionId,
    /// The URL the runner dials (`wss://edge/sessions/{id}/join`).
    pub join_url: String,
    /// The runner's join token.
    pub join_token: Secret,
    /// The hard deadline, seconds since the epoch: the runner is killed then.
    pub deadline: u64,
}

/// A pool agent's answer to a start command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The session.
    pub session_id: SessionId,
    /// The agent's name for the runner (a process id or a Job name), for logs.
    pub runner: String,
}

/// A pool agent's registration and heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The agent's region; must be the region its API key was issued for.
    pub region: RegionId,
    /// Where the control plane reaches the agent (`http(s)://host[:port]`, no path).
    pub endpoint: String,
    /// Runners the agent can hold.
    pub capacity: u32,
    /// Runners it holds now.
    pub load: u32,
    /// True while the agent shuts down: no new sessions.
    #[serde(default)]
    pub draining: bool,
    /// The sessions whose runners the agent holds; the answer names those to stop.
    #[serde(default)]
    pub runners: Vec<SessionId>,
}

/// The control plane's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// Runners whose session ended or is unknown: the agent stops them (orphan reaping).
    pub stop: Vec<SessionId>,
    /// When to send the next heartbeat, in milliseconds.
    pub next_heartbeat_ms: u64,
}

/// Pool API keys are `esp_<key id>_<secret>`; the key id names the key in logs and revocations.
pub const API_KEY_PREFIX: &str = "esp_";

/// Builds an API key from its id and 32 random bytes (the caller's randomness).
pub fn api_key(key_id: &str, secret: [u8; 32]) -> String {
    format!("{API_KEY_PREFIX}{key_id}_{}", crate::base64url::encode(&secret))
}

/// The SHA-256 under which a presented key is stored and looked up; the key itself is never stored.
pub fn api_key_hash(key: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes()).into()
}

/// Why a pool endpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint must be http(s)://host[:port] with no path, query or credentials: {0}")]
pub struct BadEndpoint(pub String);

/// Checks an advertised endpoint: an origin only, so paths are appended safely.
pub fn check_endpoint(endpoint: &str) -> Result<(), BadEndpoint> {
    let bad = || BadEndpoint(endpoint.chars().take(200).collect());
    let rest = endpoint.strip_prefix("https://").or_else(|| endpoint.strip_prefix("http://")).ok_or_else(bad)?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// What a pool holds when a start command arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSlots<'a> {
    /// The pool's region.
    pub region: &'a RegionId,
    /// Runners it can hold.
    pub capacity: u32,
    /// Runners it holds or is starting.
    pub held: u32,
    /// True while it shuts down.
    pub draining: bool,
    /// True when the command's session already has a runner here (or one starting).
    pub has_session: bool,
}

/// Why a pool refuses a (verified) start command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartRefusal {
    /// The command is for another region.
    #[error("this pool serves region {ours}, not {asked}")]
    WrongRegion {
        /// The pool's.
        ours: RegionId,
        /// The command's.
        asked: RegionId,
    },
    /// The pool is shutting down.
    #[error("the pool is draining")]
    Draining,
    /// The deadline is not in the future.
    #[error("the session's deadline has passed")]
    DeadlinePassed,
    /// The session has a runner here already.
    #[error("session {0} already has a runner in this pool")]
    AlreadyRunning(SessionId),
    /// Every slot is taken.
    #[error("the pool is at capacity ({0} runners)")]
    AtCapacity(u32),
}

impl StartRefusal {
    /// The answer for it, from the one error table.
    pub fn to_api_error(&self) -> ApiError {
        let code = match self {
            StartRefusal::WrongRegion { .. } => ErrorCode::WrongRegion,
            StartRefusal::Draining => ErrorCode::Draining,
            StartRefusal::DeadlinePassed => ErrorCode::DeadlinePassed,
            StartRefusal::AlreadyRunning(_) => ErrorCode::AlreadyRunning,
            StartRefusal::AtCapacity(_) => ErrorCode::AtCapacity,
        };
        ApiError::new(code, self.to_string())
    }
}

/// Decides a start: the refusal, or the runner's deadline (the command's, clamped to
/// `max_runtime_secs` from `now_secs`).
pub fn admit_start(
    start: &StartRunner,
    pool: PoolSlots<'_>,
    max_runtime_secs: u64,
    now_secs: u64,
) -> Result<u64, StartRefusal> {
    if &start.region != pool.region {
        return Err(StartRefusal::WrongRegion { ours: pool.region.clone(), asked: start.region.clone() });
    }
    if pool.draining {
        return Err(StartRefusal::Draining);
    }
    if start.deadline <= now_secs {
        return Err(StartRefusal::DeadlinePassed);
    }
    if pool.has_session {
        return Err(StartRefusal::AlreadyRunning(start.session_id.clone()));
    }
    if pool.held >= pool.capacity {
        return Err(StartRefusal::AtCapacity(pool.capacity));
    }
    Ok(start.deadline.min(now_secs.saturating_add(max_runtime_secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_name_their_session() {
        let sid = SessionId::new("s_abc").unwrap();
        let start = PoolCommand::Start(StartRunner {
            session_id: sid.clone(),
            region: RegionId::new("eu").unwrap(),
            join_url: "wss://edge.test/sessions/s_abc/join".into(),
            join_token: "t".into(),
            deadline: 1,
        });
        let json = serde_json::to_string(&start).unwrap();
        assert!(json.starts_with(r#"{"action":"start","session_id":"s_abc""#), "{json}");
        assert_eq!(serde_json::from_str::<PoolCommand>(&json).unwrap(), start);
        let stop: PoolCommand = serde_json::from_str(r#"{"action":"stop","session_id":"s_abc","reason":"x"}"#).unwrap();
        assert_eq!(stop.session(), &sid);
        assert!(serde_json::from_str::<PoolCommand>(r#"{"action":"stop","session_id":"s_abc","reason":"x","y":1}"#)
            .is_err());
        assert_eq!(stop_path(&sid), "/v1/runners/s_abc/stop");
    }

    #[test]
    fn starts_are_admitted_in_order_and_deadlines_clamped() {
        let eu = RegionId::new("eu").unwrap();
        let start = |deadline| StartRunner {
            session_id: SessionId::new("s_1").unwrap(),
            region: eu.clone(),
            join_url: "wss://e/sessions/s_1/join".into(),
            join_token: "t".into(),
            deadline,
        };
        let pool = PoolSlots { region: &eu, capacity: 2, held: 1, draining: false, has_session: false };
        let check = |s: &StartRunner, p: PoolSlots<'_>, expected: Result<u64, StartRefusal>| {
            assert_eq!(admit_start(s, p, 3600, 1000), expected, "{p:?}");
        };
        check(&start(2000), pool, Ok(2000));
        check(&start(999_999), pool, Ok(4600));
        check(&start(1000), pool, Err(StartRefusal::DeadlinePassed));
        check(&start(2000), PoolSlots { held: 2, ..pool }, Err(StartRefusal::AtCapacity(2)));
        check(
            &start(2000),
            PoolSlots { has_session: true, held: 2, ..pool },
            Err(StartRefusal::AlreadyRunning(SessionId::new("s_1").unwrap())),
        );
        check(&start(2000), PoolSlots { draining: true, ..pool }, Err(StartRefusal::Draining));
        let us = RegionId::new("us").unwrap();
        let wrong = StartRefusal::WrongRegion { ours: us.clone(), asked: eu.clone() };
        check(&start(2000), PoolSlots { region: &us, ..pool }, Err(wrong));
    }

    #[test]
    fn api_keys_are_hashed_whole() {
        let key = api_key("k1", [7; 32]);
        assert!(key.starts_with("esp_k1_") && key.len() == 7 + 43, "{key}");
        assert_ne!(api_key_hash(&key), api_key_hash(&api_key("k1", [8; 32])));
    }

    #[test]
    fn endpoints() {
        for ok in ["http://127.0.0.1:7001", "https://pool.eu.example.com", "https://pool-1.example.com:8443"] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "http://x/path",
            "http://user@x",
            "http://x?q",
            "http://x:0",
            "http://x:99999",
            "127.0.0.1:80",
            "http://x#f",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}

//! The wire contract between the control plane, the edge's pool rooms and the pool agents, and the edge
//! paths a session uses. Every side builds and parses these types; nothing else defines the shapes.
//!
//! Pools dial out: each agent holds one WebSocket to its region's pool room at the edge
//! ([`pool_connect_path`], its pool key as `Bearer`), says [`AgentMessage::Hello`], reports its load
//! every [`REPORT_EVERY`] and answers the [`RoomMessage::Command`]s it is sent. The control plane submits
//! a command with one request to the edge ([`pool_commands_path`], a [`CommandRequest`]) and gets the
//! agent's answer or why there is none. A command's body is a [`PoolCommand`] and its token a
//! `pool:command` token signed by the control plane for that exact body (see
//! [`crate::issue::Issuer::pool_command`]): the room and the agent both verify it. Agents also report
//! to the control plane with a [`Heartbeat`] (placement across regions, orphan stops), authenticated
//! with the same pool key.

use crate::api_error::{ApiError, ErrorCode};
use crate::ids::{RegionId, SessionId};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};

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
    /// The session was extended: its runner's new deadline (seconds since the epoch). A deadline
    /// earlier than the runner's is ignored; a session without a runner here is not found.
    Extend {
        /// The session.
        session_id: SessionId,
        /// The new deadline.
        deadline: u64,
    },
}

impl PoolCommand {
    /// The session the command is about (must equal the token's `sid`).
    pub fn session(&self) -> &SessionId {
        match self {
            PoolCommand::Start(s) => &s.session_id,
            PoolCommand::Stop { session_id, .. } | PoolCommand::Extend { session_id, .. } => session_id,
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
    /// The runner's `artifact:put` token, for `edgeshell-files` and the outbox (`crate::files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_token: Option<Secret>,
    /// The hard deadline, seconds since the epoch: the runner is killed then.
    pub deadline: u64,
    /// The template to run (the agent's catalogue, [`crate::templates`]).
    #[serde(default = "default_template")]
    pub template: String,
    /// Variables the user set, each one the template allows (checked again by the agent).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// A repository to clone into the work directory first (checked again by the agent).
    #[serde(default)]
    pub repo: Option<crate::repo::RepoRequest>,
}

fn default_template() -> String {
    crate::templates::DEFAULT_TEMPLATE.to_owned()
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
    /// The agent's name, unique in its region ([`check_agent_name`]); a region may have several agents.
    pub agent: String,
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
    /// The templates the agent offers (the same for every agent of a region).
    #[serde(default)]
    pub templates: Vec<crate::templates::TemplateOffer>,
}

/// The control plane's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// Runners whose session ended or is unknown: the agent stops them (orphan reaping).
    pub stop: Vec<SessionId>,
    /// When to send the next heartbeat, in milliseconds.
    pub next_heartbeat_ms: u64,
}

/// Where a pool agent starting a runner fetches the values of the secrets its template takes from the
/// session's owner (`POST`, the pool key as `Bearer`, a [`PoolSecretsRequest`]; a [`PoolSecrets`]).
pub const POOL_SECRETS_PATH: &str = "/api/pools/secrets";

/// A pool agent's request for a session's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSecretsRequest {
    /// The session being started (of the key's region, starting or running).
    pub session_id: SessionId,
    /// The names the session's template takes.
    pub names: Vec<String>,
}

impl PoolSecretsRequest {
    /// Checks the names: each a secret's name, at most as many as a template may take.
    pub fn check(&self) -> Result<(), String> {
        if self.names.len() > crate::templates::MAX_ENV_VARS {
            return Err(format!("at most {} names", crate::templates::MAX_ENV_VARS));
        }
        self.names.iter().try_for_each(|n| crate::vault::check_secret_name(n))
    }
}

/// The values of those of the owner's secrets that exist (a name without a secret is left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSecrets {
    /// By name.
    pub env: std::collections::BTreeMap<String, Secret>,
}

/// Where a pool agent dials out to its region's pool room (WebSocket; `Authorization: Bearer <pool
/// key>`, the agent's name in [`AGENT_HEADER`]).
pub fn pool_connect_path(region: &RegionId) -> String {
    format!("/pools/{region}/connect")
}

/// Where the control plane submits a command to a region's pool room (`POST`, internal key; body a
/// [`CommandRequest`]).
pub fn pool_commands_path(region: &RegionId) -> String {
    format!("/internal/pools/{region}/commands")
}

/// The header naming the connecting agent.
pub const AGENT_HEADER: &str = "x-edgeshell-agent";

/// How often a connected agent reports its load (its liveness on the socket).
pub const REPORT_EVERY: core::time::Duration = core::time::Duration::from_secs(2);

/// The most runners one report may list (an agent holds a few hundred at most).
pub const MAX_REPORTED_RUNNERS: usize = 10_000;

/// Checks an agent's name: 1 to 63 characters of `a-z`, `0-9`, `-`, `.`, `_`, starting with a letter
/// or digit (a Kubernetes pod name fits).
pub fn check_agent_name(name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "agent names are 1-63 characters of a-z, 0-9, '-', '.', '_', starting with a letter or digit: {:?}",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// What the control plane sends the edge to have a region's agent carry out a command.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// The `pool:command` token for `body`.
    pub token: Secret,
    /// The [`PoolCommand`] as JSON, byte for byte as signed.
    pub body: String,
    /// How long to wait for the agent's answer, in milliseconds.
    pub wait_ms: u64,
}

impl core::fmt::Debug for CommandRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The body of a start carries the runner's join token.
        f.debug_struct("CommandRequest")
            .field("token", &self.token)
            .field("body_bytes", &self.body.len())
            .field("wait_ms", &self.wait_ms)
            .finish()
    }
}

/// The longest a submitter may wait for an agent's answer.
pub const MAX_COMMAND_WAIT_MS: u64 = 30_000;

/// What an agent tells its pool room about itself: in its hello, then every [`REPORT_EVERY`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    /// Runners it can hold.
    pub capacity: u32,
    /// Runners it holds or is starting.
    pub load: u32,
    /// True while it shuts down: no new sessions.
    #[serde(default)]
    pub draining: bool,
    /// The sessions whose runners it holds.
    #[serde(default)]
    pub runners: Vec<SessionId>,
}

/// A message from an agent to its pool room (JSON text frames).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentMessage {
    /// First on every connection: what it holds (runners it kept across a restart included).
    Hello(AgentReport),
    /// Every [`REPORT_EVERY`]: its load, and that it is alive.
    Status(AgentReport),
    /// Its answer to a command.
    Answer {
        /// The command's id.
        id: u64,
        /// The HTTP-style status: 201 started, 200 stopped, else the error table's.
        status: u16,
        /// The JSON body: [`Started`], a stop's confirmation, or the core's error shape.
        body: String,
    },
}

/// A message from a pool room to an agent (JSON text frames).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoomMessage {
    /// Carry this command out and answer with its id.
    Command {
        /// The command's id in the room's ledger.
        id: u64,
        /// The `pool:command` token (the agent verifies it, as it would any command).
        token: Secret,
        /// The [`PoolCommand`] as JSON, byte for byte as signed.
        body: String,
    },
}

impl core::fmt::Debug for RoomMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RoomMessage::Command { id, token, body } => f
                .debug_struct("Command")
                .field("id", id)
                .field("token", token)
                .field("body_bytes", &body.len())
                .finish(),
        }
    }
}

/// Pool API keys are `esp_<key id>_<secret>`; the key id names the key in logs and revocations.
pub const API_KEY_PREFIX: &str = "esp_";

/// Whether `key` has a pool key's shape (`esp_<id>_<43 base64url characters>`): anything else is refused
/// before it costs a lookup.
pub fn is_api_key_shaped(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(API_KEY_PREFIX) else { return false };
    let Some((id, secret)) = rest.split_once('_') else { return false };
    let id_ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let secret_ok = secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    id_ok && secret_ok
}

/// Builds an API key from its id and 32 random bytes (the caller's randomness).
pub fn api_key(key_id: &str, secret: [u8; 32]) -> String {
    format!("{API_KEY_PREFIX}{key_id}_{}", crate::base64url::encode(&secret))
}

/// The SHA-256 under which a presented key is stored and looked up; the key itself is never stored.
pub fn api_key_hash(key: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes()).into()
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
    /// The deadline lies beyond the pool's ceiling on a runner's life.
    #[error("this pool runs a session for at most {max_secs} s")]
    BeyondRuntime {
        /// The ceiling.
        max_secs: u64,
    },
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
            StartRefusal::BeyondRuntime { .. } => ErrorCode::BeyondRuntime,
        };
        ApiError::new(code, self.to_string())
    }
}

/// Decides a start: the refusal, or the runner's deadline (the command's: one beyond
/// `max_runtime_secs` from `now_secs` is refused, never cut, so the pool keeps the deadline every
/// other tier keeps).
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
    within_runtime(start.deadline, now_secs, max_runtime_secs)
}

/// Decides an extension of a runner started at `started_secs`: the new deadline, unless it lies
/// beyond the pool's ceiling on a runner's life.
pub fn admit_extend(deadline: u64, started_secs: u64, max_runtime_secs: u64) -> Result<u64, StartRefusal> {
    within_runtime(deadline, started_secs, max_runtime_secs)
}

fn within_runtime(deadline: u64, from_secs: u64, max_runtime_secs: u64) -> Result<u64, StartRefusal> {
    if deadline > from_secs.saturating_add(max_runtime_secs) {
        return Err(StartRefusal::BeyondRuntime { max_secs: max_runtime_secs });
    }
    Ok(deadline)
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
            upload_token: None,
            deadline: 1,
            template: "default".into(),
            env: Default::default(),
            repo: None,
        });
        let json = serde_json::to_string(&start).unwrap();
        assert!(json.starts_with(r#"{"action":"start","session_id":"s_abc""#), "{json}");
        assert_eq!(serde_json::from_str::<PoolCommand>(&json).unwrap(), start);
        let stop: PoolCommand = serde_json::from_str(r#"{"action":"stop","session_id":"s_abc","reason":"x"}"#).unwrap();
        assert_eq!(stop.session(), &sid);
        assert!(serde_json::from_str::<PoolCommand>(r#"{"action":"stop","session_id":"s_abc","reason":"x","y":1}"#)
            .is_err());
    }

    #[test]
    fn starts_are_admitted_in_order_and_deadlines_beyond_the_ceiling_refused() {
        let eu = RegionId::new("eu").unwrap();
        let start = |deadline| StartRunner {
            session_id: SessionId::new("s_1").unwrap(),
            region: eu.clone(),
            join_url: "wss://e/sessions/s_1/join".into(),
            join_token: "t".into(),
            upload_token: None,
            deadline,
            template: "default".into(),
            env: Default::default(),
            repo: None,
        };
        let pool = PoolSlots { region: &eu, capacity: 2, held: 1, draining: false, has_session: false };
        let check = |s: &StartRunner, p: PoolSlots<'_>, expected: Result<u64, StartRefusal>| {
            assert_eq!(admit_start(s, p, 3600, 1000), expected, "{p:?}");
        };
        check(&start(2000), pool, Ok(2000));
        check(&start(4600), pool, Ok(4600));
        check(&start(4601), pool, Err(StartRefusal::BeyondRuntime { max_secs: 3600 }));
        assert_eq!(admit_extend(4600, 1000, 3600), Ok(4600));
        assert_eq!(admit_extend(4601, 1000, 3600), Err(StartRefusal::BeyondRuntime { max_secs: 3600 }));
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
        assert!(is_api_key_shaped(&key));
        for bad in ["", "esp_", "esp_k1", "esp_k1_short", "hunter2", &format!("{key}x"), &key.replace("esp_", "esq_")] {
            assert!(!is_api_key_shaped(bad), "{bad}");
        }
    }

    #[test]
    fn agent_names_fit_a_pod_name_and_nothing_else() {
        for ok in ["a", "eu-7f9c4-x2x", "agent_1.local", "0abc"] {
            assert_eq!(check_agent_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "A", "a/b", "a b", "é", &"a".repeat(64)] {
            assert!(check_agent_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_messages_are_tagged_json_and_strict() {
        let hello = AgentMessage::Hello(AgentReport { capacity: 4, load: 1, draining: false, runners: vec![] });
        let json = serde_json::to_string(&hello).unwrap();
        assert_eq!(json, r#"{"type":"hello","capacity":4,"load":1,"draining":false,"runners":[]}"#);
        assert_eq!(serde_json::from_str::<AgentMessage>(&json).unwrap(), hello);
        assert!(serde_json::from_str::<AgentMessage>(r#"{"type":"status","capacity":1,"load":0,"x":1}"#).is_err());
        let command =
            RoomMessage::Command { id: 3, token: Secret::new("t0ken"), body: "{\"join_token\":\"j\"}".into() };
        assert!(!format!("{command:?}").contains("t0ken") && !format!("{command:?}").contains("join_token"));
        let request = CommandRequest { token: Secret::new("t0ken"), body: "secret body".into(), wait_ms: 1 };
        assert!(!format!("{request:?}").contains("t0ken") && !format!("{request:?}").contains("secret body"));
        assert_eq!(pool_connect_path(&RegionId::new("eu").unwrap()), "/pools/eu/connect");
        assert_eq!(pool_commands_path(&RegionId::new("eu").unwrap()), "/internal/pools/eu/commands");
    }
}

//! What the agent's tests share: a key server standing for the control plane's JWKS (the dev OIDC
//! issuer signs our tokens here), the room host the runners join, the pool room host the agents dial
//! out to (the core's pool room, as the edge hosts it), tokens as the control plane mints them, and the
//! agent binary started as a real process and stopped on drop.

#![allow(dead_code, unreachable_pub)]

use edgeshell_core::ids::{RegionId, SessionId, Subject};
use edgeshell_core::issue::{session_id, Issuer};
use edgeshell_core::jwks::KeySet;
use edgeshell_core::lifetime::Terms;
use edgeshell_core::pool_api::{PoolCommand, StartRunner};
use edgeshell_core::room::RoomConfig;
use edgeshell_core::time::Timestamp;
use edgeshell_dev_oidc::DevIssuer;
use edgeshell_room_host::pool::PoolRoomHost;
use edgeshell_room_host::{Options, RoomHost};
use std::path::Path;

pub const REGION: &str = "eu";
pub const API_KEY: &str = "esp_test_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

/// Every error the agent answers is a row of the core's table, in its JSON shape and with its status.
pub fn assert_error_of_the_table(status: u16, body: &str) {
    if status >= 400 {
        let error = edgeshell_core::api_error::ApiError::from_body(body.as_bytes())
            .unwrap_or_else(|e| panic!("HTTP {status} answered with {body:?}: {e}"));
        assert_eq!(error.status(), status, "{body}");
    }
}

pub struct Fixture {
    pub issuer: DevIssuer,
    pub room: RoomHost,
    /// The edge's pool rooms, which the agents dial out to and commands reach them through.
    pub pools: PoolRoomHost,
    pub http: reqwest::Client,
}

/// How long a command waits for its agent's answer.
pub const COMMAND_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

pub fn now() -> Timestamp {
    Timestamp::from_secs(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
}

pub fn region() -> RegionId {
    RegionId::new(REGION).unwrap()
}

pub fn new_session() -> SessionId {
    session_id(rand::random())
}

impl Fixture {
    pub async fn start() -> Fixture {
        let issuer = DevIssuer::start("127.0.0.1:0", "edgeshell-dev").await.unwrap();
        let http = reqwest::Client::new();
        let jwks = http.get(issuer.jwks_url()).send().await.unwrap().bytes().await.unwrap();
        let keys = KeySet::from_json(&jwks).unwrap();
        let room = RoomHost::start(Options {
            issuer: issuer.issuer().into(),
            keys: keys.clone(),
            config: RoomConfig::default(),
        })
        .await
        .unwrap();
        let pools = PoolRoomHost::start(issuer.issuer(), keys, API_KEY).await.unwrap();
        Fixture { issuer, room, pools, http }
    }

    fn issuer(&self) -> Issuer {
        Issuer::new(self.issuer.issuer())
    }

    pub fn sign(&self, claims: &edgeshell_core::tokens::Claims) -> String {
        self.issuer.sign_claims(&serde_json::to_value(claims).unwrap()).unwrap()
    }

    pub fn command_token(&self, sid: &SessionId, region: &RegionId, body: &[u8]) -> String {
        self.sign(&self.issuer().pool_command(sid, region, body, rand::random(), now()))
    }

    pub fn attach_token(&self, sid: &SessionId) -> String {
        let user = Subject::new("dev:alice").unwrap();
        self.sign(&self.issuer().attach(&user, (sid, &region()), Terms::lasting(now(), 3600), rand::random(), now()))
    }

    pub fn join_token(&self, sid: &SessionId) -> String {
        self.join_token_lasting(sid, 3600)
    }

    /// A join token whose terms end `secs` from now, as the control plane makes one with its start.
    pub fn join_token_lasting(&self, sid: &SessionId, secs: u64) -> String {
        self.sign(&self.issuer().join((sid, &region()), Terms::lasting(now(), secs), rand::random(), now()))
    }

    /// A start command whose deadline (and its join token's) is `deadline_in` seconds away.
    pub fn start_body(&self, sid: &SessionId, deadline_in: u64) -> Vec<u8> {
        self.start_body_with(sid, self.join_token_lasting(sid, deadline_in), deadline_in)
    }

    pub fn start_body_with(&self, sid: &SessionId, join: String, deadline_in: u64) -> Vec<u8> {
        self.start_body_of(sid, join, deadline_in, edgeshell_core::templates::DEFAULT_TEMPLATE, &[])
    }

    /// A start of `template` with the user's variables `env`.
    pub fn start_body_of(
        &self,
        sid: &SessionId,
        join: String,
        deadline_in: u64,
        template: &str,
        env: &[(&str, &str)],
    ) -> Vec<u8> {
        self.start_body_with_repo(sid, join, deadline_in, (template, env), None)
    }

    /// A start of `template` with the user's variables and a repository.
    pub fn start_body_with_repo(
        &self,
        sid: &SessionId,
        join: String,
        deadline_in: u64,
        (template, env): (&str, &[(&str, &str)]),
        repo: Option<edgeshell_core::repo::RepoRequest>,
    ) -> Vec<u8> {
        let command = PoolCommand::Start(StartRunner {
            session_id: sid.clone(),
            region: region(),
            join_url: self.room.join_url(sid),
            join_token: join.into(),
            upload_token: None,
            deadline: now().as_secs() + deadline_in,
            template: template.into(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            repo,
        });
        serde_json::to_vec(&command).unwrap()
    }

    pub fn stop_body(sid: &SessionId) -> Vec<u8> {
        serde_json::to_vec(&PoolCommand::Stop { session_id: sid.clone(), reason: "test".into() }).unwrap()
    }

    /// Hands a command with `token` to the region's agent the way a compromised edge could, unverified:
    /// what the agent itself checks; returns status and body.
    pub async fn post(&self, token: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let body = String::from_utf8(body).unwrap();
        let (status, text) =
            self.pools.submit_unverified(&region(), token.unwrap_or_default(), &body, COMMAND_WAIT).await;
        assert_error_of_the_table(status, &text);
        (status, text)
    }

    /// Submits a command as the control plane does (the room verifies it, then the agent).
    pub async fn submit(&self, token: &str, body: Vec<u8>) -> (u16, String) {
        let body = String::from_utf8(body).unwrap();
        let (status, text) = self.pools.submit(&region(), token, &body, COMMAND_WAIT).await;
        assert_error_of_the_table(status, &text);
        (status, text)
    }

    /// Starts a runner for `sid` with a properly signed command.
    pub async fn start_runner(&self, _agent: &AgentProcess, sid: &SessionId, deadline_in: u64) -> (u16, String) {
        let body = self.start_body(sid, deadline_in);
        let token = self.command_token(sid, &region(), &body);
        self.submit(&token, body).await
    }

    pub async fn stop_runner(&self, _agent: &AgentProcess, sid: &SessionId) -> (u16, String) {
        let body = Fixture::stop_body(sid);
        let token = self.command_token(sid, &region(), &body);
        self.submit(&token, body).await
    }

    /// The runners the agent lists.
    pub async fn runners(&self, agent: &AgentProcess) -> Vec<serde_json::Value> {
        agent.runners().await.unwrap()
    }

    /// Waits until the agent lists `n` runners.
    pub async fn wait_for_runners(&self, agent: &AgentProcess, n: usize) {
        agent.wait_for_runners(n).await.unwrap()
    }
}

/// The agent binary, running.
pub use edgeshell_stack::PoolAgent as AgentProcess;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whom the agent trusts, dials and reports to.
pub struct Upstream {
    pub token_issuer: String,
    pub jwks_url: String,
    pub control_url: String,
    pub edge_url: String,
    pub api_key: String,
}

impl Fixture {
    /// The dev issuer stands in as the signer; no control plane (heartbeats fail and are retried,
    /// which the agent survives).
    pub fn upstream(&self) -> Upstream {
        Upstream {
            token_issuer: self.issuer.issuer().into(),
            jwks_url: self.issuer.jwks_url(),
            control_url: format!("http://127.0.0.1:{}", free_port()),
            edge_url: self.pools.url(),
            api_key: API_KEY.into(),
        }
    }
}

/// Starts the agent with the test's settings plus `extra`, keeping state in `state`.
pub async fn spawn_agent(fixture: &Fixture, state: &Path, extra: &[(&str, &str)]) -> AgentProcess {
    spawn_agent_for(&fixture.upstream(), state, extra).await
}

/// An agent's name from its state directory: one agent restarted on the same state is the same agent
/// (its new connection replaces the old), two with their own state are siblings.
pub fn agent_name(state: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    state.hash(&mut hasher);
    format!("eu-{:08x}", hasher.finish() as u32)
}

/// Starts the agent against `upstream`.
pub async fn spawn_agent_for(upstream: &Upstream, state: &Path, extra: &[(&str, &str)]) -> AgentProcess {
    let settings = edgeshell_stack::AgentSettings {
        region: REGION.into(),
        token_issuer: upstream.token_issuer.clone(),
        jwks_url: upstream.jwks_url.clone(),
        control_url: upstream.control_url.clone(),
        edge_url: upstream.edge_url.clone(),
        agent: agent_name(state),
        api_key: upstream.api_key.clone().into(),
        state_dir: state.to_owned(),
        session_command: "/bin/sh".into(),
        templates: None,
        env: Vec::new(),
    };
    AgentProcess::spawn(Path::new(env!("CARGO_BIN_EXE_edgeshell-pool-agent")), &settings, extra).await.unwrap()
}

//! The agent with the real control plane (the functions host serving the real components, on a
//! private Postgres) and the core's rooms hosted natively as the edge: it dials out to its pool room
//! and registers through heartbeats, a minted session's runner starts on the signed command the control
//! plane submits to the edge and serves the terminal through the room, ending the session stops it, and
//! a runner the control plane does not know is reaped through the heartbeat answer. A user's secret
//! reaches their session's program through the agent, and nobody else's.

mod support;

use edgeshell_core::ids::SessionId;
use edgeshell_core::jwks::KeySet;
use edgeshell_core::pool_api::{PoolCommand, StartRunner};
use edgeshell_core::protocol::Credential;
use edgeshell_core::room::RoomConfig;
use edgeshell_keys::RsaSigner;
use edgeshell_room_host::browser::Browser;
use edgeshell_room_host::pool::PoolRoomHost;
use edgeshell_room_host::{Options, RoomHost};
use edgeshell_stack::{ControlPlane, ControlSettings};
use std::time::Duration;
use support::*;

const TOKEN_ISSUER: &str = "edgeshell-test-control";
const WAIT: Duration = Duration::from_secs(15);

const INTERNAL_KEY: &str = "internal-key-for-tests-0123456789abcdef";

struct World {
    control: ControlPlane,
    room: RoomHost,
    pools: PoolRoomHost,
    signer: RsaSigner,
    _state: tempfile::TempDir,
    agent: AgentProcess,
}

fn signing_jwk() -> String {
    let path = edgeshell_stack::paths::repo_root().join("crates/keys/tests/vectors/pyjwt-rs256.json");
    let vector: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    vector["jwk"].to_string()
}

async fn world() -> World {
    world_with(&[]).await
}

async fn world_with(agent_settings: &[(&str, &str)]) -> World {
    let jwk = signing_jwk();
    let signer = RsaSigner::from_secret(&jwk).unwrap();
    // The edge trusts the control plane's key, as the Worker does through the published JWKS.
    let keys = KeySet::from_keys(vec![signer.verifying_key().clone()]).unwrap();
    let options = Options { issuer: TOKEN_ISSUER.into(), keys, config: RoomConfig::default() };
    let (room, pools) = RoomHost::start_with_pools(options, "", INTERNAL_KEY).await.unwrap();
    let settings = ControlSettings {
        secrets_kek: edgeshell_stack::control::new_secrets_kek("k1"),
        signing_key: jwk.into(),
        signer: false,
        token_issuer: TOKEN_ISSUER.into(),
        edge_url: room.url(),
        internal_key: INTERNAL_KEY.into(),
        client_id: "edgeshell-dev".into(),
        extra: String::new(),
        cache_dir: std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cwasm"),
        max_instances: 64,
    };
    let control = ControlPlane::start(&settings).await.unwrap();
    let api_key = control.add_pool_key(REGION).await.unwrap();
    pools.accept_key(&api_key);
    let upstream = Upstream {
        token_issuer: TOKEN_ISSUER.into(),
        jwks_url: control.jwks_url(),
        control_url: control.url().into(),
        edge_url: room.url().replacen("ws://", "http://", 1),
        api_key,
    };
    let state = tempfile::tempdir().unwrap();
    let agent = spawn_agent_for(&upstream, state.path(), agent_settings).await;
    World { control, room, pools, signer, _state: state, agent }
}

impl World {
    async fn call(&self, method: reqwest::Method, path: &str, bearer: &str) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.control.url());
        let response = reqwest::Client::new().request(method, url).bearer_auth(bearer).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Mints a session, retrying while the pool's first heartbeat is still on its way.
    async fn mint(&self) -> serde_json::Value {
        self.mint_as("alice", serde_json::json!({})).await
    }

    /// Mints a session of `user` with `body`, retrying while the pool's first heartbeat is on its way.
    async fn mint_as(&self, user: &str, body: serde_json::Value) -> serde_json::Value {
        let id_token = self.control.id_token(user).unwrap();
        for _ in 0..100 {
            let url = format!("{}/api/sessions", self.control.url());
            let response = reqwest::Client::new().post(url).bearer_auth(&id_token).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.json::<serde_json::Value>().await.unwrap_or_default();
            if status == 201 {
                return body;
            }
            assert_eq!(status, 503, "{body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no session could be minted");
    }
}

#[tokio::test]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_minted_session_runs_on_the_agent_and_ends_with_it() {
    let w = world().await;
    let minted = w.mint().await;
    assert_eq!(minted["region"], REGION);
    let sid = SessionId::new(minted["session_id"].as_str().unwrap()).unwrap();
    let ws_url = minted["ws_url"].as_str().unwrap();
    assert_eq!(ws_url, w.room.attach_url(&sid));
    w.agent.wait_for_runners(1).await.unwrap();

    let credential = Credential::Token(minted["token"].as_str().unwrap().to_owned());
    let mut browser = Browser::attach(ws_url, &credential).await.unwrap();
    browser.input(b"echo from-$((6*7))\n").await;
    browser.expect_from(0, "from-42", WAIT).await;

    let id_token = w.control.id_token("alice").unwrap();
    let (status, body) = w.call(reqwest::Method::DELETE, &format!("/api/sessions/{sid}"), &id_token).await;
    assert!((200..300).contains(&status), "{status} {body}");
    w.agent.wait_for_runners(0).await.unwrap();
    assert!(browser.expect_close(WAIT).await.is_some(), "the terminal closes when the runner is stopped");
}

#[tokio::test]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_runner_the_control_plane_does_not_know_is_reaped_by_heartbeat() {
    let w = world().await;
    // Register the pool first (a mint succeeds only once it has heartbeated).
    let minted = w.mint().await;
    w.agent.wait_for_runners(1).await.unwrap();
    // A start signed with the control plane's key for a session it never recorded.
    let sid = edgeshell_core::issue::session_id(rand::random());
    let issuer = edgeshell_core::issue::Issuer::new(TOKEN_ISSUER);
    let join =
        issuer.join((&sid, &region()), edgeshell_core::lifetime::Terms::lasting(now(), 3600), rand::random(), now());
    let body = serde_json::to_vec(&PoolCommand::Start(StartRunner {
        session_id: sid.clone(),
        region: region(),
        join_url: w.room.join_url(&sid),
        join_token: edgeshell_core::tokens::sign(&join, &w.signer).unwrap().into(),
        upload_token: None,
        deadline: now().as_secs() + 600,
        template: edgeshell_core::templates::DEFAULT_TEMPLATE.into(),
        env: Default::default(),
        repo: None,
    }))
    .unwrap();
    let claims = issuer.pool_command(&sid, &region(), &body, rand::random(), now());
    let token = edgeshell_core::tokens::sign(&claims, &w.signer).unwrap();
    let (status, text) = w.pools.submit(&region(), &token, std::str::from_utf8(&body).unwrap(), WAIT).await;
    assert_eq!(status, 201, "{text}");
    // The next heartbeats name it; the agent stops it and keeps the known one.
    for _ in 0..100 {
        let listed = w.agent.runners().await.unwrap();
        if listed.len() == 1 {
            assert_eq!(listed[0]["session_id"], minted["session_id"]);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the orphan was not reaped: {:?}", w.agent.runners().await);
}

#[tokio::test]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_users_secret_reaches_their_sessions_program_and_nobody_elses() {
    let state = tempfile::tempdir().unwrap();
    let catalogue = state.path().join("templates.json");
    let templates = r#"{"templates": [{"name": "agent", "title": "Agent", "secrets": ["AGENT_TOKEN"]}]}"#;
    std::fs::write(&catalogue, templates).unwrap();
    let w = world_with(&[("EDGESHELL_POOL_TEMPLATES", catalogue.to_str().unwrap())]).await;
    let value = format!("tok-{}", rand::random::<u64>());
    let alice = w.control.id_token("alice").unwrap();
    let url = format!("{}/api/secrets/AGENT_TOKEN", w.control.url());
    let response =
        reqwest::Client::new().put(url).bearer_auth(&alice).json(&serde_json::json!({ "value": value })).send().await;
    assert_eq!(response.unwrap().status(), 200);

    let attach = |minted: &serde_json::Value| {
        let credential = Credential::Token(minted["token"].as_str().unwrap().to_owned());
        let url = minted["ws_url"].as_str().unwrap().to_owned();
        async move { Browser::attach(&url, &credential).await.unwrap() }
    };
    let minted = w.mint_as("alice", serde_json::json!({ "template": "agent" })).await;
    let mut browser = attach(&minted).await;
    browser.input(b"echo \"got=$AGENT_TOKEN\" | sha256sum; echo \"plain=$AGENT_TOKEN\"\n").await;
    browser.expect_from(0, &format!("plain={value}"), WAIT).await;
    // The runner's own environment is out of the program's reach (another user, not dumpable).
    browser.input(b"cat /proc/$PPID/environ >/dev/null 2>&1 || echo environ-refused\n").await;
    browser.expect_from(0, "environ-refused", WAIT).await;

    let minted = w.mint_as("bob", serde_json::json!({ "template": "agent" })).await;
    let mut other = attach(&minted).await;
    other.input(b"echo \"bob=${AGENT_TOKEN:-none}\"\n").await;
    other.expect_from(0, "bob=none", WAIT).await;
    assert!(!String::from_utf8_lossy(&other.output).contains(&value));
}

#[tokio::test]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_private_repository_is_cloned_with_its_owners_token_and_the_token_stays_out_of_the_program() {
    let private: &[(&str, &[u8])] = &[("SECRET.md", b"private plans\n")];
    let git = edgeshell_stack::GitServer::start(&[("plans", private, true)]).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let catalogue = state.path().join("templates.json");
    let templates = serde_json::json!({"templates": [
        {"name": "code", "title": "Code", "command": "/bin/sh", "repo_hosts": [git.host()], "repo_token": "GIT_TOKEN"},
    ]});
    std::fs::write(&catalogue, templates.to_string()).unwrap();
    let w = world_with(&[
        ("EDGESHELL_POOL_TEMPLATES", catalogue.to_str().unwrap()),
        ("EDGESHELL_GIT_CA_FILE", git.ca_file.to_str().unwrap()),
    ])
    .await;
    let alice = w.control.id_token("alice").unwrap();
    let url = format!("{}/api/secrets/GIT_TOKEN", w.control.url());
    let set =
        reqwest::Client::new().put(url).bearer_auth(&alice).json(&serde_json::json!({ "value": git.token })).send();
    assert_eq!(set.await.unwrap().status(), 200);
    let attach = |minted: &serde_json::Value| {
        let credential = Credential::Token(minted["token"].as_str().unwrap().to_owned());
        let url = minted["ws_url"].as_str().unwrap().to_owned();
        async move { Browser::attach(&url, &credential).await.unwrap() }
    };
    let body = serde_json::json!({ "template": "code", "repo": { "url": git.url("plans") } });

    let mut browser = attach(&w.mint_as("alice", body.clone()).await).await;
    browser.expect_from(0, "into ~/plans", WAIT).await;
    browser.input(b"cat SECRET.md; echo \"tok=${GIT_TOKEN:-none} cfg=${GIT_CONFIG_VALUE_0:-none}\"\n").await;
    browser.expect_from(0, "private plans", WAIT).await;
    browser.expect_from(0, "tok=none cfg=none", WAIT).await;
    assert!(!String::from_utf8_lossy(&browser.output).contains(&git.token), "the token never reaches the terminal");

    // Bob has no token: the private repository refuses him, and his session ends saying so.
    let mut other = attach(&w.mint_as("bob", body).await).await;
    other.expect_from(0, "could not be cloned", WAIT).await;
    assert!(other.expect_close(WAIT).await.is_some());
}

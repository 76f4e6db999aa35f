//! The control plane as the tests run it: a migrated private Postgres, the dev OIDC issuer, the host
//! serving the real components from `spin.toml`, the edge's internal routes stood in for by a
//! [`FakeEdge`], and pools connected to it and registered through the real heartbeat route.

use super::pool::{FakeEdge, Mode, TestPool};
use super::{send, vector_jwk};
use edgeshell_control_db::pool_keys;
use edgeshell_stack::{ControlPlane, ControlSettings};

pub const INTERNAL_KEY: &str = "internal-key-for-tests-0123456789abcdef";
pub const TOKEN_ISSUER: &str = "edgeshell-test-control";
pub const CLIENT_ID: &str = "edgeshell-dev";

/// The keys the host at `url` publishes (`/.well-known/jwks.json`).
pub async fn served_keys(url: &str) -> edgeshell_core::jwks::KeySet {
    let (status, _, body) = super::request(url, "GET", "/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    edgeshell_core::jwks::KeySet::from_json(&body).unwrap()
}

/// `token`, a token for the edge of kind `scope` and session `sid`, verified with the core against the
/// keys the host at `url` publishes, now.
pub async fn verify_at_edge(
    url: &str,
    token: &str,
    scope: edgeshell_core::tokens::Scope,
    sid: &edgeshell_core::ids::SessionId,
) -> edgeshell_core::tokens::Verified {
    use edgeshell_core::tokens::{Expectation, ValidationOptions, Validator};
    let validator = Validator::new(ValidationOptions::new(TOKEN_ISSUER, edgeshell_core::issue::EDGE_AUDIENCE));
    let expect = Expectation { scope, session: Some(sid) };
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let now = edgeshell_core::time::Timestamp::from_millis(since.as_millis() as u64);
    let keys = served_keys(url).await;
    validator.verify(token, &keys, &edgeshell_keys::RingVerifier, expect, now).await.expect("token verifies")
}
/// The control plane of `edgeshell_stack` with the tests' settings and helpers.
pub struct Stack {
    control: ControlPlane,
    /// What the control plane was started with (a redeploy changes a copy).
    pub settings: ControlSettings,
    /// The edge's pool rooms and room ends.
    pub edge: FakeEdge,
}

impl std::ops::Deref for Stack {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        &self.control
    }
}

impl std::ops::DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut ControlPlane {
        &mut self.control
    }
}

/// A pool and its API key.
pub struct Pool {
    pub pool: TestPool,
    pub key: String,
}

impl Stack {
    /// Everything up; `extra` adds or overrides `SPIN_VARIABLE_*` lines.
    pub async fn start(extra: &str) -> Stack {
        Stack::start_limited(extra, edgeshell_spin_host::server::DEFAULT_MAX_INSTANCES).await
    }

    /// Everything up, with a host that runs at most `max_instances` requests at once.
    pub async fn start_limited(extra: &str, max_instances: u32) -> Stack {
        Stack::start_with(extra, max_instances, false).await
    }

    /// Everything up, signing at an `edgeshell-signer` instead of in the components.
    #[allow(dead_code)] // Not every test binary signs at the signer.
    pub async fn start_signed(extra: &str) -> Stack {
        Stack::start_with(extra, edgeshell_spin_host::server::DEFAULT_MAX_INSTANCES, true).await
    }

    async fn start_with(extra: &str, max_instances: u32, signer: bool) -> Stack {
        let edge = FakeEdge::start(INTERNAL_KEY).await;
        let settings = ControlSettings {
            secrets_kek: edgeshell_stack::control::new_secrets_kek("k1"),
            signing_key: vector_jwk("pyjwt-rs256.json").into(),
            signer,
            token_issuer: TOKEN_ISSUER.into(),
            edge_url: edge.url.replacen("http://", "ws://", 1),
            internal_key: INTERNAL_KEY.into(),
            client_id: CLIENT_ID.into(),
            extra: extra.into(),
            cache_dir: super::shared_cache(),
            max_instances,
        };
        Stack { control: ControlPlane::start(&settings).await.expect("control plane starts"), settings, edge }
    }

    /// Redeploys the functions with settings changed by `change` (new keys, new variables).
    #[allow(dead_code)]
    pub async fn redeploy_with(&mut self, change: impl FnOnce(&mut ControlSettings)) {
        let mut settings = self.settings.clone();
        change(&mut settings);
        self.control.redeploy(&settings).await.expect("the functions redeploy");
        self.settings = settings;
    }

    /// The edge's WebSocket origin, as the control plane builds session URLs from it.
    #[allow(dead_code)]
    pub fn edge_url(&self) -> String {
        self.edge.url.replacen("http://", "ws://", 1)
    }

    pub fn id_token(&self, user: &str) -> String {
        self.control.id_token(user).unwrap()
    }

    /// Starts a pool, connects it to the edge, gives it a key, and registers it with a heartbeat.
    pub async fn add_pool(&self, region: &str, mode: Mode) -> Pool {
        let pool = TestPool::new(region, mode, &self.host.url, TOKEN_ISSUER);
        self.edge.connect(&pool);
        let (_, key) = pool_keys::add(&self.db, region).await.unwrap();
        let pool = Pool { pool, key };
        let (status, body) = self.heartbeat(&pool, 10, 0).await;
        assert_eq!(status, 200, "{body}");
        pool
    }

    /// One heartbeat; answers status and JSON.
    pub async fn heartbeat(&self, pool: &Pool, capacity: u32, load: u32) -> (u16, serde_json::Value) {
        let body = serde_json::json!({
            "region": pool.pool.region, "agent": pool.pool.agent, "capacity": capacity, "load": load,
        });
        self.call("POST", "/api/pools/heartbeat", &pool.key, body).await
    }

    /// One heartbeat reporting `templates` (the public part of the agent's catalogue).
    pub async fn heartbeat_offering(&self, pool: &Pool, templates: serde_json::Value) -> (u16, serde_json::Value) {
        let body = serde_json::json!({
            "region": pool.pool.region, "agent": pool.pool.agent, "capacity": 10, "load": 0, "templates": templates,
        });
        self.call("POST", "/api/pools/heartbeat", &pool.key, body).await
    }

    /// A JSON call with a bearer token.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let auth = format!("Bearer {bearer}");
        let mut headers = vec![("content-type", "application/json")];
        if !bearer.is_empty() {
            headers.push(("authorization", auth.as_str()));
        }
        let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
        let (status, _, out) = send(&self.host.url, method, path, &headers, body).await;
        let json = serde_json::from_slice(&out)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&out).into_owned()));
        (status, json)
    }

    pub async fn mint(&self, id_token: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call("POST", "/api/sessions", id_token, body).await
    }

    /// Rows of `sessions` as (id, state, region).
    pub async fn sessions(&self) -> Vec<(String, String, Option<String>)> {
        let rows = self.db.query("SELECT id, state, region FROM sessions ORDER BY created_at", &[]).await.unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    }
}

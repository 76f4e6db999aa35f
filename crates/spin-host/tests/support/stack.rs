//! The control plane as the tests run it: a migrated private Postgres, the dev OIDC issuer, the host
//! serving the real components from `spin.toml`, and pools registered through the real heartbeat route.

use super::pool::{Mode, TestPool};
use super::{send, vector_jwk, TestHost};
use edgeshell_control_db::pool_keys;
use edgeshell_dev_oidc::{DevIssuer, IdTokenRequest};
use local_postgres::LocalPostgres;

pub const INTERNAL_KEY: &str = "internal-key-for-tests";
pub const TOKEN_ISSUER: &str = "edgeshell-test-control";
pub const CLIENT_ID: &str = "edgeshell-dev";
pub const EDGE_URL: &str = "ws://127.0.0.1:8787";

pub struct Stack {
    pub pg: LocalPostgres,
    pub db_url: String,
    pub db: tokio_postgres::Client,
    pub issuer: DevIssuer,
    pub host: TestHost,
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
        let (pg, db_url, db) = super::migrated_postgres().await;
        let issuer = DevIssuer::start("127.0.0.1:0", CLIENT_ID).await.unwrap();
        let env = format!(
            "SPIN_VARIABLE_SIGNING_KEY='{key}'
SPIN_VARIABLE_DATABASE_URL={db_url}
SPIN_VARIABLE_DATABASE_HOST=127.0.0.1:{port}
SPIN_VARIABLE_INTERNAL_API_KEY={INTERNAL_KEY}
SPIN_VARIABLE_TOKEN_ISSUER={TOKEN_ISSUER}
SPIN_VARIABLE_EDGE_URL={EDGE_URL}
SPIN_VARIABLE_OIDC_ISSUER={iss}
SPIN_VARIABLE_OIDC_AUDIENCE={CLIENT_ID}
SPIN_VARIABLE_OIDC_JWKS_URL={jwks}
SPIN_VARIABLE_OIDC_JWKS_ORIGIN=http://127.0.0.1:{issuer_port}
SPIN_VARIABLE_POOL_ORIGIN=http://127.0.0.1:*
{extra}",
            key = vector_jwk("pyjwt-rs256.json"),
            port = pg.port(),
            iss = issuer.issuer(),
            jwks = issuer.jwks_url(),
            issuer_port = issuer.addr().port(),
        );
        let host = super::start_limited(&env, max_instances).await;
        Stack { pg, db_url, db, issuer, host }
    }

    pub fn id_token(&self, user: &str) -> String {
        self.issuer.id_token(&IdTokenRequest { user: user.into(), ..Default::default() }).unwrap()
    }

    /// Starts a pool, gives it a key, and registers it with a heartbeat.
    pub async fn add_pool(&self, region: &str, mode: Mode) -> Pool {
        let pool = TestPool::start(region, mode, &self.host.url, TOKEN_ISSUER).await;
        let (_, key) = pool_keys::add(&self.db, region).await.unwrap();
        let pool = Pool { pool, key };
        let (status, body) = self.heartbeat(&pool, 10, 0).await;
        assert_eq!(status, 200, "{body}");
        pool
    }

    /// One heartbeat; answers status and JSON.
    pub async fn heartbeat(&self, pool: &Pool, capacity: u32, load: u32) -> (u16, serde_json::Value) {
        let body = serde_json::json!({
            "region": pool.pool.region, "endpoint": pool.pool.endpoint, "capacity": capacity, "load": load,
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

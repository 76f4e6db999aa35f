//! The whole stack for end-to-end tests, every piece real and on loopback: the control plane (functions
//! host with the real components, private Postgres, dev OIDC issuer), the edge gateway under
//! `wrangler dev` with its JWKS fetched through a counting [`JwksProxy`], and one pool agent per region
//! running real runners on real PTYs. Users sign in with the dev issuer and mint sessions through the
//! public API, exactly as the web client does.

pub mod pool_proxy;

use edgeshell_core::ids::SessionId;
use edgeshell_core::secret::Secret;
use edgeshell_stack::{AgentSettings, ControlPlane, ControlSettings, EdgeGateway, JwksProxy, PoolAgent};
use std::time::Duration;

/// The control plane's `iss` in these tests.
pub const TOKEN_ISSUER: &str = "edgeshell-e2e-control";
/// The key of the control plane's internal routes.
pub const INTERNAL_KEY: &str = "internal-key-for-e2e-0123456789abcdef0123";

/// A test vector's private JWK (`crates/keys/tests/vectors/<name>`): `pyjwt-rs256.json` (kid
/// `pyjwt-1`) and `rfc7515-a2.json` (kid `rfc7515-a2`).
pub fn vector_jwk(name: &str) -> anyhow::Result<String> {
    let path = edgeshell_stack::paths::repo_root().join("crates/keys/tests/vectors").join(name);
    let vector: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    Ok(vector["jwk"].to_string())
}

/// Where compiled components are cached between runs: the target directory's `tmp/cwasm`.
fn cwasm_cache() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| edgeshell_stack::paths::repo_root().join("target"));
    target.join("tmp/cwasm")
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Regions, one pool agent each.
    pub regions: Vec<String>,
    /// More edge vars (room timers, hibernation), overriding `wrangler.toml`.
    pub edge_vars: Vec<(&'static str, String)>,
    /// The session program the runners start.
    pub session_command: String,
    /// The edge's port (a free one when `None`).
    pub edge_port: Option<u16>,
    /// An existing control database (migrated at start); a private cluster when `None`.
    pub database_url: Option<String>,
    /// The control plane's signing key, a private JWK; the `pyjwt-rs256.json` vector's when `None`.
    pub signing_key: Option<Secret>,
    /// Sign at a token signer holding the key (the production shape) instead of in the components.
    pub signer: bool,
    /// More control-plane Spin variables (`NAME`, value), e.g. `ATTACH_TOKEN_SECS`.
    pub control_vars: Vec<(&'static str, String)>,
    /// Pool agents per region (named `{region}-a`, `{region}-b`, ...), each dialing out to the edge.
    pub agents_per_region: usize,
    /// The pools' template catalogue (JSON); [`DEV_TEMPLATES`] by default.
    pub templates: Option<String>,
    /// More variables for every pool agent (e.g. `EDGESHELL_GIT_CA_FILE`).
    pub agent_env: Vec<(String, String)>,
    /// Lift the per-user quotas to [`LIFTED_QUOTAS`]: test scenarios mint many sessions for few users.
    /// The dev stack keeps the documented defaults.
    pub lift_quotas: bool,
}

/// The dev stack's and the tests' template catalogue: `default` (the session command) and
/// `shell-with-settings` (a shell with two variables a user may set, the user's secret `AGENT_TOKEN`,
/// and its own memory limit).
pub const DEV_TEMPLATES: &str = include_str!("../dev-templates.json");

/// The control variables [`StackOptions::lift_quotas`] sets.
pub const LIFTED_QUOTAS: [(&str, &str); 2] = [("MAX_LIVE_SESSIONS", "1000"), ("MINTS_PER_MINUTE", "10000")];

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            regions: vec!["eu".into()],
            edge_vars: Vec::new(),
            session_command: "/bin/sh".into(),
            edge_port: None,
            database_url: None,
            signing_key: None,
            signer: false,
            control_vars: Vec::new(),
            agents_per_region: 1,
            templates: Some(DEV_TEMPLATES.into()),
            agent_env: Vec::new(),
            lift_quotas: true,
        }
    }
}

/// The dev issuer's client id (the ID tokens' audience, the page's `OIDC_CLIENT_ID`).
pub const CLIENT_ID: &str = "edgeshell-dev";

/// A minted session, as `POST /api/sessions` answers.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Where it runs.
    pub region: String,
    /// Where a browser attaches.
    pub ws_url: String,
    /// The attach token.
    pub token: Secret,
}

/// The running stack; everything stops when dropped.
pub struct Stack {
    /// Pool agents by region (a stopped region has none; a region may have several).
    pub agents: Vec<(String, PoolAgent)>,
    agent_settings: Vec<AgentSettings>,
    /// The edge gateway.
    pub edge: EdgeGateway,
    /// The edge's view of the control plane's JWKS.
    pub jwks: JwksProxy,
    /// The control plane.
    pub control: ControlPlane,
    /// How the control plane was configured (for redeploys).
    pub control_settings: ControlSettings,
    http: reqwest::Client,
    _state: tempfile::TempDir,
}

impl Stack {
    /// Starts everything.
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let edge_port = match options.edge_port {
            Some(port) => port,
            None => EdgeGateway::free_port()?,
        };
        let signing_key = match &options.signing_key {
            Some(key) => key.clone(),
            None => vector_jwk("pyjwt-rs256.json")?.into(),
        };
        let control_settings = ControlSettings {
            secrets_kek: edgeshell_stack::control::new_secrets_kek("k1"),
            signing_key,
            signer: options.signer,
            token_issuer: TOKEN_ISSUER.into(),
            edge_url: format!("ws://127.0.0.1:{edge_port}"),
            internal_key: INTERNAL_KEY.into(),
            client_id: CLIENT_ID.into(),
            extra: LIFTED_QUOTAS
                .iter()
                .filter(|_| options.lift_quotas)
                .map(|(name, value)| (*name, *value))
                .chain(options.control_vars.iter().map(|(name, value)| (*name, value.as_str())))
                .fold(String::new(), |extra, (name, value)| format!("{extra}SPIN_VARIABLE_{name}={value}\n")),
            cache_dir: cwasm_cache(),
            max_instances: 64,
        };
        let control = ControlPlane::start_with(&control_settings, options.database_url.as_deref()).await?;
        let jwks = JwksProxy::start(&control.jwks_url()).await?;
        let mut vars = vec![
            ("TOKEN_ISSUER", TOKEN_ISSUER.to_owned()),
            ("JWKS_URL", jwks.url.clone()),
            ("CONTROL_URL", control.url().to_owned()),
            ("INTERNAL_API_KEY", INTERNAL_KEY.to_owned()),
            ("OIDC_ISSUER", control.issuer.issuer().to_owned()),
            ("OIDC_CLIENT_ID", CLIENT_ID.to_owned()),
            ("OIDC_PROVIDER_NAME", "the local dev issuer".to_owned()),
        ];
        vars.extend(options.edge_vars.iter().cloned());
        let edge = EdgeGateway::start_on(edge_port, &vars).await?;
        let state = tempfile::tempdir()?;
        let templates = match &options.templates {
            Some(json) => {
                let path = state.path().join("templates.json");
                std::fs::write(&path, json)?;
                Some(path)
            }
            None => None,
        };
        let bin = edgeshell_stack::paths::workspace_bin("edgeshell-pool-agent")?;
        let mut agents = Vec::new();
        let mut agent_settings = Vec::new();
        for region in &options.regions {
            let api_key: Secret = control.add_pool_key(region).await?.into();
            for n in 0..options.agents_per_region.max(1) {
                let agent = format!("{region}-{}", char::from(b'a' + n as u8));
                let state_dir = state.path().join(&agent);
                std::fs::create_dir_all(&state_dir)?;
                let settings = AgentSettings {
                    region: region.clone(),
                    token_issuer: TOKEN_ISSUER.into(),
                    jwks_url: control.jwks_url(),
                    control_url: control.url().into(),
                    edge_url: edge.url.clone(),
                    agent,
                    api_key: api_key.clone(),
                    state_dir,
                    session_command: options.session_command.clone(),
                    templates: templates.clone(),
                    env: options.agent_env.clone(),
                };
                agents.push((region.clone(), PoolAgent::spawn(&bin, &settings, &[]).await?));
                agent_settings.push(settings);
            }
        }
        let stack = Stack {
            agents,
            agent_settings,
            edge,
            jwks,
            control,
            control_settings,
            http: reqwest::Client::new(),
            _state: state,
        };
        Ok(stack)
    }

    /// Calls the control plane's public API as `user`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let url = format!("{}{path}", self.control.url());
        let id_token = self.control.id_token(user)?;
        let response = self.http.request(method, url).bearer_auth(id_token).json(&body).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// Mints a session for `user`, waiting (up to 10 s) for the pools' first heartbeats.
    pub async fn mint(&self, user: &str) -> anyhow::Result<Session> {
        self.mint_with(user, serde_json::json!({})).await
    }

    /// Mints a session with options (`region_hint`, `rtts`), waiting (up to 10 s) for a region.
    pub async fn mint_with(&self, user: &str, options: serde_json::Value) -> anyhow::Result<Session> {
        for _ in 0..100 {
            let (status, body) = self.call(reqwest::Method::POST, "/api/sessions", user, options.clone()).await?;
            if status == 201 {
                let text = |k: &str| body[k].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no {k}"));
                return Ok(Session {
                    id: SessionId::new(text("session_id")?)?,
                    region: text("region")?,
                    ws_url: text("ws_url")?,
                    token: text("token")?.into(),
                });
            }
            anyhow::ensure!(body["error"]["code"] == "no_region_available", "mint failed: {status} {body}");
            eprintln!("mint: {status} {}, trying again in 100 ms", body["error"]["message"]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("no region became available")
    }

    /// A fresh attach token for `user`'s session.
    pub async fn attach_token(&self, user: &str, session: &SessionId) -> anyhow::Result<String> {
        let path = format!("/api/sessions/{session}/token");
        let (status, body) = self.call(reqwest::Method::POST, &path, user, serde_json::json!({})).await?;
        anyhow::ensure!(status == 200 || status == 201, "token refused: {status} {body}");
        body["token"].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no token in {body}"))
    }

    /// The pool key of `region`'s agents.
    pub fn pool_key(&self, region: &str) -> anyhow::Result<Secret> {
        self.agent_settings
            .iter()
            .find(|s| s.region == region)
            .map(|s| s.api_key.clone())
            .ok_or_else(|| anyhow::anyhow!("no region {region}"))
    }

    /// The agent named `name` (`{region}-a`, ...).
    pub fn agent_named(&self, name: &str) -> anyhow::Result<&PoolAgent> {
        self.agents.iter().map(|(_, a)| a).find(|a| a.name == name).ok_or_else(|| anyhow::anyhow!("no agent {name}"))
    }

    /// The (first) agent of `region`.
    pub fn agent(&self, region: &str) -> anyhow::Result<&PoolAgent> {
        self.agents
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, a)| a)
            .ok_or_else(|| anyhow::anyhow!("no region {region}"))
    }

    /// Uploads an artifact through the edge as the session's runner would, with an `artifact:put` token
    /// signed by the control plane's key; returns the HTTP status.
    pub async fn upload_artifact(
        &self,
        session: &SessionId,
        region: &str,
        path: &str,
        content: Vec<u8>,
    ) -> anyhow::Result<u16> {
        let token = self.artifact_put_token(session, region)?;
        let url = format!("{}/artifacts/{session}/{path}", self.edge.url);
        let response = self.http.put(url).bearer_auth(token.expose()).body(content).send().await?;
        Ok(response.status().as_u16())
    }

    /// Signs `claims` with the control plane's key, as the control plane does.
    pub fn sign(&self, claims: &edgeshell_core::tokens::Claims) -> anyhow::Result<Secret> {
        let key = edgeshell_keys::RsaSigner::from_secret(self.control_settings.signing_key.expose())?;
        Ok(edgeshell_core::tokens::sign(claims, &key)?.into())
    }

    /// A start command for a new session in `region`, signed as the control plane signs one: its
    /// `pool:command` token and exact body, as the control plane submits them to the edge.
    pub fn start_command(&self, region: &str) -> anyhow::Result<(edgeshell_core::ids::SessionId, Secret, String)> {
        use edgeshell_core::issue::{session_id, Issuer};
        use edgeshell_core::pool_api::{join_path, PoolCommand, StartRunner};
        let issuer = Issuer::new(TOKEN_ISSUER);
        let region = edgeshell_core::ids::RegionId::new(region)?;
        let now = edgeshell_platform::clock::now();
        let sid = session_id(rand::random());
        let terms = edgeshell_core::lifetime::Terms::lasting(now, 600);
        let join = self.sign(&issuer.join((&sid, &region), terms, rand::random(), now))?;
        let command = PoolCommand::Start(StartRunner {
            session_id: sid.clone(),
            region: region.clone(),
            join_url: format!("{}{}", self.edge_ws(), join_path(&sid)),
            join_token: join,
            upload_token: None,
            deadline: terms.ends,
            template: edgeshell_core::templates::DEFAULT_TEMPLATE.into(),
            env: Default::default(),
            repo: None,
        });
        let body = serde_json::to_string(&command)?;
        let token = self.sign(&issuer.pool_command(&sid, &region, body.as_bytes(), rand::random(), now))?;
        Ok((sid, token, body))
    }

    /// A stop command for `session` in `region`, signed as the control plane signs one.
    pub fn stop_command(
        &self,
        region: &str,
        session: &edgeshell_core::ids::SessionId,
    ) -> anyhow::Result<(Secret, String)> {
        use edgeshell_core::pool_api::PoolCommand;
        let region = edgeshell_core::ids::RegionId::new(region)?;
        let command = PoolCommand::Stop { session_id: session.clone(), reason: "test".into() };
        let body = serde_json::to_string(&command)?;
        let claims = edgeshell_core::issue::Issuer::new(TOKEN_ISSUER).pool_command(
            session,
            &region,
            body.as_bytes(),
            rand::random(),
            edgeshell_platform::clock::now(),
        );
        Ok((self.sign(&claims)?, body))
    }

    /// Submits a command to `region`'s pool room at the edge as the control plane does (internal key):
    /// the answer's status and JSON.
    pub async fn submit_command(
        &self,
        region: &str,
        token: &Secret,
        body: &str,
        wait: Duration,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let region = edgeshell_core::ids::RegionId::new(region)?;
        let url = format!("{}{}", self.edge.url, edgeshell_core::pool_api::pool_commands_path(&region));
        let request = edgeshell_core::pool_api::CommandRequest {
            token: token.clone(),
            body: body.to_owned(),
            wait_ms: wait.as_millis() as u64,
        };
        let response = self.http.post(url).bearer_auth(INTERNAL_KEY).json(&request).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// An `artifact:put` token for `session`, as its runner gets one.
    pub fn artifact_put_token(&self, session: &SessionId, region: &str) -> anyhow::Result<Secret> {
        use edgeshell_core::issue::Issuer;
        let key = edgeshell_keys::RsaSigner::from_secret(self.control_settings.signing_key.expose())?;
        let region = edgeshell_core::ids::RegionId::new(region)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let entropy: [u8; 16] = rand::random();
        let now = edgeshell_core::time::Timestamp::from_millis(now.as_millis() as u64);
        let claims =
            Issuer::new(TOKEN_ISSUER).artifact_put((session, &region), now + Duration::from_secs(3600), entropy, now);
        Ok(edgeshell_core::tokens::sign(&claims, &key)?.into())
    }

    /// A region outage: its pool agents and every runner they started are killed at once (SIGKILL), as
    /// a lost zone takes them all. Returns the killed runners' session ids.
    pub async fn stop_region(&mut self, region: &str) -> anyhow::Result<Vec<String>> {
        let names: Vec<String> = self.agents.iter().filter(|(r, _)| r == region).map(|(_, a)| a.name.clone()).collect();
        anyhow::ensure!(!names.is_empty(), "{region} is not running");
        let mut sessions = Vec::new();
        for name in names {
            sessions.extend(self.kill_agent(&name).await?);
        }
        Ok(sessions)
    }

    /// One agent lost with its machine: it and every runner it started are killed (SIGKILL); its
    /// siblings live on. Returns the killed runners' session ids.
    pub async fn kill_agent(&mut self, name: &str) -> anyhow::Result<Vec<String>> {
        let at = self
            .agents
            .iter()
            .position(|(_, a)| a.name == name)
            .ok_or_else(|| anyhow::anyhow!("{name} is not running"))?;
        let runners = self.agents[at].1.runners().await?;
        let (_, mut agent) = self.agents.remove(at);
        agent.child.kill().await?;
        let mut sessions = Vec::new();
        for runner in runners {
            let pid = runner["runner"].as_str().and_then(|r| r.strip_prefix("pid:")).and_then(|p| p.parse().ok());
            if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
                // The runner may have exited on its own already.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            sessions.extend(runner["session_id"].as_str().map(str::to_owned));
        }
        Ok(sessions)
    }

    /// Brings a stopped region back with a new agent under the same key and settings.
    pub async fn start_region(&mut self, region: &str) -> anyhow::Result<()> {
        self.start_region_with(region, &[]).await
    }

    /// Brings a stopped region back: each of its agents anew, under the same key and settings, with
    /// more agent variables (`EDGESHELL_POOL_EDGE_URL`, ...).
    pub async fn start_region_with(&mut self, region: &str, extra: &[(&str, &str)]) -> anyhow::Result<()> {
        anyhow::ensure!(self.agent(region).is_err(), "{region} is already running");
        let names: Vec<String> =
            self.agent_settings.iter().filter(|s| s.region == region).map(|s| s.agent.clone()).collect();
        anyhow::ensure!(!names.is_empty(), "no region {region}");
        for name in names {
            self.start_agent_with(&name, extra).await?;
        }
        Ok(())
    }

    /// Starts agent `name` again (after [`Stack::kill_agent`]) with more variables.
    pub async fn start_agent_with(&mut self, name: &str, extra: &[(&str, &str)]) -> anyhow::Result<()> {
        anyhow::ensure!(self.agent_named(name).is_err(), "{name} is already running");
        let settings =
            self.agent_settings.iter().find(|s| s.agent == name).ok_or_else(|| anyhow::anyhow!("no agent {name}"))?;
        let bin = edgeshell_stack::paths::workspace_bin("edgeshell-pool-agent")?;
        let agent = PoolAgent::spawn(&bin, settings, extra).await?;
        self.agents.push((settings.region.clone(), agent));
        Ok(())
    }

    /// The edge's WebSocket origin.
    pub fn edge_ws(&self) -> String {
        self.edge.url.replacen("http://", "ws://", 1)
    }
}

/// Polls `check` every 50 ms until it holds or `within` has passed; true when it held.
pub async fn wait_until<F: std::future::Future<Output = bool>>(within: Duration, mut check: impl FnMut() -> F) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

//! A pool agent binary (`edgeshell-pool-agent`) as a real process, dialing out to the edge and serving
//! health on a loopback port, running its runners as local processes; killed on drop (its runners end
//! once its lease lapses, 5 s later). Its logs are drained, errors always shown, everything with
//! `EDGESHELL_TEST_LOGS` set.

use edgeshell_core::secret::Secret;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Whom the agent trusts and reports to, and how it runs sessions.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Its region.
    pub region: String,
    /// The control plane's `iss`.
    pub token_issuer: String,
    /// The control plane's JWKS.
    pub jwks_url: String,
    /// The control plane's base URL (heartbeats).
    pub control_url: String,
    /// The edge the agent dials out to (`http://127.0.0.1:<port>` of `wrangler dev` or a room host).
    pub edge_url: String,
    /// The agent's name in its region (unique among its siblings).
    pub agent: String,
    /// The pool's API key.
    pub api_key: Secret,
    /// Where it records its runners.
    pub state_dir: PathBuf,
    /// The session program.
    pub session_command: String,
    /// The pool's template catalogue (`EDGESHELL_POOL_TEMPLATES`), when it has one.
    pub templates: Option<PathBuf>,
    /// More variables every start of this agent gets (e.g. `EDGESHELL_GIT_CA_FILE`).
    pub env: Vec<(String, String)>,
}

/// A running agent.
pub struct PoolAgent {
    /// The process.
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its process id.
    pub pid: i32,
    /// The API key it was given (also guards its read routes).
    pub api_key: Secret,
    /// Its name in its region.
    pub name: String,
}

impl Drop for PoolAgent {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PoolAgent {
    /// Starts `bin` with `settings` plus `extra` variables and waits until it serves and is connected to
    /// the edge. The runners are `bin runner` (the agent embeds the runner); the sample CLI and
    /// `edgeshell-files` beside `bin`, when built, are offered to every session (on its `PATH`), as the
    /// runner image installs them.
    pub async fn spawn(bin: &Path, settings: &AgentSettings, extra: &[(&str, &str)]) -> anyhow::Result<PoolAgent> {
        let port = free_port()?;
        let mut command = tokio::process::Command::new(bin);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("EDGESHELL_POOL_REGION", &settings.region)
            .env("EDGESHELL_POOL_LISTEN", format!("127.0.0.1:{port}"))
            .env("EDGESHELL_CONTROL_URL", &settings.control_url)
            .env("EDGESHELL_POOL_EDGE_URL", &settings.edge_url)
            .env("EDGESHELL_POOL_AGENT_NAME", &settings.agent)
            .env("EDGESHELL_POOL_API_KEY", settings.api_key.expose())
            .env("EDGESHELL_TOKEN_ISSUER", &settings.token_issuer)
            .env("EDGESHELL_JWKS_URL", &settings.jwks_url)
            .env("EDGESHELL_POOL_STATE_DIR", &settings.state_dir)
            .env("EDGESHELL_RUNNER_COMMAND", format!("{} runner", bin.display()))
            .env("EDGESHELL_SESSION_COMMAND", &settings.session_command)
            .env("EDGESHELL_LOG", "info")
            // Runners outlive a killed agent only briefly here: a test's stack leaves nothing running
            // for long (`extra` may set a longer window).
            .env("EDGESHELL_POOL_ADOPT_WITHIN_SECS", "5")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(templates) = &settings.templates {
            command.env("EDGESHELL_POOL_TEMPLATES", templates);
        }
        command.envs(settings.env.iter().map(|(k, v)| (k, v)));
        let tools: Vec<String> = ["edgeshell-sample-cli", "edgeshell-files"]
            .into_iter()
            .map(|name| bin.with_file_name(name))
            .filter(|tool| tool.exists())
            .map(|tool| tool.display().to_string())
            .collect();
        if !tools.is_empty() {
            command.env("EDGESHELL_RUNNER_TOOLS", tools.join(","));
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command.spawn()?;
        let pid = child.id().ok_or_else(|| anyhow::anyhow!("the agent exited at once"))? as i32;
        let stderr = child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr pipe"))?;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let name = settings.agent.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if crate::dev_setting("EDGESHELL_TEST_LOGS").is_some() || line.contains("\"level\":\"ERROR\"") {
                    eprintln!("agent {name}: {line}");
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..800 {
            // Serving is not enough: commands reach it only once it is connected to the edge (its metrics
            // say so, whatever its log level).
            let metrics = match http.get(format!("{url}/metrics")).send().await {
                Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
                _ => String::new(),
            };
            if metrics.lines().any(|l| l.starts_with("edgeshell_pool_edge_connected{") && l.ends_with(" 1")) {
                let name = settings.agent.clone();
                return Ok(PoolAgent { child, url, pid, api_key: settings.api_key.clone(), name });
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("the agent exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the agent did not serve and connect to the edge at {} within 40 s", settings.edge_url)
    }

    /// The runners the agent lists.
    pub async fn runners(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let url = format!("{}/v1/runners", self.url);
        let response = reqwest::Client::new().get(url).bearer_auth(self.api_key.expose()).send().await?;
        anyhow::ensure!(response.status() == 200, "GET /v1/runners: HTTP {}", response.status());
        let body: serde_json::Value = response.json().await?;
        Ok(body["runners"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until the agent lists `n` runners (up to 10 s).
    pub async fn wait_for_runners(&self, n: usize) -> anyhow::Result<()> {
        for _ in 0..200 {
            if self.runners().await?.len() == n {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the agent never listed {n} runners: {:?}", self.runners().await?)
    }
}

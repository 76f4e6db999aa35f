//! The agent's configuration, from its environment (twelve-factor; the Kubernetes Deployment sets these
//! from a ConfigMap and the API key from a Secret). README.md lists every variable.

use crate::backend::kubernetes::objects::KubernetesOptions;
use crate::backend::local::LocalOptions;
use crate::backend::RunnerLimits;
use edgeshell_core::ids::RegionId;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Every variable the agent reads (besides `EDGESHELL_LOG` and `EDGESHELL_LOG_FORMAT`), for checks
/// that deployment files name only real settings.
pub const VARIABLES: [&str; 23] = [
    "EDGESHELL_CONTROL_URL",
    "EDGESHELL_JWKS_URL",
    "EDGESHELL_K8S_NAMESPACE",
    "EDGESHELL_PASS_ENV",
    "EDGESHELL_POOL_API_KEY",
    "EDGESHELL_POOL_API_KEY_FILE",
    "EDGESHELL_POOL_BACKEND",
    "EDGESHELL_POOL_CAPACITY",
    "EDGESHELL_POOL_ENDPOINT",
    "EDGESHELL_POOL_LISTEN",
    "EDGESHELL_POOL_REGION",
    "EDGESHELL_POOL_STATE_DIR",
    "EDGESHELL_RUNNER_COMMAND",
    "EDGESHELL_RUNNER_CPU_MILLIS",
    "EDGESHELL_RUNNER_EGRESS_CIDRS",
    "EDGESHELL_RUNNER_IDLE_TIMEOUT_SECS",
    "EDGESHELL_RUNNER_IMAGE",
    "EDGESHELL_RUNNER_MAX_RUNTIME_SECS",
    "EDGESHELL_RUNNER_MEMORY_MB",
    "EDGESHELL_RUNNER_PROCESS_LIMIT",
    "EDGESHELL_RUNNER_WORK_ROOT",
    "EDGESHELL_SESSION_COMMAND",
    "EDGESHELL_TOKEN_ISSUER",
];

/// Why the agent cannot start: the runner's configuration error, as both read `EDGESHELL_*` variables.
pub use edgeshell_runner::settings::ConfigError;

/// Where runners run.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// Local processes.
    Local(LocalOptions),
    /// Kubernetes Jobs.
    Kubernetes(KubernetesOptions),
}

/// Everything the agent needs.
#[derive(Clone)]
pub struct AgentConfig {
    /// The pool's region.
    pub region: RegionId,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Where the control plane reaches the API (`http(s)://host[:port]`).
    pub endpoint: String,
    /// The control functions' base URL.
    pub control_url: String,
    /// The pool API key (`esp_...`), a secret.
    pub api_key: String,
    /// The `iss` of the control plane's tokens.
    pub token_issuer: String,
    /// Where the control plane publishes its keys.
    pub jwks_url: String,
    /// Runners the pool holds at most.
    pub capacity: u32,
    /// Per-runner limits.
    pub limits: RunnerLimits,
    /// The backend.
    pub backend: BackendConfig,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("region", &self.region)
            .field("listen", &self.listen)
            .field("endpoint", &self.endpoint)
            .field("control_url", &self.control_url)
            .field("token_issuer", &self.token_issuer)
            .field("capacity", &self.capacity)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Reads the configuration through `var` (the process environment in production).
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<AgentConfig, ConfigError> {
    let required = |name: &'static str| var(name).filter(|v| !v.trim().is_empty()).ok_or(ConfigError::Missing(name));
    let invalid = |name: &'static str, why: String| ConfigError::Invalid { name, why };
    let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
        match var(name) {
            Some(v) => v.trim().parse().map_err(|e| invalid(name, format!("{v:?}: {e}"))),
            None => Ok(default),
        }
    };
    let region = RegionId::new(required("EDGESHELL_POOL_REGION")?)
        .map_err(|e| invalid("EDGESHELL_POOL_REGION", e.to_string()))?;
    let listen_text = var("EDGESHELL_POOL_LISTEN").unwrap_or_else(|| "127.0.0.1:7100".into());
    let listen: SocketAddr =
        listen_text.parse().map_err(|e| invalid("EDGESHELL_POOL_LISTEN", format!("{listen_text:?}: {e}")))?;
    let endpoint = var("EDGESHELL_POOL_ENDPOINT").unwrap_or_else(|| format!("http://{listen}"));
    edgeshell_core::pool_api::check_endpoint(&endpoint)
        .map_err(|e| invalid("EDGESHELL_POOL_ENDPOINT", e.to_string()))?;
    let control_url = required("EDGESHELL_CONTROL_URL")?.trim_end_matches('/').to_owned();
    if !(control_url.starts_with("http://") || control_url.starts_with("https://")) {
        return Err(invalid("EDGESHELL_CONTROL_URL", "must be an http(s) URL".into()));
    }
    let api_key = match (var("EDGESHELL_POOL_API_KEY"), var("EDGESHELL_POOL_API_KEY_FILE")) {
        (Some(key), _) => key,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| invalid("EDGESHELL_POOL_API_KEY_FILE", format!("{path}: {e}")))?
            .trim()
            .to_owned(),
        (None, None) => return Err(ConfigError::Missing("EDGESHELL_POOL_API_KEY or EDGESHELL_POOL_API_KEY_FILE")),
    };
    if !api_key.starts_with(edgeshell_core::pool_api::API_KEY_PREFIX) {
        return Err(invalid(
            "EDGESHELL_POOL_API_KEY",
            "not a pool API key (esp_...); make one with `edgeshell-db pool-key add`".into(),
        ));
    }
    let limits = RunnerLimits {
        max_runtime: Duration::from_secs(number("EDGESHELL_RUNNER_MAX_RUNTIME_SECS", 3600)?),
        memory_mb: number("EDGESHELL_RUNNER_MEMORY_MB", 1024)?,
        process_limit: number("EDGESHELL_RUNNER_PROCESS_LIMIT", 256)?,
        idle_timeout: Duration::from_secs(number("EDGESHELL_RUNNER_IDLE_TIMEOUT_SECS", 900)?),
        cpu_millis: number("EDGESHELL_RUNNER_CPU_MILLIS", 1000)? as u32,
    };
    let session_command = var("EDGESHELL_SESSION_COMMAND").filter(|c| !c.trim().is_empty());
    let backend = match var("EDGESHELL_POOL_BACKEND").as_deref().unwrap_or("local") {
        "local" => {
            let state_dir =
                PathBuf::from(var("EDGESHELL_POOL_STATE_DIR").unwrap_or_else(|| "/var/lib/edgeshell-pool".into()));
            BackendConfig::Local(LocalOptions {
                runner_command: runner_command(var("EDGESHELL_RUNNER_COMMAND"))?,
                work_root: var("EDGESHELL_RUNNER_WORK_ROOT")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| state_dir.join("work")),
                state_dir,
                session_command,
                pass_env: list(var("EDGESHELL_PASS_ENV")),
                limits: limits.clone(),
            })
        }
        "kubernetes" => BackendConfig::Kubernetes(KubernetesOptions {
            namespace: required("EDGESHELL_K8S_NAMESPACE")?,
            region: region.clone(),
            image: required("EDGESHELL_RUNNER_IMAGE")?,
            session_command,
            limits: limits.clone(),
            egress_cidrs: list(var("EDGESHELL_RUNNER_EGRESS_CIDRS")),
        }),
        other => return Err(invalid("EDGESHELL_POOL_BACKEND", format!("{other:?}: use local or kubernetes"))),
    };
    Ok(AgentConfig {
        jwks_url: var("EDGESHELL_JWKS_URL").unwrap_or_else(|| format!("{control_url}/.well-known/jwks.json")),
        region,
        listen,
        endpoint,
        control_url,
        api_key,
        token_issuer: required("EDGESHELL_TOKEN_ISSUER")?,
        capacity: number("EDGESHELL_POOL_CAPACITY", 16)? as u32,
        limits,
        backend,
    })
}

/// A comma-separated list, blanks dropped.
fn list(value: Option<String>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// The runner command: `EDGESHELL_RUNNER_COMMAND` (program and leading arguments), else an
/// `edgeshell-runner` beside the agent's executable, else the agent itself (`edgeshell-pool-agent
/// runner` embeds the runner).
fn runner_command(configured: Option<String>) -> Result<Vec<String>, ConfigError> {
    if let Some(text) = configured {
        let words: Vec<String> = text.split_whitespace().map(String::from).collect();
        if words.is_empty() {
            return Err(ConfigError::Invalid { name: "EDGESHELL_RUNNER_COMMAND", why: "empty".into() });
        }
        return Ok(words);
    }
    let me = std::env::current_exe()
        .map_err(|e| ConfigError::Invalid { name: "EDGESHELL_RUNNER_COMMAND", why: format!("own path: {e}") })?;
    let sibling = me.with_file_name("edgeshell-runner");
    Ok(if sibling.is_file() {
        vec![sibling.to_string_lossy().into_owned()]
    } else {
        vec![me.to_string_lossy().into_owned(), "runner".into()]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<AgentConfig, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_env(|k| vars.get(k).cloned())
    }

    const BASE: [(&str, &str); 4] = [
        ("EDGESHELL_POOL_REGION", "eu"),
        ("EDGESHELL_CONTROL_URL", "http://127.0.0.1:3000/"),
        ("EDGESHELL_POOL_API_KEY", "esp_k1_secret"),
        ("EDGESHELL_TOKEN_ISSUER", "https://control.test"),
    ];

    #[test]
    fn the_variable_list_is_what_the_code_reads() {
        // The code after the list itself, up to the tests.
        let source = include_str!("config.rs");
        let after_list = source.find("/// Why the agent cannot start").unwrap();
        let code = &source[after_list..source.find("#[cfg(test)]").unwrap()];
        let mut read: Vec<&str> = code
            .match_indices("\"EDGESHELL_")
            .map(|(i, _)| {
                let name = &code[i + 1..];
                &name[..name.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap()]
            })
            .collect();
        read.sort();
        read.dedup();
        let mut listed = VARIABLES.to_vec();
        listed.sort();
        assert_eq!(read, listed);
    }

    #[test]
    fn defaults_and_derived_values() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:7100");
        assert_eq!(c.jwks_url, "http://127.0.0.1:3000/.well-known/jwks.json");
        assert_eq!((c.capacity, c.limits.memory_mb), (16, 1024));
        assert!(matches!(c.backend, BackendConfig::Local(_)));
        assert!(!format!("{c:?}").contains("secret"), "the API key is never printed");
    }

    #[test]
    fn refuses_what_cannot_work() {
        let with = |extra: (&'static str, &'static str)| {
            let mut v: Vec<(&str, &str)> = BASE.iter().copied().filter(|(k, _)| *k != extra.0).collect();
            v.push(extra);
            config(&v)
        };
        assert!(matches!(with(("EDGESHELL_POOL_REGION", "EU West")), Err(ConfigError::Invalid { .. })));
        assert!(matches!(with(("EDGESHELL_POOL_API_KEY", "hunter2")), Err(ConfigError::Invalid { .. })));
        assert!(matches!(with(("EDGESHELL_POOL_ENDPOINT", "http://x/path")), Err(ConfigError::Invalid { .. })));
        assert!(matches!(with(("EDGESHELL_POOL_CAPACITY", "lots")), Err(ConfigError::Invalid { .. })));
        assert!(matches!(with(("EDGESHELL_POOL_BACKEND", "docker")), Err(ConfigError::Invalid { .. })));
        assert!(matches!(with(("EDGESHELL_POOL_BACKEND", "kubernetes")), Err(ConfigError::Missing(_))));
        assert!(matches!(config(&BASE[1..]), Err(ConfigError::Missing("EDGESHELL_POOL_REGION"))));
    }
}

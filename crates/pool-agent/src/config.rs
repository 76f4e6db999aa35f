//! The agent's configuration, from its environment (twelve-factor; the Kubernetes Deployment sets these
//! from a ConfigMap and the pool key from a Secret). The settings, their defaults and meanings are the
//! core's catalogue (`edgeshell_core::settings::POOL_AGENT`, listed in docs/configuration.md).

use crate::backend::kubernetes::objects::KubernetesOptions;
use crate::backend::local::LocalOptions;
use crate::backend::RunnerLimits;
use edgeshell_core::ids::RegionId;
use edgeshell_core::settings::{Program, Reader, SettingsError};
use edgeshell_core::templates::Catalogue;
use edgeshell_platform::environment::Environment;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the agent cannot start: a setting is missing or unusable.
pub type ConfigError = SettingsError;

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
    /// The agent's name in its region (unique among the region's agents; the pod's name on Kubernetes).
    pub agent: String,
    /// Where health and metrics listen (inside the pod only: nothing takes commands here).
    pub listen: SocketAddr,
    /// The edge the agent dials out to (`https://`, or `http://` on this machine).
    pub edge_url: String,
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
    /// The session templates the pool offers (its region's).
    pub catalogue: Catalogue,
    /// The backend.
    pub backend: BackendConfig,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("region", &self.region)
            .field("agent", &self.agent)
            .field("listen", &self.listen)
            .field("edge_url", &self.edge_url)
            .field("control_url", &self.control_url)
            .field("token_issuer", &self.token_issuer)
            .field("capacity", &self.capacity)
            .field("templates", &self.catalogue.templates.len())
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Reads the configuration through `var` (the process environment in production).
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<AgentConfig, ConfigError> {
    let env = Environment::from_lookup(Program::PoolAgent, var)?;
    let lookup = env.lookup();
    let settings = Reader::new(Program::PoolAgent, &lookup);
    let region = RegionId::new(settings.required("EDGESHELL_POOL_REGION")?)
        .map_err(|e| settings.invalid("EDGESHELL_POOL_REGION", e.to_string()))?;
    let listen: SocketAddr =
        settings.parse("EDGESHELL_POOL_LISTEN")?.ok_or(SettingsError::Missing("EDGESHELL_POOL_LISTEN"))?;
    // The agent presents its key there and takes commands from it: https, or this machine.
    let edge_url = settings
        .service_url("EDGESHELL_POOL_EDGE_URL")?
        .ok_or(SettingsError::Missing("EDGESHELL_POOL_EDGE_URL"))?
        .trim_end_matches('/')
        .to_owned();
    let agent = match settings.text("EDGESHELL_POOL_AGENT_NAME")? {
        Some(name) => name,
        None => rustix::system::uname().nodename().to_string_lossy().to_ascii_lowercase(),
    };
    edgeshell_core::pool_api::check_agent_name(&agent).map_err(|e| settings.invalid("EDGESHELL_POOL_AGENT_NAME", e))?;
    // The agent sends its API key there and trusts the keys it publishes: https, or this machine.
    let control_url =
        settings.service_url("EDGESHELL_CONTROL_URL")?.ok_or(SettingsError::Missing("EDGESHELL_CONTROL_URL"))?;
    let api_key = settings.required("EDGESHELL_POOL_API_KEY")?;
    if !api_key.starts_with(edgeshell_core::pool_api::API_KEY_PREFIX) {
        let why = "not a pool API key (esp_...); make one with `edgeshell-db pool-key add`";
        return Err(settings.invalid("EDGESHELL_POOL_API_KEY", why));
    }
    let limits = RunnerLimits {
        max_runtime: settings.secs("EDGESHELL_RUNNER_MAX_RUNTIME_SECS")?,
        memory_mb: settings.number("EDGESHELL_RUNNER_MEMORY_MB")?,
        process_limit: settings.number("EDGESHELL_RUNNER_PROCESS_LIMIT")?,
        cpu_millis: settings.number("EDGESHELL_RUNNER_CPU_MILLIS")?,
        screen: settings.choice("EDGESHELL_RUNNER_SCREEN", &["on", "off"])? == 0,
    };
    let session_command = settings.text("EDGESHELL_SESSION_COMMAND")?;
    let catalogue = match settings.text("EDGESHELL_POOL_TEMPLATES")? {
        None => Catalogue::single(None),
        Some(path) => {
            let json = std::fs::read_to_string(&path)
                .map_err(|e| settings.invalid("EDGESHELL_POOL_TEMPLATES", format!("reading {path}: {e}")))?;
            Catalogue::parse(&json).map_err(|e| settings.invalid("EDGESHELL_POOL_TEMPLATES", e.to_string()))?
        }
    };
    if catalogue.offered_in(&region).next().is_none() {
        return Err(settings.invalid("EDGESHELL_POOL_TEMPLATES", format!("no template is offered in region {region}")));
    }
    let backend = match settings.choice("EDGESHELL_POOL_BACKEND", &["local", "kubernetes"])? {
        0 => {
            let state_dir = PathBuf::from(settings.required("EDGESHELL_POOL_STATE_DIR")?);
            let adopt_within = settings.secs("EDGESHELL_POOL_ADOPT_WITHIN_SECS")?;
            if adopt_within < edgeshell_core::agent_lease::MIN_WINDOW {
                return Err(settings.invalid("EDGESHELL_POOL_ADOPT_WITHIN_SECS", "must be 3 seconds or more"));
            }
            BackendConfig::Local(LocalOptions {
                runner_command: runner_command(&settings)?,
                work_root: settings
                    .text("EDGESHELL_RUNNER_WORK_ROOT")?
                    .map(PathBuf::from)
                    .unwrap_or_else(|| state_dir.join("work")),
                state_dir,
                session_command,
                pass_env: settings.list("EDGESHELL_PASS_ENV")?,
                limits: limits.clone(),
                first_uid: settings.number("EDGESHELL_RUNNER_FIRST_UID")?,
                tools: settings.list("EDGESHELL_RUNNER_TOOLS")?.into_iter().map(PathBuf::from).collect(),
                adopt_within,
            })
        }
        _ => BackendConfig::Kubernetes(KubernetesOptions {
            namespace: settings
                .text("EDGESHELL_K8S_NAMESPACE")?
                .ok_or(SettingsError::Missing("EDGESHELL_K8S_NAMESPACE"))?,
            region: region.clone(),
            agent: agent.clone(),
            image: settings.text("EDGESHELL_RUNNER_IMAGE")?.ok_or(SettingsError::Missing("EDGESHELL_RUNNER_IMAGE"))?,
            session_command,
            limits: limits.clone(),
            egress_cidrs: settings.list("EDGESHELL_RUNNER_EGRESS_CIDRS")?,
        }),
    };
    if let (BackendConfig::Local(_), Some(t)) = (&backend, catalogue.offered_in(&region).find(|t| t.bundle.is_some())) {
        let why = format!(
            "template {} installs a bundle, which only the kubernetes backend does; locally, offer the CLI with \
             EDGESHELL_RUNNER_TOOLS",
            t.name
        );
        return Err(settings.invalid("EDGESHELL_POOL_TEMPLATES", why));
    }
    Ok(AgentConfig {
        jwks_url: settings
            .service_url("EDGESHELL_JWKS_URL")?
            .unwrap_or_else(|| format!("{control_url}/.well-known/jwks.json")),
        region,
        agent,
        listen,
        edge_url,
        control_url,
        api_key,
        token_issuer: settings.required("EDGESHELL_TOKEN_ISSUER")?,
        capacity: settings.number("EDGESHELL_POOL_CAPACITY")?,
        limits,
        catalogue,
        backend,
    })
}

/// The runner command: `EDGESHELL_RUNNER_COMMAND` (program and leading arguments), else an
/// `edgeshell-runner` beside the agent's executable, else the agent itself (`edgeshell-pool-agent
/// runner` embeds the runner).
fn runner_command(settings: &Reader<'_>) -> Result<Vec<String>, ConfigError> {
    if let Some(text) = settings.text("EDGESHELL_RUNNER_COMMAND")? {
        return Ok(text.split_whitespace().map(String::from).collect());
    }
    let me =
        std::env::current_exe().map_err(|e| settings.invalid("EDGESHELL_RUNNER_COMMAND", format!("own path: {e}")))?;
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

    const BASE: [(&str, &str); 6] = [
        ("EDGESHELL_POOL_REGION", "eu"),
        ("EDGESHELL_POOL_EDGE_URL", "http://127.0.0.1:8787/"),
        ("EDGESHELL_POOL_AGENT_NAME", "eu-a"),
        ("EDGESHELL_CONTROL_URL", "http://127.0.0.1:3000/"),
        ("EDGESHELL_POOL_API_KEY", "esp_k1_secret"),
        ("EDGESHELL_TOKEN_ISSUER", "https://control.test"),
    ];

    #[test]
    fn defaults_and_derived_values() {
        let c = config(&BASE).unwrap();
        assert_eq!((c.edge_url.as_str(), c.agent.as_str()), ("http://127.0.0.1:8787", "eu-a"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:7100");
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
        assert!(matches!(with(("EDGESHELL_POOL_AGENT_NAME", "Agent A")), Err(ConfigError::Invalid { .. })));
        assert!(matches!(
            with(("EDGESHELL_POOL_EDGE_URL", "http://edge.example.com")),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(with(("EDGESHELL_POOL_CAPACITY", "lots")), Err(ConfigError::Invalid { .. })));
        assert!(matches!(with(("EDGESHELL_POOL_BACKEND", "docker")), Err(ConfigError::Invalid { .. })));
        assert!(matches!(with(("EDGESHELL_POOL_ADOPT_WITHIN_SECS", "2")), Err(ConfigError::Invalid { .. })));
        assert!(with(("EDGESHELL_POOL_ADOPT_WITHIN_SECS", "3")).is_ok());
        assert!(matches!(with(("EDGESHELL_POOL_BACKEND", "kubernetes")), Err(ConfigError::Missing(_))));
        assert_eq!(config(&BASE[1..]).unwrap_err(), ConfigError::Missing("EDGESHELL_POOL_REGION"));
        let without_edge: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != "EDGESHELL_POOL_EDGE_URL").collect();
        assert_eq!(config(&without_edge).unwrap_err(), ConfigError::Missing("EDGESHELL_POOL_EDGE_URL"));
        // The agent's key and the keys it trusts never cross plain HTTP beyond this machine.
        for (name, url) in [
            ("EDGESHELL_CONTROL_URL", "http://control.example.com"),
            ("EDGESHELL_JWKS_URL", "http://control.example.com/.well-known/jwks.json"),
            ("EDGESHELL_CONTROL_URL", "https://user:pw@control.example.com"),
        ] {
            assert!(matches!(with((name, url)), Err(ConfigError::Invalid { .. })), "{name}={url}");
        }
        assert!(with(("EDGESHELL_JWKS_URL", "https://control.example.com/.well-known/jwks.json")).is_ok());
    }

    #[test]
    fn a_catalogue_file_is_read_checked_and_must_offer_something_here() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, json: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, json).unwrap();
            path.to_string_lossy().into_owned()
        };
        let with_file = |path: &str| {
            let mut v: Vec<(&str, &str)> = BASE.to_vec();
            v.push(("EDGESHELL_POOL_TEMPLATES", path));
            config(&v)
        };
        assert_eq!(config(&BASE).unwrap().catalogue.templates[0].name, "default");
        let good = file("good.json", r#"{"templates": [{"name": "claude-code", "title": "Claude Code"}]}"#);
        assert_eq!(with_file(&good).unwrap().catalogue.templates[0].name, "claude-code");
        let invalid = |path: &str, needle: &str| match with_file(path) {
            Err(e @ ConfigError::Invalid { name: "EDGESHELL_POOL_TEMPLATES", .. }) => {
                assert!(e.to_string().contains(needle), "{e}")
            }
            other => panic!("{path}: {other:?}"),
        };
        invalid(&dir.path().join("missing.json").to_string_lossy(), "reading");
        invalid(&file("bad.json", r#"{"templates": [{"name": "x", "title": "x", "env": ["PATH"]}]}"#), "PATH");
        invalid(&file("us.json", r#"{"templates": [{"name": "x", "title": "x", "regions": ["us"]}]}"#), "region eu");
        let bundle = r#"{"templates": [{"name": "x", "title": "x", "bundle": {"url": "https://b.example/x.tar",
            "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}}]}"#;
        invalid(&file("bundle.json", bundle), "kubernetes backend");
    }
}

//! The edgeshell pool agent: one or more per region. It dials out to its region's pool room at the edge
//! and heartbeats to the control plane (it listens on nothing reachable from outside its pod), starts
//! one runner per session on commands the control plane signed, enforces per-runner limits, and reaps
//! runners whose session ended or whose deadline passed; a restarted agent adopts its healthy runners.
//!
//! - [`config`]: settings from the environment.
//! - [`dial`]: the outbound connection commands arrive on; [`commands`]: verifying them against the
//!   control plane's JWKS.
//! - [`agent`]: the runner table and the start/stop/sweep decisions.
//! - [`backend`]: where runners run (local processes, Kubernetes Jobs).
//! - [`api`]: health, metrics, the operator's views; [`heartbeat`]: reporting to the control plane;
//!   [`metrics`]: Prometheus.

pub mod agent;
pub mod api;
pub mod backend;
pub mod commands;
pub mod config;
pub mod dial;
pub mod heartbeat;
pub mod metrics;
pub mod secrets;

use agent::Agent;
use backend::kubernetes::KubernetesBackend;
use backend::local::LocalBackend;
use backend::RunnerBackend;
use config::{AgentConfig, BackendConfig};
use secrets::SecretsClient;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;

/// Runs the agent until `shutdown` completes, then drains: stops taking sessions, leaves its runners
/// to the next agent, and reports.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    match config.backend.clone() {
        BackendConfig::Local(options) => serve(config, LocalBackend::new(options)?, shutdown).await,
        BackendConfig::Kubernetes(options) => serve(config, KubernetesBackend::connect(options).await?, shutdown).await,
    }
}

async fn serve<B: RunnerBackend>(
    config: AgentConfig,
    backend: B,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Redirects are never followed: the keys come from the configured origin and the API key goes
    // only there (a 3xx is a failure like any other answer but 200).
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let agent = Arc::new(
        Agent::new(config.region.clone(), config.capacity, config.limits.clone(), config.catalogue.clone(), backend)
            .with_secrets(SecretsClient::new(&config.control_url, &config.api_key, http.clone())),
    );
    let (adopted, reaped) = agent.recover().await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(
        region = %config.region,
        agent = %config.agent,
        backend = agent.backend_kind(),
        listen = %listener.local_addr()?,
        edge = %config.edge_url,
        capacity = config.capacity,
        adopted,
        reaped,
        "pool agent serving"
    );
    let commands =
        Arc::new(commands::CommandCheck::new(&config.token_issuer, &config.region, &config.jwks_url, http.clone()));
    let api = Arc::new(api::Api { agent: agent.clone(), api_key_sha256: Sha256::digest(&config.api_key).into() });
    let server = tokio::spawn(api::serve(api, listener));
    let dialer = dial::Dialer::new(
        &config.edge_url,
        &config.region,
        edgeshell_core::secret::Secret::new(config.api_key.clone()),
        config.agent.clone(),
    );
    let reporter = heartbeat::Reporter {
        url: format!("{}{}", config.control_url, heartbeat::HEARTBEAT_PATH),
        api_key: config.api_key.clone(),
        agent: config.agent.clone(),
        http,
    };
    let sweeper = async {
        loop {
            agent.sweep().await;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    };
    tokio::select! {
        _ = shutdown => tracing::info!("shutting down: draining"),
        _ = reporter.run(&agent) => {}
        _ = dialer.run(agent.clone(), commands) => {}
        _ = sweeper => {}
    }
    agent.drain().await;
    let _ = reporter.beat(&agent).await;
    server.abort();
    tracing::info!("pool agent stopped");
    Ok(())
}

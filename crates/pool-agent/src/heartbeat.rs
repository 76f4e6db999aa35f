//! Heartbeats: every interval the agent tells the control plane its region, name, capacity, load and
//! runners (placement across regions reads them), authenticated with the pool key; the answer names runners whose
//! session ended or is unknown, and the agent stops them (orphans are reaped even if a stop command was
//! lost). Failures back off; a refused key is logged loudly, because the pool is out of placement
//! until it is fixed.

use crate::agent::Agent;
use crate::backend::RunnerBackend;
use edgeshell_core::machine::{Backoff, Jitter};
use edgeshell_core::pool_api::{Heartbeat, HeartbeatAnswer};
use std::time::Duration;

/// Retries of failed heartbeats.
const RETRY: Backoff =
    Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(30), floor: Duration::from_millis(500) };

/// The control plane's heartbeat route.
pub const HEARTBEAT_PATH: &str = "/api/pools/heartbeat";

/// Where and how to report.
pub struct Reporter {
    /// `{control}/api/pools/heartbeat`.
    pub url: String,
    /// The pool API key.
    pub api_key: String,
    /// The agent's name in its region.
    pub agent: String,
    /// The HTTP client.
    pub http: reqwest::Client,
}

/// What one heartbeat achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Accepted; report again after this long.
    Accepted(Duration),
    /// Refused or failed; try again after this long.
    Failed(Duration),
}

impl Reporter {
    /// Sends one heartbeat and stops the runners the answer names.
    pub async fn beat<B: RunnerBackend>(&self, agent: &Agent<B>) -> Beat {
        let heartbeat = Heartbeat {
            region: agent.region().clone(),
            agent: self.agent.clone(),
            capacity: agent.capacity(),
            load: agent.load(),
            draining: agent.draining(),
            runners: agent.runners().into_iter().map(|r| r.session_id).collect(),
            templates: agent.offers(),
        };
        let sent = self
            .http
            .post(&self.url)
            .bearer_auth(&self.api_key)
            .json(&heartbeat)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                agent.metrics.heartbeat(false);
                tracing::warn!(error = %e, url = %self.url, "heartbeat failed");
                return Beat::Failed(Duration::from_secs(1));
            }
        };
        let status = response.status().as_u16();
        if status == 429 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs);
            return Beat::Failed(wait);
        }
        if !(200..300).contains(&status) {
            agent.metrics.heartbeat(false);
            let body = response.text().await.unwrap_or_default();
            if status == 401 || status == 403 {
                tracing::error!(status, %body, "the control plane refused this pool's API key or region; no sessions will be placed here");
                return Beat::Failed(Duration::from_secs(5));
            }
            tracing::warn!(status, %body, "heartbeat refused");
            return Beat::Failed(Duration::from_secs(1));
        }
        let answer: HeartbeatAnswer = match response.json().await {
            Ok(a) => a,
            Err(e) => {
                agent.metrics.heartbeat(false);
                tracing::warn!(error = %e, "unreadable heartbeat answer");
                return Beat::Failed(Duration::from_secs(1));
            }
        };
        agent.metrics.heartbeat(true);
        for sid in answer.stop {
            if let Err(e) = agent.stop(&sid, "the control plane does not know the session as live").await {
                tracing::warn!(session = %sid, error = %e, "stopping an orphan failed");
            }
        }
        Beat::Accepted(Duration::from_millis(answer.next_heartbeat_ms.clamp(200, 30_000)))
    }

    /// Heartbeats forever (until the task is dropped). Failures are retried after the core's
    /// [`Backoff`] (full jitter, so a region's agents do not come back in lockstep), never sooner than
    /// the failure asks (`Retry-After`).
    pub async fn run<B: RunnerBackend>(&self, agent: &Agent<B>) {
        let mut jitter = Jitter::new(rand::random());
        let mut failures = 0u32;
        loop {
            let wait = match self.beat(agent).await {
                Beat::Accepted(d) => {
                    failures = 0;
                    d
                }
                Beat::Failed(at_least) => {
                    failures = failures.saturating_add(1);
                    RETRY.delay(failures, jitter.next_u32()).max(at_least)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

//! A session's secrets, fetched at its start: the values of the secrets its template takes, from the
//! session's owner's (`POST {control}/api/pools/secrets`, the pool key as `Bearer`). The control plane
//! answers only for a live session of this pool's region. Values are held as `Secret`s and go only into
//! the runner's environment (locally) or a Secret the Job owns (Kubernetes): never a command, a log or
//! a file of the agent.

use edgeshell_core::ids::SessionId;
use edgeshell_core::pool_api::{PoolSecrets, PoolSecretsRequest, POOL_SECRETS_PATH};
use edgeshell_core::secret::Secret;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where and how to fetch.
#[derive(Clone)]
pub struct SecretsClient {
    url: String,
    api_key: String,
    http: reqwest::Client,
}

impl SecretsClient {
    /// A client of `control_url`, with the pool key; `http` follows no redirect.
    pub fn new(control_url: &str, api_key: &str, http: reqwest::Client) -> SecretsClient {
        SecretsClient {
            url: format!("{}{POOL_SECRETS_PATH}", control_url.trim_end_matches('/')),
            api_key: api_key.to_owned(),
            http,
        }
    }

    /// The values of `names` among the owner's secrets of `session` (those set; others are left out).
    pub async fn fetch(&self, session: &SessionId, names: &[String]) -> Result<BTreeMap<String, Secret>, String> {
        let request = PoolSecretsRequest { session_id: session.clone(), names: names.to_vec() };
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.api_key)
            .json(&request)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("fetching the session's secrets: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "fetching the session's secrets: {status}: {}",
                body.chars().take(300).collect::<String>()
            ));
        }
        let answer: PoolSecrets = response.json().await.map_err(|e| format!("the secrets' answer: {e}"))?;
        Ok(answer.env.into_iter().filter(|(name, _)| names.contains(name)).collect())
    }
}

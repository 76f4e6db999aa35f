//! Accepting only commands the control plane signed: the `Authorization: Bearer` token must be a
//! `pool:command` token from the configured issuer for this region's audience, signed by a key in the
//! control plane's published JWKS (fetched and cached under the core's cache policy, verified with
//! `ring`) and bound to the exact body. A start's token is used only once; a stop may come again (the
//! edge's pool room resends a stop until it is answered, and stopping is idempotent).

use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::ids::{Jti, RegionId, SessionId};
use edgeshell_core::issue::{check_body, pool_audience};
use edgeshell_core::jwks::cache::{CachePolicy, JwksCache, Lookup};
use edgeshell_core::jwks::{JwksError, KeySet};
use edgeshell_core::pool_api::PoolCommand;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{Expectation, Scope, TokenError, UntrustedToken, ValidationOptions, Validator};
use edgeshell_keys::RingVerifier;
use std::collections::HashMap;
use std::sync::Mutex;

/// Verifies commands for one region.
pub struct CommandCheck {
    validator: Validator,
    jwks_url: String,
    http: reqwest::Client,
    cache: Mutex<JwksCache>,
    /// Command ids already used, with their expiry (seconds), forgotten after it.
    seen: Mutex<HashMap<Jti, u64>>,
}

impl CommandCheck {
    /// Commands from `issuer` for `region`, with keys from `jwks_url`.
    pub fn new(issuer: &str, region: &RegionId, jwks_url: &str, http: reqwest::Client) -> Self {
        CommandCheck {
            validator: Validator::new(ValidationOptions::new(issuer, pool_audience(region))),
            jwks_url: jwks_url.to_owned(),
            http,
            cache: Mutex::new(JwksCache::new(CachePolicy::default())),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a request: `token` from its `Authorization`, its `body`, and the session its path names
    /// (stop commands). Returns the command to carry out.
    pub async fn check(
        &self,
        token: Option<&str>,
        body: &[u8],
        path_session: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<PoolCommand, ApiError> {
        let unauthorized =
            |e: TokenError| ApiError::new(ErrorCode::Unauthorized, format!("command token refused: {e}"));
        let token =
            token.ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "a signed command token is required"))?;
        let untrusted = UntrustedToken::parse(token).map_err(unauthorized)?;
        let keys = self.keys_for(&untrusted, now).await?;
        // Parsed, not trusted: it only names the session the token must be for, and the token binds the
        // exact bytes below.
        let command: PoolCommand = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(ErrorCode::BadCommand, format!("not a pool command: {e}")))?;
        let expect = Expectation { scope: Scope::PoolCommand, session: Some(command.session()) };
        let verified = self.validator.verify(token, &keys, &RingVerifier, expect, now).await.map_err(|e| match e {
            TokenError::WrongSession => ApiError::new(ErrorCode::Forbidden, "the token was signed for another session"),
            other => unauthorized(other),
        })?;
        check_body(&verified, body).map_err(|e| ApiError::new(ErrorCode::Forbidden, e.to_string()))?;
        if path_session.is_some_and(|s| s != command.session()) {
            return Err(ApiError::new(ErrorCode::Forbidden, "the path names another session than the command"));
        }
        if matches!(command, PoolCommand::Start(_)) {
            self.use_once(&verified.claims().jti, verified.claims().exp, now)?;
        }
        Ok(command)
    }

    /// The key set holding the token's key: cached, or fetched once per the cache policy.
    async fn keys_for(&self, token: &UntrustedToken<'_>, now: Timestamp) -> Result<KeySet, ApiError> {
        for _ in 0..3 {
            let decision = {
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                match cache.lookup(token.kid(), now) {
                    Lookup::Key(_) => return cache.keys().cloned().ok_or_else(unavailable),
                    Lookup::Fetch => true,
                    Lookup::Wait => false,
                    Lookup::Unknown => {
                        return Err(ApiError::new(
                            ErrorCode::Unauthorized,
                            format!("unknown signing key {:?}", token.kid().as_str()),
                        ))
                    }
                    Lookup::Unavailable => return Err(unavailable()),
                }
            };
            if decision {
                let fetched = self.fetch().await;
                if let Err(e) = &fetched {
                    tracing::warn!(error = %e, url = %self.jwks_url, "JWKS fetch failed");
                }
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).on_fetch(fetched, now);
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        Err(unavailable())
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let fetch_error = |e: reqwest::Error| JwksError::Fetch(e.to_string());
        let response = self.http.get(&self.jwks_url).send().await.map_err(fetch_error)?;
        if !response.status().is_success() {
            return Err(JwksError::Fetch(format!("HTTP {}", response.status())));
        }
        KeySet::from_json(&response.bytes().await.map_err(fetch_error)?)
    }

    fn use_once(&self, jti: &Jti, exp: u64, now: Timestamp) -> Result<(), ApiError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Expired ids can go: their tokens fail the expiry check anyway.
        let leeway = self.validator.options().leeway.as_secs();
        seen.retain(|_, e| e.saturating_add(leeway) > now.as_secs());
        if seen.insert(jti.clone(), exp).is_some() {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "this command was already carried out (replayed token)",
            ));
        }
        Ok(())
    }
}

fn unavailable() -> ApiError {
    ApiError::new(ErrorCode::KeysUnavailable, "the control plane's signing keys cannot be fetched now")
}

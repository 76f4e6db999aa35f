//! The signer's settings, from the environment. Every secret may come inline (`NAME`) or from a file
//! (`NAME_FILE`, as Kubernetes mounts secrets); inline wins.
//!
//! | variable | default | what |
//! |---|---|---|
//! | `EDGESHELL_SIGNER_LISTEN` | `127.0.0.1:8791` | where it serves |
//! | `EDGESHELL_SIGNER_ISSUER` | `edgeshell-control` | the only `iss` it signs (the functions' `token_issuer`) |
//! | `EDGESHELL_SIGNER_API_KEY` | required | bearer key of `POST /v1/sign` (at least 32 characters) |
//! | `EDGESHELL_SIGNING_KEY` | required | the current private key (JWK or PEM) |
//! | `EDGESHELL_NEXT_SIGNING_KEY` | none | published ahead of its promotion |
//! | `EDGESHELL_PREVIOUS_SIGNING_KEY` | none | published until its tokens have expired |
//! | `EDGESHELL_ES256_KEY` | none | a P-256 PKCS#8 PEM: signs join and pool-command tokens (ES256) |
//! | `EDGESHELL_NEXT_ES256_KEY` | none | published ahead of its promotion |
//! | `EDGESHELL_PREVIOUS_ES256_KEY` | none | published until its tokens have expired |
//!
//! Without an ES256 key every token is RS256, as before; with one, a mint makes one RSA signature
//! instead of three (`Scope::may_use_es256`).

use edgeshell_keys::{KeyRing, KeyRingError};
use std::net::SocketAddr;

/// The shortest API key accepted.
pub const MIN_API_KEY_CHARS: usize = 32;

/// Every variable the signer reads.
pub const VARIABLES: [&str; 9] = [
    "EDGESHELL_SIGNER_LISTEN",
    "EDGESHELL_SIGNER_ISSUER",
    "EDGESHELL_SIGNER_API_KEY",
    "EDGESHELL_SIGNING_KEY",
    "EDGESHELL_NEXT_SIGNING_KEY",
    "EDGESHELL_PREVIOUS_SIGNING_KEY",
    "EDGESHELL_ES256_KEY",
    "EDGESHELL_NEXT_ES256_KEY",
    "EDGESHELL_PREVIOUS_ES256_KEY",
];

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset.
    #[error("{0} (or {0}_FILE) is required")]
    Missing(&'static str),
    /// A variable is set but unusable.
    #[error("{name}: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The keys are unusable.
    #[error(transparent)]
    Keys(#[from] KeyRingError),
}

/// The signer's settings.
pub struct SignerConfig {
    /// Where it serves.
    pub listen: SocketAddr,
    /// The issuer it signs for.
    pub issuer: String,
    /// The bearer key callers present.
    pub api_key: String,
    /// The signing keys.
    pub keys: KeyRing,
}

impl SignerConfig {
    /// From the process environment.
    pub fn from_env() -> Result<SignerConfig, ConfigError> {
        SignerConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// From `lookup` (variable name -> value), for tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<SignerConfig, ConfigError> {
        let secret = |name: &'static str| -> Result<Option<String>, ConfigError> {
            if let Some(value) = lookup(name) {
                return Ok(Some(value));
            }
            match lookup(&format!("{name}_FILE")) {
                Some(path) => std::fs::read_to_string(&path)
                    .map(|text| Some(text.trim().to_owned()))
                    .map_err(|e| ConfigError::Invalid { name, why: format!("{name}_FILE {path}: {e}") }),
                None => Ok(None),
            }
        };
        let listen_text = lookup("EDGESHELL_SIGNER_LISTEN").unwrap_or_else(|| "127.0.0.1:8791".into());
        let listen = listen_text.parse().map_err(|e| ConfigError::Invalid {
            name: "EDGESHELL_SIGNER_LISTEN",
            why: format!("{listen_text:?}: {e}"),
        })?;
        let issuer = lookup("EDGESHELL_SIGNER_ISSUER").unwrap_or_else(|| "edgeshell-control".into());
        if issuer.trim().is_empty() {
            return Err(ConfigError::Invalid { name: "EDGESHELL_SIGNER_ISSUER", why: "empty".into() });
        }
        let api_key = secret("EDGESHELL_SIGNER_API_KEY")?.ok_or(ConfigError::Missing("EDGESHELL_SIGNER_API_KEY"))?;
        if api_key.chars().count() < MIN_API_KEY_CHARS {
            return Err(ConfigError::Invalid {
                name: "EDGESHELL_SIGNER_API_KEY",
                why: format!("at least {MIN_API_KEY_CHARS} characters"),
            });
        }
        let current = secret("EDGESHELL_SIGNING_KEY")?.ok_or(ConfigError::Missing("EDGESHELL_SIGNING_KEY"))?;
        let next = secret("EDGESHELL_NEXT_SIGNING_KEY")?.unwrap_or_default();
        let previous = secret("EDGESHELL_PREVIOUS_SIGNING_KEY")?.unwrap_or_default();
        let es256 = ["EDGESHELL_ES256_KEY", "EDGESHELL_NEXT_ES256_KEY", "EDGESHELL_PREVIOUS_ES256_KEY"]
            .map(|name| secret(name).map(Option::unwrap_or_default));
        let [es_current, es_next, es_previous] = es256;
        let keys =
            KeyRing::from_secrets(&current, &next, &previous)?.with_es256(&es_current?, &es_next?, &es_previous?)?;
        Ok(SignerConfig { listen, issuer, api_key, keys })
    }
}

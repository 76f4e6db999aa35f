//! The signer's settings, from the environment: the core's catalogue (`edgeshell_core::settings::SIGNER`,
//! listed in docs/configuration.md). Every secret may come inline (`NAME`) or from a file (`NAME_FILE`,
//! as Kubernetes mounts secrets); inline wins. Without an ES256 key every token is RS256; with one, a
//! mint makes one RSA signature instead of four (`Scope::may_use_es256`).

use edgeshell_core::grants::SignerClients;
use edgeshell_core::settings::{Program, Reader, SettingsError};
use edgeshell_keys::{KeyRing, KeyRingError};
use edgeshell_platform::environment::Environment;
use std::net::SocketAddr;

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is missing or unusable.
    #[error(transparent)]
    Settings(#[from] SettingsError),
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
    /// The clients, each with its key's hash and its grant.
    pub clients: SignerClients,
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
        let env = Environment::from_lookup(Program::Signer, lookup)?;
        let lookup = env.lookup();
        let settings = Reader::new(Program::Signer, &lookup);
        let listen =
            settings.parse("EDGESHELL_SIGNER_LISTEN")?.ok_or(SettingsError::Missing("EDGESHELL_SIGNER_LISTEN"))?;
        let issuer = settings.required("EDGESHELL_SIGNER_ISSUER")?;
        let clients = SignerClients::parse(&settings.required("EDGESHELL_SIGNER_CLIENTS")?)
            .map_err(|e| settings.invalid("EDGESHELL_SIGNER_CLIENTS", e.to_string()))?;
        let key = |name| settings.text(name).map(Option::unwrap_or_default);
        let keys = KeyRing::from_secrets(
            &settings.required("EDGESHELL_SIGNING_KEY")?,
            &key("EDGESHELL_NEXT_SIGNING_KEY")?,
            &key("EDGESHELL_PREVIOUS_SIGNING_KEY")?,
        )?
        .with_es256(
            &key("EDGESHELL_ES256_KEY")?,
            &key("EDGESHELL_NEXT_ES256_KEY")?,
            &key("EDGESHELL_PREVIOUS_ES256_KEY")?,
        )?;
        Ok(SignerConfig { listen, issuer, clients, keys })
    }
}

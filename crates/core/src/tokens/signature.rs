//! The signature port: the one step of token handling that differs per platform (WebCrypto in the Worker,
//! `ring` natively, pure Rust anywhere). Everything around it is shared.

use crate::ids::Kid;
use crate::jwks::VerifyingKey;
use core::fmt;
use serde::{Deserialize, Serialize};

/// A signature algorithm we accept. Deliberately a closed set: adding one is a reviewed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 section 3.3).
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256, the signature as `r || s` (RFC 7518 section 3.4). For tokens only
    /// our own services verify (join, pool commands): signing one costs a few hundredths of RS256's.
    #[serde(rename = "ES256")]
    Es256,
}

impl Alg {
    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    /// Parses a JOSE name; anything but an accepted algorithm is `None`.
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure of the signature backend itself, as opposed to a signature that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature did not verify.
    #[error("signature does not verify")]
    Invalid,
    /// The key cannot be used (wrong size, bad encoding, import refused, an algorithm this backend lacks).
    #[error("unusable key: {0}")]
    BadKey(String),
    /// The backend failed (WebCrypto rejected, ...).
    #[error("backend failure: {0}")]
    Backend(String),
}

/// Verifies a signature over the JWS signing input with a key from the key set.
///
/// The future carries no `Send` bound because WebCrypto futures in the Worker are `!Send`.
#[allow(async_fn_in_trait)]
pub trait SignatureVerifier {
    /// Ok when `signature` is a valid `key.alg()` signature of `signing_input` under `key`.
    async fn verify(&self, key: &VerifyingKey, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError>;
}

/// Signs JWS signing inputs with one private key. Only the control plane holds one.
pub trait TokenSigner {
    /// The id of the key, published in the JWKS and written into the header.
    fn kid(&self) -> &Kid;
    /// The key's algorithm.
    fn alg(&self) -> Alg;
    /// The signature of `signing_input`.
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignatureError>;
}

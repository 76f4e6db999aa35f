//! The control plane's signing key: loading (PKCS#8 / PKCS#1 PEM, or a private JWK), its public half for
//! the JWKS, and RS256 signing with `ring`, on every target (natively and in the components).
//!
//! `rsa` is in no part of this: it has no constant-time private-key operations (RUSTSEC-2023-0071,
//! the Marvin attack), so keys are read by `ring` itself (PKCS#8, PKCS#1) or from a JWK's members, and
//! a JWK without its CRT members (`dp`, `dq`, `qi`) gets them from `crypto-bigint`'s constant-time
//! arithmetic.

use crate::private_jwk::PrivateJwk;
use edgeshell_core::ids::Kid;
use edgeshell_core::jwks::VerifyingKey;
use edgeshell_core::tokens::{Alg, SignatureError, TokenSigner};

/// Why a signing key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a PEM or JWK we can read.
    #[error("cannot read the private key: {0}")]
    Unreadable(String),
    /// Readable but unusable.
    #[error("private key refused: {0}")]
    Refused(String),
}

/// An RS256 signing key with its id.
pub struct RsaSigner {
    kid: Kid,
    public: VerifyingKey,
    key: ring::rsa::KeyPair,
}

impl core::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RsaSigner({})", self.kid)
    }
}

impl RsaSigner {
    /// A signer from `ring`'s key pair, named `kid`, or by its RFC 7638 thumbprint without one.
    fn new(kid: Option<Kid>, key: ring::rsa::KeyPair) -> Result<Self, KeyError> {
        let refused = |e: &dyn core::fmt::Display| KeyError::Refused(e.to_string());
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = key.public().into();
        let kid = match kid {
            Some(kid) => kid,
            None => {
                let n = edgeshell_core::base64url::encode(&public.n);
                let e = edgeshell_core::base64url::encode(&public.e);
                Kid::new(edgeshell_core::jwks::thumbprint(&e, &n)).map_err(|e| refused(&e))?
            }
        };
        let public = VerifyingKey::rsa(kid.clone(), Alg::Rs256, &public.n, &public.e).map_err(|e| refused(&e))?;
        Ok(RsaSigner { kid, public, key })
    }

    /// Loads a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM; `ring` refuses keys
    /// under 2048 bits and inconsistent ones.
    pub fn from_pem(kid: Kid, pem: &str) -> Result<Self, KeyError> {
        Self::new(Some(kid), key_pair_from_pem(pem)?)
    }

    /// Loads a private JWK; `kid` wins over the JWK's own, and the RFC 7638 thumbprint names a key with
    /// neither.
    pub fn from_jwk(kid: Option<Kid>, jwk: &PrivateJwk) -> Result<Self, KeyError> {
        if jwk.kty != "RSA" {
            return Err(KeyError::Refused(format!("kty {:?} is not RSA", jwk.kty)));
        }
        let kid = match (kid, &jwk.kid) {
            (Some(k), _) => Some(k),
            (None, Some(k)) => Some(Kid::new(k.as_str()).map_err(|e| KeyError::Refused(e.to_string()))?),
            (None, None) => None,
        };
        let members = jwk.members().map_err(KeyError::Unreadable)?;
        let key = ring::rsa::KeyPair::from_components(&members.components())
            .map_err(|e| KeyError::Refused(format!("ring: {e}")))?;
        Self::new(kid, key)
    }

    /// Loads a key as secret variables hold it: a private JWK (`{...}`) or a PEM. Without a `kid`, the
    /// key's RFC 7638 thumbprint names it, so the same key always gets the same id.
    pub fn from_secret(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with('{') {
            let jwk: PrivateJwk =
                serde_json::from_str(text).map_err(|e| KeyError::Unreadable(format!("private JWK: {e}")))?;
            return Self::from_jwk(None, &jwk);
        }
        Self::new(None, key_pair_from_pem(text)?)
    }

    /// Generates a fresh key (dev issuer, tests). Slow: about a second for 2048 bits. `ring` cannot make
    /// RSA keys, so `rsa` finds the primes (feature `generate`); `ring` signs with them.
    #[cfg(feature = "generate")]
    pub fn generate(
        kid: Kid,
        bits: usize,
        rng: &mut (impl rand_core::CryptoRngCore + ?Sized),
    ) -> Result<Self, KeyError> {
        Self::from_jwk(Some(kid.clone()), &PrivateJwk::generate(kid.as_str(), bits, rng)?)
    }

    /// The public half, for the JWKS.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }
}

/// `ring`'s key pair from a PEM: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
fn key_pair_from_pem(pem: &str) -> Result<ring::rsa::KeyPair, KeyError> {
    let (label, der) =
        pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|e| KeyError::Unreadable(format!("PEM: {e}")))?;
    let key = match label {
        "PRIVATE KEY" => ring::rsa::KeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => ring::rsa::KeyPair::from_der(&der),
        other => return Err(KeyError::Unreadable(format!("a PEM of {other:?}, not PRIVATE KEY or RSA PRIVATE KEY"))),
    };
    key.map_err(|e| KeyError::Refused(format!("ring: {e}")))
}

impl TokenSigner for RsaSigner {
    fn kid(&self) -> &Kid {
        &self.kid
    }

    fn alg(&self) -> Alg {
        Alg::Rs256
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        self.key
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, signing_input, &mut signature)
            .map_err(|_| SignatureError::Backend("ring could not sign".into()))?;
        Ok(signature)
    }
}

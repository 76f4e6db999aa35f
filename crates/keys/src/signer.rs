//! The control plane's signing key: loading (PKCS#8 / PKCS#1 PEM, or a private JWK), its public half for
//! the JWKS, and RS256 signing through `jwt-compact`.

use crate::private_jwk::PrivateJwk;
use edgeshell_core::ids::Kid;
use edgeshell_core::jwks::VerifyingKey;
use edgeshell_core::tokens::{Alg, SignatureError, TokenSigner};
use jwt_compact::alg::{Rsa, RsaPrivateKey};
use jwt_compact::{Algorithm, AlgorithmSignature};
use rsa::traits::PublicKeyParts;

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
    key: RsaPrivateKey,
    public: VerifyingKey,
}

impl core::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RsaSigner({})", self.kid)
    }
}

impl RsaSigner {
    /// A signer from an RSA private key; refuses keys under 2048 bits and inconsistent keys.
    pub fn new(kid: Kid, key: RsaPrivateKey) -> Result<Self, KeyError> {
        key.validate().map_err(|e| KeyError::Refused(e.to_string()))?;
        let public = VerifyingKey::rsa(kid.clone(), Alg::Rs256, &key.n().to_bytes_be(), &key.e().to_bytes_be())
            .map_err(|e| KeyError::Refused(e.to_string()))?;
        Ok(RsaSigner { kid, key, public })
    }

    /// Loads a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM.
    pub fn from_pem(kid: Kid, pem: &str) -> Result<Self, KeyError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|e| KeyError::Unreadable(e.to_string()))?;
        Self::new(kid, key)
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
        let part = |name, v: &String| PrivateJwk::component(name, v).map_err(KeyError::Unreadable);
        let key = RsaPrivateKey::from_components(
            part("n", &jwk.n)?,
            part("e", &jwk.e)?,
            part("d", &jwk.d)?,
            vec![part("p", &jwk.p)?, part("q", &jwk.q)?],
        )
        .map_err(|e| KeyError::Refused(e.to_string()))?;
        Self::with_kid_or_thumbprint(kid, key)
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
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let key = RsaPrivateKey::from_pkcs8_pem(text)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(text))
            .map_err(|e| KeyError::Unreadable(e.to_string()))?;
        Self::with_kid_or_thumbprint(None, key)
    }

    fn with_kid_or_thumbprint(kid: Option<Kid>, key: RsaPrivateKey) -> Result<Self, KeyError> {
        let kid = match kid {
            Some(kid) => kid,
            None => {
                let n = edgeshell_core::base64url::encode(&key.n().to_bytes_be());
                let e = edgeshell_core::base64url::encode(&key.e().to_bytes_be());
                Kid::new(edgeshell_core::jwks::thumbprint(&e, &n)).map_err(|e| KeyError::Refused(e.to_string()))?
            }
        };
        Self::new(kid, key)
    }

    /// Generates a fresh key (dev issuer, tests). Slow: about a second for 2048 bits.
    pub fn generate(
        kid: Kid,
        bits: usize,
        rng: &mut (impl rand_core::CryptoRngCore + ?Sized),
    ) -> Result<Self, KeyError> {
        let key = RsaPrivateKey::new(rng, bits).map_err(|e| KeyError::Refused(e.to_string()))?;
        Self::new(kid, key)
    }

    /// The public half, for the JWKS.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }
}

impl TokenSigner for RsaSigner {
    fn kid(&self) -> &Kid {
        &self.kid
    }

    fn alg(&self) -> Alg {
        Alg::Rs256
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignatureError> {
        Ok(Rsa::rs256().sign(&self.key, signing_input).as_bytes().into_owned())
    }
}

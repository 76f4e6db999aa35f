//! The control plane's signing key: loading (PKCS#8 / PKCS#1 PEM, or a private JWK), its public half for
//! the JWKS, and RS256 signing (with `ring` when its feature is on, else through `jwt-compact` and `rsa`).

use crate::private_jwk::PrivateJwk;
use edgeshell_core::ids::Kid;
use edgeshell_core::jwks::VerifyingKey;
use edgeshell_core::tokens::{Alg, SignatureError, TokenSigner};
use jwt_compact::alg::RsaPrivateKey;
#[cfg(not(feature = "ring"))]
use jwt_compact::{alg::Rsa, Algorithm, AlgorithmSignature};
#[cfg(feature = "ring")]
use rsa::traits::PrivateKeyParts;
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
    #[cfg(not(feature = "ring"))]
    key: RsaPrivateKey,
    public: VerifyingKey,
    /// The same key in `ring`, which signs natively in about a third of the time `rsa` takes (measured
    /// with `cargo xtask bench`); used whenever the `ring` feature is on.
    #[cfg(feature = "ring")]
    fast: ring::rsa::KeyPair,
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
        #[cfg(feature = "ring")]
        let fast = ring_key_pair(&key)?;
        Ok(RsaSigner {
            kid,
            #[cfg(not(feature = "ring"))]
            key,
            public,
            #[cfg(feature = "ring")]
            fast,
        })
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
        #[cfg(feature = "ring")]
        {
            let mut signature = vec![0u8; self.fast.public().modulus_len()];
            let rng = ring::rand::SystemRandom::new();
            self.fast
                .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, signing_input, &mut signature)
                .map_err(|_| SignatureError::Backend("ring could not sign".into()))?;
            Ok(signature)
        }
        #[cfg(not(feature = "ring"))]
        Ok(Rsa::rs256().sign(&self.key, signing_input).as_bytes().into_owned())
    }
}

/// The key's CRT form for `ring`.
#[cfg(feature = "ring")]
fn ring_key_pair(key: &RsaPrivateKey) -> Result<ring::rsa::KeyPair, KeyError> {
    let refused = |what: &str| KeyError::Refused(format!("ring: {what}"));
    let [p, q] = key.primes() else { return Err(refused("multi-prime keys are not supported")) };
    let (dp, dq) = (key.dp().ok_or_else(|| refused("no dP"))?, key.dq().ok_or_else(|| refused("no dQ"))?);
    let qinv = key.qinv().and_then(|v| v.to_biguint()).ok_or_else(|| refused("no qInv"))?;
    let components = ring::rsa::KeyPairComponents {
        public_key: ring::rsa::PublicKeyComponents { n: key.n().to_bytes_be(), e: key.e().to_bytes_be() },
        d: key.d().to_bytes_be(),
        p: p.to_bytes_be(),
        q: q.to_bytes_be(),
        dP: dp.to_bytes_be(),
        dQ: dq.to_bytes_be(),
        qInv: qinv.to_bytes_be(),
    };
    ring::rsa::KeyPair::from_components(&components).map_err(|e| refused(&e.to_string()))
}

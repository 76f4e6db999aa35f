//! Private RSA keys as JWKs (RFC 7517/7518 section 6.3.2): how signing keys arrive in secret variables and
//! how test vectors are written. Never `Debug`-printed with its private members.

use edgeshell_core::base64url;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde::{Deserialize, Serialize};

/// An RSA private key in JWK form.
#[derive(Clone, Deserialize, Serialize)]
pub struct PrivateJwk {
    /// Key type, must be `RSA`.
    pub kty: String,
    /// Key id.
    pub kid: Option<String>,
    /// Modulus.
    pub n: String,
    /// Public exponent.
    pub e: String,
    /// Private exponent.
    pub d: String,
    /// First prime.
    pub p: String,
    /// Second prime.
    pub q: String,
}

impl core::fmt::Debug for PrivateJwk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PrivateJwk(kid={:?}, private members redacted)", self.kid)
    }
}

impl PrivateJwk {
    /// Generates a fresh key (a local stack's signing key; slow: about a second for 2048 bits).
    pub fn generate(
        kid: &str,
        bits: usize,
        rng: &mut (impl rand_core::CryptoRngCore + ?Sized),
    ) -> Result<PrivateJwk, crate::KeyError> {
        let key = rsa::RsaPrivateKey::new(rng, bits).map_err(|e| crate::KeyError::Refused(e.to_string()))?;
        let b64 = |n: &rsa::BigUint| base64url::encode(&n.to_bytes_be());
        let [p, q] = key.primes() else {
            return Err(crate::KeyError::Refused("a generated key has other than two primes".into()));
        };
        Ok(PrivateJwk {
            kty: "RSA".into(),
            kid: Some(kid.to_owned()),
            n: b64(key.n()),
            e: b64(key.e()),
            d: b64(key.d()),
            p: b64(p),
            q: b64(q),
        })
    }

    pub(crate) fn component(name: &str, value: &str) -> Result<rsa::BigUint, String> {
        base64url::decode(value)
            .map(|bytes| rsa::BigUint::from_bytes_be(&bytes))
            .map_err(|e| format!("JWK member {name}: {e}"))
    }
}

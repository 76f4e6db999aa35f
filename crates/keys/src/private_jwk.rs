//! Private RSA keys as JWKs (RFC 7517/7518 section 6.3.2): how signing keys arrive in secret variables and
//! how test vectors are written. Never `Debug`-printed with its private members.

use edgeshell_core::base64url;
use serde::Deserialize;

/// An RSA private key in JWK form.
#[derive(Clone, Deserialize)]
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
    pub(crate) fn component(name: &str, value: &str) -> Result<rsa::BigUint, String> {
        base64url::decode(value)
            .map(|bytes| rsa::BigUint::from_bytes_be(&bytes))
            .map_err(|e| format!("JWK member {name}: {e}"))
    }
}

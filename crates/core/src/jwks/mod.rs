//! JSON Web Key Sets (RFC 7517) of RSA signing keys: parsing what an issuer publishes, serializing what we
//! publish, selecting a key by `kid`, RFC 7638 thumbprints, and the cache policy ([`cache`]).

pub mod cache;

use crate::base64url;
use crate::ids::Kid;
use crate::tokens::Alg;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// The most keys one set may hold.
pub const MAX_KEYS: usize = 16;
const MIN_MODULUS_BYTES: usize = 256; // 2048 bits
const MAX_MODULUS_BYTES: usize = 512; // 4096 bits

/// Why a key set or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Larger than [`MAX_JWKS_BYTES`].
    #[error("JWKS is {0} bytes, more than the {MAX_JWKS_BYTES} allowed")]
    TooLarge(usize),
    /// Not a JWKS document.
    #[error("JWKS is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    /// More than [`MAX_KEYS`] keys.
    #[error("JWKS has {0} keys, more than the {MAX_KEYS} allowed")]
    TooManyKeys(usize),
    /// A published key carries private members: the set is refused rather than trusted.
    #[error("key {0:?} carries private key material; refusing the whole set")]
    PrivateKeyMaterial(String),
    /// Two keys share a `kid`, so selection would be ambiguous.
    #[error("kid {0} appears twice")]
    DuplicateKid(Kid),
    /// No usable signing key in the set.
    #[error("JWKS has no usable signing key ({0} skipped)")]
    NoUsableKey(usize),
    /// One key is unusable.
    #[error("key {kid:?}: {reason}")]
    BadKey {
        /// The key's `kid`, if it had one.
        kid: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
    /// Fetching the set failed (reported by the platform adapter into the cache policy).
    #[error("fetching the JWKS failed: {0}")]
    Fetch(String),
}

/// One JWK as published (public members only when we write it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type; only `RSA` is used.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Pinned algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; `sig` for signing keys.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Permitted operations, if restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// RSA modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Private exponent: must never appear in a published set.
    #[serde(default, skip_serializing)]
    pub d: Option<serde::de::IgnoredAny>,
    /// First prime factor: private.
    #[serde(default, skip_serializing)]
    pub p: Option<serde::de::IgnoredAny>,
    /// Symmetric key value: never expected.
    #[serde(default, skip_serializing)]
    pub k: Option<serde::de::IgnoredAny>,
}

/// A JWKS document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// A public key usable for verification, with its algorithm pinned.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kid: Kid,
    alg: Alg,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl core::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VerifyingKey({}, {}, {} bits)", self.kid, self.alg, self.n.len() * 8)
    }
}

impl VerifyingKey {
    /// A key from its RSA components, checked for size and shape.
    pub fn rsa(kid: Kid, alg: Alg, n: &[u8], e: &[u8]) -> Result<Self, JwksError> {
        let bad = |reason: &str| JwksError::BadKey { kid: Some(kid.to_string()), reason: reason.to_owned() };
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        if n.len() < MIN_MODULUS_BYTES {
            return Err(bad("RSA modulus shorter than 2048 bits"));
        }
        if n.len() > MAX_MODULUS_BYTES {
            return Err(bad("RSA modulus longer than 4096 bits"));
        }
        if e.is_empty() || e.len() > 8 || e[e.len() - 1] & 1 == 0 || (e.len() == 1 && e[0] < 3) {
            return Err(bad("RSA exponent must be odd, at least 3, at most 64 bits"));
        }
        Ok(VerifyingKey { kid, alg, n: n.to_vec(), e: e.to_vec() })
    }

    /// The key id.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The RSA modulus, big-endian without leading zeros.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// The RSA public exponent, big-endian without leading zeros.
    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// The key as a public JWK (what we publish, and what WebCrypto imports).
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: Some(self.kid.to_string()),
            alg: Some(self.alg.name().into()),
            use_: Some("sig".into()),
            key_ops: None,
            n: Some(base64url::encode(&self.n)),
            e: Some(base64url::encode(&self.e)),
            d: None,
            p: None,
            k: None,
        }
    }

    /// The RFC 7638 thumbprint (base64url SHA-256 of the canonical public members).
    pub fn thumbprint(&self) -> String {
        thumbprint(&base64url::encode(&self.e), &base64url::encode(&self.n))
    }
}

/// RFC 7638 thumbprint of an RSA key from its base64url members.
pub fn thumbprint(e_b64: &str, n_b64: &str) -> String {
    let canonical = format!(r#"{{"e":"{e_b64}","kty":"RSA","n":"{n_b64}"}}"#);
    base64url::encode(&Sha256::digest(canonical.as_bytes()))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The keys of a JWKS that we can use, by `kid`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    skipped: usize,
}

impl KeySet {
    /// A set of already-checked keys (what the control plane publishes). Refuses duplicate kids.
    pub fn from_keys(keys: Vec<VerifyingKey>) -> Result<Self, JwksError> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.kid == k.kid) {
                return Err(JwksError::DuplicateKid(k.kid.clone()));
            }
        }
        Ok(KeySet { keys, skipped: 0 })
    }

    /// Parses a JWKS document. Keys we cannot use (other key types, encryption keys, keys without a kid,
    /// other algorithms) are skipped and counted; private material or duplicate kids refuse the whole set.
    pub fn from_json(json: &[u8]) -> Result<Self, JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge(json.len()));
        }
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| JwksError::Malformed(e.to_string()))?;
        if set.keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys(set.keys.len()));
        }
        let mut keys = Vec::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            if jwk.d.is_some() || jwk.p.is_some() || jwk.k.is_some() {
                return Err(JwksError::PrivateKeyMaterial(jwk.kid.clone().unwrap_or_default()));
            }
            match usable_key(jwk)? {
                Some(key) => keys.push(key),
                None => skipped += 1,
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey(skipped));
        }
        let mut set = KeySet::from_keys(keys)?;
        set.skipped = skipped;
        Ok(set)
    }

    /// The key with this id.
    pub fn get(&self, kid: &Kid) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| &k.kid == kid)
    }

    /// All usable keys, in document order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// How many keys of the document were skipped as not usable here.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The set as a JWKS document of public keys.
    pub fn to_jwk_set(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(VerifyingKey::to_jwk).collect() }
    }
}

/// `Ok(None)` for keys that are not for us; `Err` for keys that claim to be for us but are broken.
fn usable_key(jwk: &Jwk) -> Result<Option<VerifyingKey>, JwksError> {
    if jwk.kty != "RSA" || jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|o| o == "verify") {
            return Ok(None);
        }
    }
    // An RSA key without `alg` is pinned to RS256, the only RSA algorithm we accept.
    let alg = match jwk.alg.as_deref() {
        None => Alg::Rs256,
        Some(name) => match Alg::from_name(name) {
            Some(alg) => alg,
            None => return Ok(None),
        },
    };
    let Some(kid) = jwk.kid.as_deref() else {
        return Ok(None);
    };
    let bad = |reason: String| JwksError::BadKey { kid: Some(kid.to_owned()), reason };
    let kid = Kid::new(kid).map_err(|e| bad(e.to_string()))?;
    let decode = |name: &str, v: &Option<String>| {
        let v = v.as_deref().ok_or_else(|| bad(format!("missing {name}")))?;
        base64url::decode(v).map_err(|e| bad(format!("{name}: {e}")))
    };
    let n = decode("n", &jwk.n)?;
    let e = decode("e", &jwk.e)?;
    VerifyingKey::rsa(kid, alg, &n, &e).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7517 appendix A.1 / RFC 7638 section 3.1 example key.
    const RFC_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    fn set(keys: &str) -> Result<KeySet, JwksError> {
        KeySet::from_json(format!(r#"{{"keys":[{keys}]}}"#).as_bytes())
    }

    fn rsa(extra: &str) -> String {
        format!(r#"{{"kty":"RSA","n":"{RFC_N}","e":"AQAB"{extra}}}"#)
    }

    #[test]
    fn rfc7638_thumbprint() {
        assert_eq!(thumbprint("AQAB", RFC_N), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        let keys = set(&rsa(r#","kid":"2011-04-29""#)).unwrap();
        assert_eq!(keys.keys()[0].thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn selection_and_skipping() {
        let keys = set(&format!(
            "{},{},{},{}",
            rsa(r#","kid":"a","alg":"RS256","use":"sig""#),
            rsa(r#","kid":"enc","use":"enc""#),
            rsa(r#","kid":"ps","alg":"PS256""#),
            r#"{"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"}"#
        ))
        .unwrap();
        assert_eq!(keys.keys().len(), 1);
        assert_eq!(keys.skipped(), 3);
        assert_eq!(keys.get(&Kid::new("a").unwrap()).unwrap().alg(), Alg::Rs256);
        assert!(keys.get(&Kid::new("enc").unwrap()).is_none());
    }

    fn check(keys: &str, expected: &str) {
        let err = set(keys).unwrap_err().to_string();
        assert!(err.contains(expected), "{keys}: {err}");
    }

    #[test]
    fn refusals() {
        check(&rsa(r#","kid":"a","d":"AQAB""#), "private key material");
        check(&format!("{},{}", rsa(r#","kid":"a""#), rsa(r#","kid":"a""#)), "appears twice");
        check(&rsa(r#","kid":"../x""#), "not allowed");
        check(r#"{"kty":"RSA","kid":"s","n":"AQAB","e":"AQAB"}"#, "shorter than 2048");
        check(&rsa(r#","kid":"x""#).replace("AQAB", "AQAA"), "exponent");
        check(&rsa(r#","kid":"x""#).replace("AQAB", "AQAB="), "e:");
        check(&rsa(r#","use":"enc""#), "no usable signing key (1 skipped)");
        assert!(matches!(KeySet::from_json(&vec![b' '; MAX_JWKS_BYTES + 1]), Err(JwksError::TooLarge(_))));
        assert!(matches!(KeySet::from_json(b"[]"), Err(JwksError::Malformed(_))));
    }

    #[test]
    fn publish_round_trip() {
        let keys = set(&rsa(r#","kid":"a""#)).unwrap();
        let json = serde_json::to_vec(&keys.to_jwk_set()).unwrap();
        assert!(!String::from_utf8_lossy(&json).contains("\"d\""));
        assert_eq!(KeySet::from_json(&json).unwrap(), keys);
    }
}

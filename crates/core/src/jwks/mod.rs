//! JSON Web Key Sets (RFC 7517) of signing keys (RSA for RS256, EC P-256 for ES256): parsing what an
//! issuer publishes, serializing what we publish, selecting a key by `kid`, RFC 7638 thumbprints, and the
//! cache policy ([`cache`]).
//!
//! A P-256 point is checked here only for shape (two 32-byte coordinates); whether it lies on the curve
//! is checked by the backend that imports it (`ring`, WebCrypto), which refuses it before any use.

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
/// The length of a P-256 coordinate.
pub const P256_COORDINATE_BYTES: usize = 32;

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
    /// Key type: `RSA` or `EC`.
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
    /// EC curve; only `P-256` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC point x coordinate, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC point y coordinate, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Private exponent (RSA) or scalar (EC): must never appear in a published set.
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

/// A public key usable for verification, with its algorithm pinned by its type: RSA keys verify RS256,
/// P-256 keys ES256.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kid: Kid,
    material: PublicKey,
}

/// The public members of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublicKey {
    /// An RSA key: modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// A P-256 point: its coordinates, big-endian, 32 bytes each.
    P256 {
        /// The x coordinate.
        x: [u8; P256_COORDINATE_BYTES],
        /// The y coordinate.
        y: [u8; P256_COORDINATE_BYTES],
    },
}

impl core::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.material {
            PublicKey::Rsa { n, .. } => write!(f, "VerifyingKey({}, RS256, {} bits)", self.kid, n.len() * 8),
            PublicKey::P256 { .. } => write!(f, "VerifyingKey({}, ES256, P-256)", self.kid),
        }
    }
}

impl VerifyingKey {
    /// A key from its RSA components, checked for size and shape. `alg` must be RS256.
    pub fn rsa(kid: Kid, alg: Alg, n: &[u8], e: &[u8]) -> Result<Self, JwksError> {
        let bad = |reason: &str| JwksError::BadKey { kid: Some(kid.to_string()), reason: reason.to_owned() };
        if alg != Alg::Rs256 {
            return Err(bad("an RSA key verifies RS256 only"));
        }
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
        Ok(VerifyingKey { kid, material: PublicKey::Rsa { n: n.to_vec(), e: e.to_vec() } })
    }

    /// A P-256 key from its coordinates (exactly 32 bytes each, as RFC 7518 section 6.2.1.2 requires).
    pub fn p256(kid: Kid, x: &[u8], y: &[u8]) -> Result<Self, JwksError> {
        let bad = |reason: &str| JwksError::BadKey { kid: Some(kid.to_string()), reason: reason.to_owned() };
        let x: [u8; P256_COORDINATE_BYTES] = x.try_into().map_err(|_| bad("P-256 x is not 32 bytes"))?;
        let y: [u8; P256_COORDINATE_BYTES] = y.try_into().map_err(|_| bad("P-256 y is not 32 bytes"))?;
        Ok(VerifyingKey { kid, material: PublicKey::P256 { x, y } })
    }

    /// The key id.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        match self.material {
            PublicKey::Rsa { .. } => Alg::Rs256,
            PublicKey::P256 { .. } => Alg::Es256,
        }
    }

    /// The public members.
    pub fn public(&self) -> &PublicKey {
        &self.material
    }

    /// The uncompressed SEC1 encoding of a P-256 key (`04 || x || y`), what `ring` imports; `None` for
    /// an RSA key.
    pub fn p256_sec1(&self) -> Option<[u8; 1 + 2 * P256_COORDINATE_BYTES]> {
        match &self.material {
            PublicKey::P256 { x, y } => {
                let mut point = [4u8; 1 + 2 * P256_COORDINATE_BYTES];
                point[1..1 + P256_COORDINATE_BYTES].copy_from_slice(x);
                point[1 + P256_COORDINATE_BYTES..].copy_from_slice(y);
                Some(point)
            }
            PublicKey::Rsa { .. } => None,
        }
    }

    /// The key as a public JWK (what we publish, and what WebCrypto imports).
    pub fn to_jwk(&self) -> Jwk {
        let mut jwk = Jwk {
            kty: String::new(),
            kid: Some(self.kid.to_string()),
            alg: Some(self.alg().name().into()),
            use_: Some("sig".into()),
            key_ops: None,
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
            d: None,
            p: None,
            k: None,
        };
        match &self.material {
            PublicKey::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                jwk.n = Some(base64url::encode(n));
                jwk.e = Some(base64url::encode(e));
            }
            PublicKey::P256 { x, y } => {
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                jwk.x = Some(base64url::encode(x));
                jwk.y = Some(base64url::encode(y));
            }
        }
        jwk
    }

    /// The RFC 7638 thumbprint (base64url SHA-256 of the canonical public members).
    pub fn thumbprint(&self) -> String {
        match &self.material {
            PublicKey::Rsa { n, e } => thumbprint(&base64url::encode(e), &base64url::encode(n)),
            PublicKey::P256 { x, y } => {
                let (x, y) = (base64url::encode(x), base64url::encode(y));
                let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                base64url::encode(&Sha256::digest(canonical.as_bytes()))
            }
        }
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
    // Each key type has exactly one algorithm here; a key without `alg` is pinned to it.
    let pinned = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => Alg::Rs256,
        ("EC", Some("P-256")) => Alg::Es256,
        _ => return Ok(None),
    };
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|o| o == "verify") {
            return Ok(None);
        }
    }
    if jwk.alg.as_deref().is_some_and(|name| Alg::from_name(name) != Some(pinned)) {
        return Ok(None);
    }
    let Some(kid) = jwk.kid.as_deref() else {
        return Ok(None);
    };
    let bad = |reason: String| JwksError::BadKey { kid: Some(kid.to_owned()), reason };
    let kid = Kid::new(kid).map_err(|e| bad(e.to_string()))?;
    let decode = |name: &str, v: &Option<String>| {
        let v = v.as_deref().ok_or_else(|| bad(format!("missing {name}")))?;
        base64url::decode(v).map_err(|e| bad(format!("{name}: {e}")))
    };
    match pinned {
        Alg::Rs256 => VerifyingKey::rsa(kid, pinned, &decode("n", &jwk.n)?, &decode("e", &jwk.e)?).map(Some),
        Alg::Es256 => VerifyingKey::p256(kid, &decode("x", &jwk.x)?, &decode("y", &jwk.y)?).map(Some),
    }
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

    // RFC 7515 appendix A.3's P-256 key.
    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn ec(extra: &str) -> String {
        format!(r#"{{"kty":"EC","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"{extra}}}"#)
    }

    #[test]
    fn selection_and_skipping() {
        let keys = set(&format!(
            "{},{},{},{},{},{},{}",
            rsa(r#","kid":"a","alg":"RS256","use":"sig""#),
            rsa(r#","kid":"enc","use":"enc""#),
            rsa(r#","kid":"ps","alg":"PS256""#),
            rsa(r#","kid":"confused","alg":"ES256""#),
            ec(r#","kid":"ec","alg":"ES256""#),
            ec(r#","kid":"ec-rs","alg":"RS256""#),
            r#"{"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"}"#
        ))
        .unwrap();
        assert_eq!(keys.keys().len(), 2);
        assert_eq!(keys.skipped(), 5);
        assert_eq!(keys.get(&Kid::new("a").unwrap()).unwrap().alg(), Alg::Rs256);
        let ec = keys.get(&Kid::new("ec").unwrap()).unwrap();
        assert_eq!(ec.alg(), Alg::Es256);
        assert_eq!(ec.p256_sec1().unwrap()[0], 4);
        assert!(keys.get(&Kid::new("a").unwrap()).unwrap().p256_sec1().is_none());
        assert!(keys.get(&Kid::new("enc").unwrap()).is_none());
        assert!(keys.get(&Kid::new("confused").unwrap()).is_none(), "an RSA key never verifies ES256");
    }

    #[test]
    fn ec_keys_are_pinned_to_es256_and_thumbprinted() {
        let keys = set(&ec(r#","kid":"e""#)).unwrap();
        let key = &keys.keys()[0];
        assert_eq!(key.alg(), Alg::Es256, "an EC key without alg is pinned to ES256");
        // SHA-256 of {"crv":"P-256","kty":"EC","x":...,"y":...}, computed independently.
        assert_eq!(key.thumbprint(), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
        let json = serde_json::to_string(&keys.to_jwk_set()).unwrap();
        assert!(json.contains(r#""kty":"EC""#) && json.contains(r#""crv":"P-256""#) && !json.contains(r#""n""#));
        assert_eq!(KeySet::from_json(json.as_bytes()).unwrap(), keys);
        let rsa_kid = Kid::new("r").unwrap();
        assert!(VerifyingKey::rsa(rsa_kid, Alg::Es256, &[0xff; 256], &[1, 0, 1]).is_err(), "RSA is RS256 only");
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
        check(&ec(r#","kid":"e""#).replace(EC_X, "AAAA"), "P-256 x is not 32 bytes");
        check(&ec(r#","kid":"e""#).replace(EC_Y, &format!("{EC_Y}AAAA")), "P-256 y is not 32 bytes");
        check(&ec(r#","kid":"e","d":"AA""#), "private key material");
        check(r#"{"kty":"EC","crv":"P-256","kid":"e","x":"AA"}"#, "missing y");
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

//! Private RSA keys as JWKs (RFC 7517/7518 section 6.3.2): how signing keys arrive in secret variables and
//! how test vectors are written. Never `Debug`-printed with its private members.
//!
//! A JWK names `n`, `e`, `d`, `p` and `q`; the CRT members `dp`, `dq` and `qi` that `ring` signs with are
//! taken from it when present, else computed from `d`, `p` and `q` with `crypto-bigint`'s constant-time
//! arithmetic (RFC 8017 §3.2), never with `rsa`'s.

use crypto_bigint::{BoxedUint, NonZero, Odd};
use edgeshell_core::base64url;
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
    /// `d mod (p - 1)`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    /// `d mod (q - 1)`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    /// `q^-1 mod p`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
}

impl core::fmt::Debug for PrivateJwk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PrivateJwk(kid={:?}, private members redacted)", self.kid)
    }
}

/// A JWK's members decoded, the CRT ones included: big-endian, without leading zeros.
pub(crate) struct Members {
    n: Vec<u8>,
    e: Vec<u8>,
    d: Vec<u8>,
    p: Vec<u8>,
    q: Vec<u8>,
    dp: Vec<u8>,
    dq: Vec<u8>,
    qi: Vec<u8>,
}

impl Members {
    /// The key as `ring` takes it.
    pub(crate) fn components(&self) -> ring::rsa::KeyPairComponents<&[u8]> {
        ring::rsa::KeyPairComponents {
            public_key: ring::rsa::PublicKeyComponents { n: &self.n, e: &self.e },
            d: &self.d,
            p: &self.p,
            q: &self.q,
            dP: &self.dp,
            dQ: &self.dq,
            qInv: &self.qi,
        }
    }
}

impl PrivateJwk {
    /// Generates a fresh key (a local stack's signing key; slow: about a second for 2048 bits). `rsa`
    /// finds the primes (`ring` cannot make RSA keys); nothing is ever signed with `rsa`.
    #[cfg(feature = "generate")]
    pub fn generate(
        kid: &str,
        bits: usize,
        rng: &mut (impl rand_core::CryptoRngCore + ?Sized),
    ) -> Result<PrivateJwk, crate::KeyError> {
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        let key = rsa::RsaPrivateKey::new(rng, bits).map_err(|e| crate::KeyError::Refused(e.to_string()))?;
        let b64 = |n: &rsa::BigUint| base64url::encode(&n.to_bytes_be());
        let [p, q] = key.primes() else {
            return Err(crate::KeyError::Refused("a generated key has other than two primes".into()));
        };
        let (dp, dq) = (key.dp().map(b64), key.dq().map(b64));
        let qi = key.qinv().and_then(|v| v.to_biguint()).map(|v| b64(&v));
        Ok(PrivateJwk {
            kty: "RSA".into(),
            kid: Some(kid.to_owned()),
            n: b64(key.n()),
            e: b64(key.e()),
            d: b64(key.d()),
            p: b64(p),
            q: b64(q),
            dp,
            dq,
            qi,
        })
    }

    /// Every member decoded; the CRT members computed when absent.
    pub(crate) fn members(&self) -> Result<Members, String> {
        let part = |name: &str, v: &str| {
            base64url::decode(v).map(|b| minimal(&b).to_vec()).map_err(|e| format!("JWK member {name}: {e}"))
        };
        let optional = |name: &str, v: &Option<String>| v.as_deref().map(|v| part(name, v)).transpose();
        let (d, p, q) = (part("d", &self.d)?, part("p", &self.p)?, part("q", &self.q)?);
        let (dp, dq, qi) = match (optional("dp", &self.dp)?, optional("dq", &self.dq)?, optional("qi", &self.qi)?) {
            (Some(dp), Some(dq), Some(qi)) => (dp, dq, qi),
            (None, None, None) => crt(&d, &p, &q)?,
            _ => return Err("JWK has some of dp, dq and qi but not all three".into()),
        };
        Ok(Members { n: part("n", &self.n)?, e: part("e", &self.e)?, d, p, q, dp, dq, qi })
    }
}

/// `bytes` without leading zero bytes (`ring` reads integers in their minimal form).
fn minimal(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// `dP`, `dQ` and `qInv`, big-endian.
type Crt = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The CRT members of a key from `d`, `p` and `q`: `d mod (p - 1)`, `d mod (q - 1)` and `q^-1 mod p`,
/// in constant time.
fn crt(d: &[u8], p: &[u8], q: &[u8]) -> Result<Crt, String> {
    let longest = d.len().max(p.len()).max(q.len());
    let bits = u32::try_from(longest.div_ceil(8) * 64).map_err(|_| "JWK members too long".to_owned())?;
    let number =
        |name: &str, v: &[u8]| BoxedUint::from_be_slice(v, bits).map_err(|e| format!("JWK member {name}: {e}"));
    let (d, p, q) = (number("d", d)?, number("p", p)?, number("q", q)?);
    let one = BoxedUint::one_with_precision(bits);
    let less_one = |prime: &BoxedUint, name: &str| {
        Option::<NonZero<BoxedUint>>::from(NonZero::new(prime.wrapping_sub(&one)))
            .ok_or_else(|| format!("JWK member {name} is not a prime"))
    };
    let dp = d.rem(&less_one(&p, "p")?);
    let dq = d.rem(&less_one(&q, "q")?);
    let q_mod_p = q.rem(&Option::<NonZero<BoxedUint>>::from(NonZero::new(p.clone())).ok_or("JWK member p is zero")?);
    let p_odd = Option::<Odd<BoxedUint>>::from(Odd::new(p)).ok_or("JWK member p is even")?;
    let qi = Option::<BoxedUint>::from(q_mod_p.invert_odd_mod(&p_odd)).ok_or("JWK members p and q share a factor")?;
    let bytes = |v: BoxedUint| minimal(&v.to_be_bytes()).to_vec();
    Ok((bytes(dp), bytes(dq), bytes(qi)))
}

//! RS256 verification in portable Rust that is fast in wasm: `crypto-bigint`'s Montgomery exponentiation
//! (32-bit limbs in wasm, whose multiply is native there) and an exact PKCS#1 v1.5 re-encoding.
//!
//! Verifying is RSAVP1 (RFC 8017 §5.2.2) then EMSA-PKCS1-v1_5 (§9.2) the safe way: the expected encoded
//! message is built from the input's SHA-256 and compared byte for byte with the signature's, instead
//! of parsing the decrypted block (parsers are where PKCS#1 v1.5 forgeries come from). Only public
//! values are involved, so the arithmetic need not be constant-time.
//!
//! The components check ID tokens with it: `rsa`'s arithmetic (through `jwt-compact`) took about 1.5 ms
//! per check in wasm, most of a mint's own CPU after signing moved out.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use edgeshell_core::jwks::{PublicKey, VerifyingKey};
use edgeshell_core::tokens::{SignatureError, SignatureVerifier};
use sha2::{Digest, Sha256};

/// DER of the `DigestInfo` header for SHA-256 (RFC 8017 §9.2, note 1); the 32-byte hash follows it.
const SHA256_DIGEST_INFO: [u8; 19] =
    [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

/// RS256 verification with `crypto-bigint` (pure Rust; every target, and the fast one in wasm).
#[derive(Debug, Clone, Copy, Default)]
pub struct MontgomeryRs256;

impl SignatureVerifier for MontgomeryRs256 {
    async fn verify(&self, key: &VerifyingKey, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let PublicKey::Rsa { n, e } = key.public() else {
            return Err(SignatureError::BadKey(format!("{} is not verified by this backend", key.alg())));
        };
        let k = n.len();
        // A signature is exactly as long as the modulus (RFC 8017 §8.2.2 step 1).
        if signature.len() != k {
            return Err(SignatureError::Invalid);
        }
        let decrypted = public_operation(n, e, signature)?;
        let expected = encode(Sha256::digest(signing_input).as_slice(), k)?;
        if decrypted == expected {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// RSAVP1: `signature^e mod n`, as big-endian bytes as long as the modulus. A signature not below the modulus is invalid.
fn public_operation(modulus: &[u8], exponent: &[u8], signature: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let bad_key = |reason: &str| SignatureError::BadKey(reason.to_owned());
    let k = modulus.len();
    let bits = u32::try_from(k * 8).map_err(|_| bad_key("RSA modulus too long"))?;
    let n = BoxedUint::from_be_slice(modulus, bits).map_err(|_| bad_key("RSA modulus does not fit"))?;
    let n: Odd<BoxedUint> = Option::from(Odd::new(n)).ok_or_else(|| bad_key("RSA modulus is even"))?;
    let s = BoxedUint::from_be_slice(signature, n.bits_precision()).map_err(|_| SignatureError::Invalid)?;
    if s >= *n.as_ref() {
        return Err(SignatureError::Invalid);
    }
    if exponent.len() > 8 {
        return Err(bad_key("RSA exponent longer than 64 bits"));
    }
    let e = exponent.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if e < 3 {
        return Err(bad_key("RSA exponent below 3"));
    }
    let params = BoxedMontyParams::new_vartime(n);
    // Left-to-right square-and-multiply over the public exponent: 16 squarings and one product for
    // 65537, where the library's windowed `pow` (built for secret exponents) spends about 40.
    let base = BoxedMontyForm::new(s, &params);
    let mut power = base.clone();
    for bit in (0..63 - e.leading_zeros()).rev() {
        power = power.square();
        if (e >> bit) & 1 == 1 {
            power = power.mul(&base);
        }
    }
    let m = power.retrieve();
    let bytes = m.to_be_bytes();
    // The precision rounds up to whole limbs; `m < n` leaves those extra leading bytes zero.
    let (padding, value) = bytes.split_at(bytes.len() - k);
    if padding.iter().any(|&b| b != 0) {
        return Err(SignatureError::Invalid);
    }
    Ok(value.to_vec())
}

/// EMSA-PKCS1-v1_5 for SHA-256 into `k` bytes: `00 01 FF..FF 00 DigestInfo hash`, with at least eight
/// `FF` bytes (§9.2 step 5).
fn encode(hash: &[u8], k: usize) -> Result<Vec<u8>, SignatureError> {
    let t_len = SHA256_DIGEST_INFO.len() + hash.len();
    if k < t_len + 11 {
        return Err(SignatureError::BadKey("RSA modulus too short for SHA-256".to_owned()));
    }
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(k - t_len - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(&SHA256_DIGEST_INFO);
    em.extend_from_slice(hash);
    Ok(em)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_is_the_rfc_layout() {
        let em = encode(&[7; 32], 256).unwrap();
        assert_eq!(em.len(), 256);
        assert_eq!(&em[..2], &[0, 1]);
        let ff = em[2..].iter().take_while(|&&b| b == 0xff).count();
        assert_eq!(ff, 256 - 3 - 19 - 32);
        assert_eq!(em[2 + ff], 0);
        assert_eq!(&em[3 + ff..3 + ff + 19], &SHA256_DIGEST_INFO);
        assert_eq!(&em[256 - 32..], &[7; 32]);
        assert!(encode(&[0; 32], 61).is_err(), "too short for eight FF bytes");
    }
}

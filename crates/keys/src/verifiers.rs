//! Native implementations of the core's `SignatureVerifier` port.

use edgeshell_core::jwks::VerifyingKey;
use edgeshell_core::tokens::{Alg, SignatureError, SignatureVerifier};
use jwt_compact::alg::{Rsa, RsaPublicKey, RsaSignature};
use jwt_compact::{Algorithm, AlgorithmSignature};

/// RS256 verification with `jwt-compact` and the pure-Rust `rsa` crate.
#[derive(Debug, Clone, Copy, Default)]
pub struct JwtCompactRs256;

impl JwtCompactRs256 {
    fn public_key(key: &VerifyingKey) -> Result<RsaPublicKey, SignatureError> {
        let n = rsa::BigUint::from_bytes_be(key.modulus());
        let e = rsa::BigUint::from_bytes_be(key.exponent());
        RsaPublicKey::new(n, e).map_err(|e| SignatureError::BadKey(e.to_string()))
    }
}

impl SignatureVerifier for JwtCompactRs256 {
    async fn verify(&self, key: &VerifyingKey, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match key.alg() {
            Alg::Rs256 => {}
        }
        // PKCS#1 v1.5 signatures are exactly as long as the modulus.
        if signature.len() != key.modulus().len() {
            return Err(SignatureError::Invalid);
        }
        let public = Self::public_key(key)?;
        let signature = RsaSignature::try_from_slice(signature).map_err(|_| SignatureError::Invalid)?;
        if Rsa::rs256().verify_signature(&signature, &public, signing_input) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// RS256 verification with `ring`.
#[cfg(feature = "ring")]
#[derive(Debug, Clone, Copy, Default)]
pub struct RingRs256;

#[cfg(feature = "ring")]
impl SignatureVerifier for RingRs256 {
    async fn verify(&self, key: &VerifyingKey, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
        match key.alg() {
            Alg::Rs256 => {}
        }
        let public = RsaPublicKeyComponents { n: key.modulus(), e: key.exponent() };
        public.verify(&RSA_PKCS1_2048_8192_SHA256, signing_input, signature).map_err(|_| SignatureError::Invalid)
    }
}

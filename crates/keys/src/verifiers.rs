//! Native implementations of the core's `SignatureVerifier` port.

use edgeshell_core::jwks::{PublicKey, VerifyingKey};
use edgeshell_core::tokens::{SignatureError, SignatureVerifier};
#[cfg(feature = "reference")]
use jwt_compact::alg::{Rsa, RsaPublicKey, RsaSignature};
#[cfg(feature = "reference")]
use jwt_compact::{Algorithm, AlgorithmSignature};

/// RS256 verification with `jwt-compact` and the pure-Rust `rsa` crate (public-key arithmetic only).
#[cfg(feature = "reference")]
#[derive(Debug, Clone, Copy, Default)]
pub struct JwtCompactRs256;

#[cfg(feature = "reference")]
impl JwtCompactRs256 {
    fn public_key(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, SignatureError> {
        let (n, e) = (rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e));
        RsaPublicKey::new(n, e).map_err(|e| SignatureError::BadKey(e.to_string()))
    }
}

#[cfg(feature = "reference")]
impl SignatureVerifier for JwtCompactRs256 {
    async fn verify(&self, key: &VerifyingKey, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let PublicKey::Rsa { n, e } = key.public() else {
            return Err(SignatureError::BadKey(format!("{} is not verified by this backend", key.alg())));
        };
        // PKCS#1 v1.5 signatures are exactly as long as the modulus.
        if signature.len() != n.len() {
            return Err(SignatureError::Invalid);
        }
        let public = Self::public_key(n, e)?;
        let signature = RsaSignature::try_from_slice(signature).map_err(|_| SignatureError::Invalid)?;
        if Rsa::rs256().verify_signature(&signature, &public, signing_input) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// RS256 and ES256 verification with `ring`, the native services' backend. A P-256 point off the curve
/// is refused by `ring` like a bad signature.
#[derive(Debug, Clone, Copy, Default)]
pub struct RingVerifier;

impl SignatureVerifier for RingVerifier {
    async fn verify(&self, key: &VerifyingKey, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        use ring::signature::{
            RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
        };
        let checked = match key.public() {
            PublicKey::Rsa { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, signing_input, signature)
            }
            PublicKey::P256 { .. } => {
                let point = key.p256_sec1().ok_or_else(|| SignatureError::BadKey("no P-256 point".into()))?;
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(signing_input, signature)
            }
        };
        checked.map_err(|_| SignatureError::Invalid)
    }
}

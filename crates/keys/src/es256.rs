//! The ES256 (ECDSA P-256) signing key, native only (`ring`): it signs the tokens only our own services
//! verify (runner join, uploads, pool commands; `Scope::may_use_es256`), for a few hundredths of what an RS256
//! signature costs. Loaded from a PKCS#8 PEM (`BEGIN PRIVATE KEY`, what `openssl genpkey -algorithm EC
//! -pkeyopt ec_paramgen_curve:P-256` and terraform's `private_key_pem_pkcs8` write); named by its RFC 7638
//! thumbprint.

use crate::signer::KeyError;
use edgeshell_core::ids::Kid;
use edgeshell_core::jwks::{VerifyingKey, P256_COORDINATE_BYTES};
use edgeshell_core::tokens::{Alg, SignatureError, TokenSigner};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// An ES256 signing key with its id.
pub struct Es256Signer {
    kid: Kid,
    key: EcdsaKeyPair,
    public: VerifyingKey,
    rng: SystemRandom,
}

impl core::fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Es256Signer({})", self.kid)
    }
}

impl Es256Signer {
    /// Loads a PKCS#8 PEM of a P-256 key.
    pub fn from_secret(text: &str) -> Result<Self, KeyError> {
        let (label, der) =
            pem_rfc7468::decode_vec(text.trim().as_bytes()).map_err(|e| KeyError::Unreadable(format!("PEM: {e}")))?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::Unreadable(format!("a {label:?} PEM; a PKCS#8 \"PRIVATE KEY\" is needed")));
        }
        Self::from_pkcs8(&der)
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| KeyError::Refused(format!("not a P-256 PKCS#8 key: {e}")))?;
        let point = key.public_key().as_ref();
        let (x, y) = point[1..].split_at(P256_COORDINATE_BYTES);
        let unnamed = Kid::new("unnamed").map_err(|e| KeyError::Refused(e.to_string()))?;
        let thumbprint = VerifyingKey::p256(unnamed, x, y).map_err(|e| KeyError::Refused(e.to_string()))?.thumbprint();
        let kid = Kid::new(thumbprint).map_err(|e| KeyError::Refused(e.to_string()))?;
        let public = VerifyingKey::p256(kid.clone(), x, y).map_err(|e| KeyError::Refused(e.to_string()))?;
        Ok(Es256Signer { kid, key, public, rng })
    }

    /// A fresh key and its PKCS#8 PEM (the dev stack, tests).
    pub fn generate() -> Result<(Self, String), KeyError> {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| KeyError::Refused(format!("generating a P-256 key: {e}")))?;
        let pem = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, der.as_ref())
            .map_err(|e| KeyError::Refused(format!("encoding PEM: {e}")))?;
        Ok((Self::from_pkcs8(der.as_ref())?, pem))
    }

    /// The public half, for the JWKS.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }
}

impl TokenSigner for Es256Signer {
    fn kid(&self) -> &Kid {
        &self.kid
    }

    fn alg(&self) -> Alg {
        Alg::Es256
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let signature = self
            .key
            .sign(&self.rng, signing_input)
            .map_err(|_| SignatureError::Backend("ring could not sign".into()))?;
        Ok(signature.as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{now_or_never, RingVerifier};
    use edgeshell_core::tokens::SignatureVerifier;

    #[test]
    fn a_generated_key_reloads_from_its_pem_and_signs_what_ring_verifies() {
        let (signer, pem) = Es256Signer::generate().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let reloaded = Es256Signer::from_secret(&pem).unwrap();
        assert_eq!(reloaded.kid(), signer.kid(), "the thumbprint names the key");
        let signature = reloaded.sign(b"input").unwrap();
        assert_eq!(signature.len(), 64, "r || s");
        now_or_never(RingVerifier.verify(signer.verifying_key(), b"input", &signature)).unwrap();
        assert!(now_or_never(RingVerifier.verify(signer.verifying_key(), b"other", &signature)).is_err());
        let (other, _) = Es256Signer::generate().unwrap();
        assert!(now_or_never(RingVerifier.verify(other.verifying_key(), b"input", &signature)).is_err());
    }

    #[test]
    fn other_keys_and_text_are_refused() {
        use rsa::pkcs8::EncodePrivateKey;
        let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let rsa_pem = rsa.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        assert!(Es256Signer::from_secret(&rsa_pem).unwrap_err().to_string().contains("not a P-256"));
        for bad in ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"] {
            assert!(Es256Signer::from_secret(bad).is_err(), "{bad:?}");
        }
        let (_, pem) = Es256Signer::generate().unwrap();
        let sec1 = pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
        assert!(Es256Signer::from_secret(&sec1).unwrap_err().to_string().contains("PKCS#8"));
    }
}

//! The signing keys of a rotation: the current key signs; the next one is published ahead of use and
//! the previous one until every token it signed has expired, so verifiers never meet an unknown key.
//! Read from secret text (a private JWK or PEM each; empty text means none).
//!
//! Natively a ring may also hold an ES256 rotation ([`KeyRing::with_es256`]): its current key then signs
//! the kinds of token `Scope::may_use_es256` allows, and its keys are published beside the RSA ones.

use crate::signer::{KeyError, RsaSigner};
use edgeshell_core::jwks::KeySet;
use edgeshell_core::tokens::{Scope, TokenSigner};

/// The current signer and the public keys to publish.
pub struct KeyRing {
    /// Signs every new token (every RS256 one, when there is an ES256 key).
    pub current: RsaSigner,
    /// The current ES256 key, if any.
    pub es256: Option<crate::Es256Signer>,
    /// Current, next and previous public keys, in that order (RSA, then EC).
    pub published: KeySet,
}

/// Why the keys of a rotation cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// The current key is missing.
    #[error("no current signing key")]
    NoCurrentKey,
    /// One key is unusable.
    #[error("{which} signing key: {error}")]
    Key {
        /// `current`, `next` or `previous`.
        which: &'static str,
        /// What is wrong with it.
        error: KeyError,
    },
    /// The keys do not form a key set (e.g. two with one `kid`).
    #[error("the signing keys: {0}")]
    Set(String),
}

impl KeyRing {
    /// Reads the three keys; `next` and `previous` may be empty.
    pub fn from_secrets(current: &str, next: &str, previous: &str) -> Result<KeyRing, KeyRingError> {
        if current.trim().is_empty() {
            return Err(KeyRingError::NoCurrentKey);
        }
        let read = |which, text: &str| RsaSigner::from_secret(text).map_err(|error| KeyRingError::Key { which, error });
        let current = read("current", current)?;
        let mut keys = vec![current.verifying_key().clone()];
        for (which, text) in [("next", next), ("previous", previous)] {
            if !text.trim().is_empty() {
                keys.push(read(which, text)?.verifying_key().clone());
            }
        }
        let published = KeySet::from_keys(keys).map_err(|e| KeyRingError::Set(e.to_string()))?;
        Ok(KeyRing { current, es256: None, published })
    }

    /// Adds an ES256 rotation (PKCS#8 PEMs; `next` and `previous` may be empty). An empty `current`
    /// leaves the ring as it is: every token is then RS256.
    pub fn with_es256(mut self, current: &str, next: &str, previous: &str) -> Result<KeyRing, KeyRingError> {
        if current.trim().is_empty() {
            if !next.trim().is_empty() || !previous.trim().is_empty() {
                return Err(KeyRingError::Set("ES256 next or previous key without a current one".into()));
            }
            return Ok(self);
        }
        let read = |which, text: &str| {
            crate::Es256Signer::from_secret(text).map_err(|error| KeyRingError::Key { which, error })
        };
        let signer = read("current ES256", current)?;
        let mut keys = self.published.keys().to_vec();
        keys.push(signer.verifying_key().clone());
        for (which, text) in [("next ES256", next), ("previous ES256", previous)] {
            if !text.trim().is_empty() {
                keys.push(read(which, text)?.verifying_key().clone());
            }
        }
        self.published = KeySet::from_keys(keys).map_err(|e| KeyRingError::Set(e.to_string()))?;
        self.es256 = Some(signer);
        Ok(self)
    }

    /// The key that signs a token of `scope`: the ES256 one where the scope allows it and there is one.
    pub fn signer_for(&self, scope: Scope) -> &dyn TokenSigner {
        match &self.es256 {
            Some(es256) if scope.may_use_es256() => es256,
            _ => &self.current,
        }
    }

    /// The published keys as a JWKS document.
    pub fn jwks_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.published.to_jwk_set()).expect("a key set serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeshell_core::ids::Kid;
    use edgeshell_core::tokens::TokenSigner;

    fn secret(kid: &str) -> (String, Kid) {
        let jwk = crate::PrivateJwk::generate(kid, 2048, &mut rand::rngs::OsRng).unwrap();
        (serde_json::to_string(&jwk).unwrap(), Kid::new(kid).unwrap())
    }

    #[test]
    fn the_current_key_signs_and_all_three_are_published_in_order() {
        let ((a, ka), (b, kb), (c, kc)) = (secret("a"), secret("b"), secret("c"));
        let ring = KeyRing::from_secrets(&a, &b, &c).unwrap();
        assert_eq!(ring.current.kid(), &ka);
        let kids: Vec<_> = ring.published.keys().iter().map(|k| k.kid().clone()).collect();
        assert_eq!(kids, vec![ka, kb, kc]);
        assert!(String::from_utf8(ring.jwks_json()).unwrap().contains("\"kid\":\"b\""));
    }

    #[test]
    fn a_missing_current_key_or_a_bad_one_is_refused_by_name() {
        let (a, _) = secret("a");
        assert!(matches!(KeyRing::from_secrets(" ", &a, ""), Err(KeyRingError::NoCurrentKey)));
        let e = KeyRing::from_secrets(&a, "not a key", "").err().unwrap();
        assert!(e.to_string().starts_with("next signing key"), "{e}");
        assert!(matches!(KeyRing::from_secrets(&a, "", &a), Err(KeyRingError::Set(_))));
    }

    #[test]
    fn an_es256_rotation_signs_only_the_scopes_that_allow_it_and_is_published_after_the_rsa_keys() {
        use edgeshell_core::tokens::{Alg, Scope};
        let (a, ka) = secret("a");
        let pem = |_| crate::Es256Signer::generate().unwrap().1;
        let (current, next) = (pem(0), pem(1));
        let ring = KeyRing::from_secrets(&a, "", "").unwrap().with_es256(&current, &next, "").unwrap();
        let es_kid = ring.es256.as_ref().unwrap().kid().clone();
        for scope in [Scope::Join, Scope::ArtifactPut, Scope::PoolCommand] {
            assert_eq!((ring.signer_for(scope).alg(), ring.signer_for(scope).kid()), (Alg::Es256, &es_kid));
        }
        for scope in [Scope::Attach, Scope::ArtifactGet] {
            assert_eq!((ring.signer_for(scope).alg(), ring.signer_for(scope).kid()), (Alg::Rs256, &ka));
        }
        let algs: Vec<_> = ring.published.keys().iter().map(|k| k.alg()).collect();
        assert_eq!(algs, vec![Alg::Rs256, Alg::Es256, Alg::Es256]);
        let plain = KeyRing::from_secrets(&a, "", "").unwrap().with_es256(" ", "", "").unwrap();
        assert_eq!(plain.signer_for(Scope::Join).alg(), Alg::Rs256, "no ES256 key: everything RS256");
        assert!(KeyRing::from_secrets(&a, "", "").unwrap().with_es256("", &next, "").is_err());
        let e = KeyRing::from_secrets(&a, "", "").unwrap().with_es256("junk", "", "").err().unwrap();
        assert!(e.to_string().starts_with("current ES256 signing key"), "{e}");
    }
}

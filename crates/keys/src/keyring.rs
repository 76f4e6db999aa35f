//! The signing keys of a rotation: the current key signs; the next one is published ahead of use and
//! the previous one until every token it signed has expired, so verifiers never meet an unknown key.
//! Read from secret text (a private JWK or PEM each; empty text means none).

use crate::signer::{KeyError, RsaSigner};
use edgeshell_core::jwks::KeySet;

/// The current signer and the public keys to publish.
pub struct KeyRing {
    /// Signs every new token.
    pub current: RsaSigner,
    /// Current, next and previous public keys, in that order.
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
        Ok(KeyRing { current, published })
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
}

//! Users' secrets at rest: envelope encryption. Each user has a data key (256 random bits) that seals
//! their secrets with AES-256-GCM; the data key is stored only wrapped by a key-encryption key (KEK),
//! itself never in the database. A leaked database holds ciphertext and wrapped keys, nothing usable.
//!
//! - [`KekRing`]: the current KEK (which wraps) and earlier ones (which still unwrap), each with an id
//!   stored beside what it wrapped. Rotating the KEK: make a new one current and keep the old as
//!   previous; data keys wrapped by the old one are rewrapped when next used or by a sweep
//!   ([`KekRing::needs_rewrap`]); once none is left, drop the old one.
//! - [`DataKey`]: seals and opens one secret, bound to its owner and name (the AEAD's associated
//!   data), so a ciphertext moved to another user or name does not open.
//!
//! Sealed values are `1 || nonce (12) || ciphertext || tag (16)`. Nonces are the caller's randomness
//! (96 random bits per encryption; a data key seals at most a user's secrets). Key material is held in
//! types whose `Debug` redacts.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

/// The format version byte of everything sealed here.
const VERSION: u8 = 1;
/// Nonce bytes.
pub const NONCE_LEN: usize = 12;
/// The most bytes one secret's value may have.
pub const MAX_SECRET_VALUE: usize = 8 * 1024;
/// The most secrets one user may keep.
pub const MAX_SECRETS_PER_USER: usize = 50;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// A KEK setting is not `id:<43 base64url characters>`.
    #[error("a key-encryption key is `<id>:<32 bytes, base64url>`: {0}")]
    BadKek(String),
    /// The KEK that wrapped a data key is not in the ring.
    #[error("the key-encryption key {0:?} is not configured (was it dropped before every data key was rewrapped?)")]
    UnknownKek(String),
    /// A ciphertext that does not open: tampered with, truncated, or moved to another owner or name.
    #[error("a sealed value does not open with its key (tampered with, or not this owner's)")]
    Unsealable,
}

/// A 256-bit key. `Debug` prints nothing of it.
#[derive(Clone)]
struct Key([u8; 32]);

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key(redacted)")
    }
}

impl Key {
    fn seal(&self, aad: &[u8], plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let cipher = Aes256Gcm::new((&self.0).into());
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encrypts any message below 64 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        let (&version, rest) = sealed.split_first().ok_or(VaultError::Unsealable)?;
        if version != VERSION || rest.len() < NONCE_LEN + 16 {
            return Err(VaultError::Unsealable);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Aes256Gcm::new((&self.0).into())
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| VaultError::Unsealable)
    }
}

/// One key-encryption key and its id.
#[derive(Debug, Clone)]
pub struct Kek {
    id: String,
    key: Key,
}

impl Kek {
    /// Parses `id:<base64url of 32 bytes>` (the id: 1 to 32 letters, digits, `-` or `_`).
    pub fn parse(text: &str) -> Result<Kek, VaultError> {
        let (id, key) = text.trim().split_once(':').ok_or_else(|| VaultError::BadKek("no ':'".into()))?;
        let id_ok =
            (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(VaultError::BadKek("the id is 1 to 32 letters, digits, '-' or '_'".into()));
        }
        let bytes =
            crate::base64url::decode(key).map_err(|_| VaultError::BadKek(format!("key {id}: not base64url")))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| VaultError::BadKek(format!("key {id}: not 32 bytes")))?;
        Ok(Kek { id: id.to_owned(), key: Key(key) })
    }

    /// A KEK from its id and 32 bytes (the caller's randomness), in the text form [`Kek::parse`] reads.
    pub fn generate_text(id: &str, key: [u8; 32]) -> String {
        format!("{id}:{}", crate::base64url::encode(&key))
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The KEKs a deployment holds: one current, any earlier ones.
#[derive(Debug, Clone)]
pub struct KekRing {
    current: Kek,
    previous: Vec<Kek>,
}

/// A data key as stored: wrapped, with the id of the KEK that wrapped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The KEK's id.
    pub kek_id: String,
    /// The sealed key.
    pub sealed: Vec<u8>,
}

impl KekRing {
    /// The ring of `current` and the comma-separated `previous` (each `id:key`; blank: none).
    pub fn parse(current: &str, previous: &str) -> Result<KekRing, VaultError> {
        let current = Kek::parse(current)?;
        let previous =
            previous.split(',').filter(|p| !p.trim().is_empty()).map(Kek::parse).collect::<Result<Vec<_>, _>>()?;
        if previous.iter().any(|p| p.id == current.id) {
            return Err(VaultError::BadKek(format!("{} is both current and previous", current.id)));
        }
        Ok(KekRing { current, previous })
    }

    /// The current KEK's id.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    fn aad(owner: &str, kek_id: &str) -> Vec<u8> {
        format!("edgeshell-data-key\0{owner}\0{kek_id}").into_bytes()
    }

    /// Wraps `owner`'s data key with the current KEK.
    pub fn wrap(&self, owner: &str, key: &DataKey, nonce: [u8; NONCE_LEN]) -> WrappedKey {
        let aad = Self::aad(owner, &self.current.id);
        WrappedKey { kek_id: self.current.id.clone(), sealed: self.current.key.seal(&aad, &key.0 .0, nonce) }
    }

    /// Unwraps `owner`'s data key with the KEK it names.
    pub fn unwrap(&self, owner: &str, wrapped: &WrappedKey) -> Result<DataKey, VaultError> {
        let kek = core::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == wrapped.kek_id)
            .ok_or_else(|| VaultError::UnknownKek(wrapped.kek_id.clone()))?;
        let bytes = kek.key.open(&Self::aad(owner, &kek.id), &wrapped.sealed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| VaultError::Unsealable)?;
        Ok(DataKey(Key(key)))
    }

    /// Whether `wrapped` was wrapped by an earlier KEK and should be wrapped again by the current one.
    pub fn needs_rewrap(&self, wrapped: &WrappedKey) -> bool {
        wrapped.kek_id != self.current.id
    }
}

/// A user's data key.
#[derive(Debug, Clone)]
pub struct DataKey(Key);

impl DataKey {
    /// A data key from 32 random bytes (the caller's randomness).
    pub fn from_random(bytes: [u8; 32]) -> DataKey {
        DataKey(Key(bytes))
    }

    fn aad(owner: &str, name: &str) -> Vec<u8> {
        format!("edgeshell-secret\0{owner}\0{name}").into_bytes()
    }

    /// Seals `owner`'s secret `name`.
    pub fn seal(&self, owner: &str, name: &str, value: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        self.0.seal(&Self::aad(owner, name), value, nonce)
    }

    /// Opens `owner`'s secret `name`.
    pub fn open(&self, owner: &str, name: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.0.open(&Self::aad(owner, name), sealed)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0 .0
    }

    /// The key as base64url, for the one place it travels: from the control plane to the edge over its
    /// internal API (TLS and the internal key), for one artifact's upload or download
    /// (`crate::sealed_stream`). Never stored or logged.
    pub fn to_transport(&self) -> crate::secret::Secret {
        crate::secret::Secret::new(crate::base64url::encode(&self.0 .0))
    }

    /// Reads what [`DataKey::to_transport`] made.
    pub fn from_transport(text: &str) -> Result<DataKey, VaultError> {
        let bytes = crate::base64url::decode(text).map_err(|_| VaultError::Unsealable)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| VaultError::Unsealable)?;
        Ok(DataKey(Key(key)))
    }
}

/// Checks a secret's name: a variable name a template may take (it reaches programs as one).
pub fn check_secret_name(name: &str) -> Result<(), String> {
    crate::templates::check_env_name(name)
}

/// Checks a secret's value: 1 to [`MAX_SECRET_VALUE`] bytes, no NUL (it becomes an environment variable).
pub fn check_secret_value(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_SECRET_VALUE || value.contains('\0') {
        return Err(format!("a value of 1 to {MAX_SECRET_VALUE} bytes, without NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! A bearer secret as a value: a token, ticket or key held in a [`Secret`] cannot reach a log through
//! `Debug` (which prints only that it is redacted), has no `Display`, compares in constant time, and is
//! read only through [`Secret::expose`], so every place that uses the raw text says so.
//!
//! Serde sees the plain string (`#[serde(transparent)]`): the wire formats that carry secrets (a start
//! command's join token, a `Welcome`'s ticket) are unchanged. Written here rather than taken from the
//! `secrecy` crate because that crate deliberately serializes no strings and compares nothing, both of
//! which the protocol's derived `Serialize` and `PartialEq` need.
//!
//! **Architecture Invariant:** a `#[derive(Debug)]` type never holds a secret as raw text;
//! `crates/core/tests/secrets.rs` fails on a field such as `join_token: String`.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A secret string: a compact JWS, a resume ticket, an API key, a private JWK.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The raw text, for the one place that must send, sign or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The raw text, consuming the wrapper.
    pub fn into_exposed(self) -> String {
        self.0
    }

    /// Whether the secret is empty (an unset setting).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl PartialEq for Secret {
    /// Constant time in the contents (the lengths may differ in time).
    fn eq(&self, other: &Secret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_redacts_serde_is_transparent_and_equality_compares_contents() {
        let secret = Secret::new("eyJhbGciOiJSUzI1NiJ9.secret");
        let shown = format!("{secret:?} {:?} {:#?}", Some(&secret), vec![secret.clone()]);
        assert!(!shown.contains("eyJ") && !shown.contains("secret\""), "{shown}");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"eyJhbGciOiJSUzI1NiJ9.secret\"");
        let back: Secret = serde_json::from_str("\"eyJhbGciOiJSUzI1NiJ9.secret\"").unwrap();
        assert_eq!(back, secret);
        assert_ne!(Secret::new("eyJhbGciOiJSUzI1NiJ9.secreT"), secret);
        assert_ne!(Secret::new("short"), secret);
        assert_eq!(secret.expose(), "eyJhbGciOiJSUzI1NiJ9.secret");
    }
}

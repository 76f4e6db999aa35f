//! Identifier newtypes. Each one validates its text on construction, so a value of the type is always safe
//! to log, to put in a URL path or a storage key, and to compare.

use core::fmt;
use serde::{Deserialize, Serialize};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty or longer than the identifier allows.
    #[error("{kind} must be 1 to {max} bytes long, got {len}")]
    Length {
        /// Which identifier.
        kind: &'static str,
        /// The longest allowed.
        max: usize,
        /// The length given.
        len: usize,
    },
    /// A character outside the identifier's alphabet.
    #[error("{kind} contains {found:?}, which is not allowed")]
    Character {
        /// Which identifier.
        kind: &'static str,
        /// The first offending character.
        found: char,
    },
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:literal, max = $max:literal, allowed = $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `text`.
            pub fn new(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                check(&text, $kind, $max, $allowed)?;
                Ok(Self(text))
            }

            /// The identifier's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(text: String) -> Result<Self, IdError> {
                Self::new(text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

fn check(text: &str, kind: &'static str, max: usize, allowed: fn(char) -> bool) -> Result<(), IdError> {
    if text.is_empty() || text.len() > max {
        return Err(IdError::Length { kind, max, len: text.len() });
    }
    match text.chars().find(|c| !allowed(*c)) {
        Some(found) => Err(IdError::Character { kind, found }),
        None => Ok(()),
    }
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn region_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

fn kid_char(c: char) -> bool {
    token_char(c) || c == '.'
}

/// A subject may be an e-mail or an OIDC `sub`; control characters and whitespace other than space are out.
fn subject_char(c: char) -> bool {
    !c.is_control()
}

identifier!(
    /// A session, as named in URLs, tokens and the Durable Object's name.
    SessionId, "session id", max = 64, allowed = token_char
);
identifier!(
    /// A region of runner pools, such as `eu-west` (lowercase letters, digits and dashes).
    RegionId, "region id", max = 32, allowed = region_char
);
identifier!(
    /// A token's unique id, consumed once.
    Jti, "jti", max = 128, allowed = token_char
);
identifier!(
    /// A signing key's id. Never a path or a query: only letters, digits, `-`, `_` and `.`.
    Kid, "kid", max = 64, allowed = kid_char
);
identifier!(
    /// The user a token speaks for (the OIDC `sub` of their identity, or `pool:<region>` for runners).
    Subject, "subject", max = 255, allowed = subject_char
);

impl Kid {
    /// A kid may not be `.` or `..` even though its alphabet allows dots.
    pub fn is_dot_segment(&self) -> bool {
        self.0 == "." || self.0 == ".."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_session(input: &str, ok: bool) {
        assert_eq!(SessionId::new(input).is_ok(), ok, "{input:?}");
    }

    #[test]
    fn session_ids() {
        check_session("s_01HZX-abc", true);
        check_session("", false);
        check_session(&"a".repeat(65), false);
        check_session("../etc", false);
        check_session("a b", false);
        check_session("é", false);
    }

    #[test]
    fn kids_refuse_paths_and_sql() {
        for bad in ["../../keys/private", "/etc/passwd", "k' OR '1'='1", "k;DROP TABLE keys", "a/b", "k\0"] {
            assert!(Kid::new(bad).is_err(), "{bad:?}");
        }
        assert!(Kid::new("2026-11.a_b").is_ok());
        assert!(Kid::new("..").unwrap().is_dot_segment());
    }

    #[test]
    fn regions_are_lowercase() {
        assert!(RegionId::new("eu-west-1").is_ok());
        assert!(RegionId::new("EU").is_err());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<SessionId>("\"ok\"").is_ok());
        let err = serde_json::from_str::<SessionId>("\"no/slash\"").unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{err}");
        assert!(serde_json::from_str::<Subject>("\"a\\u0000b\"").is_err());
    }
}

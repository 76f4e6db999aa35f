//! Session tokens: compact JWS (RFC 7515) with RS256, the claims of each token kind, and their validation.
//!
//! A token string is parsed into an [`UntrustedToken`]; only [`Validator::verify`] turns it into a
//! [`Verified`] one, after the signature (through a [`SignatureVerifier`] port) and every claim were checked.
//! The accepted algorithm comes from the key the `kid` selects, never from the token's header.

mod claims;
mod jws;
mod signature;
mod validate;

pub use claims::{ArtifactGrant, Claims, Method, Scope};
pub(crate) use jws::json_object;
pub use jws::{sign, Header, UntrustedToken, MAX_TOKEN_BYTES};
pub use signature::{Alg, SignatureError, SignatureVerifier, TokenSigner};
pub use validate::{verify_signature, Expectation, ValidationOptions, Validator, Verified};

use crate::ids::{IdError, Kid};

/// Why a token was refused. Messages name the failing check; none contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than any token we issue.
    #[error("token is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not three base64url parts, bad base64, or a header or payload that is not the JSON we expect.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm we never accept (`none`, `HS256`, ...).
    #[error("algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The header carries `crit` extensions we do not understand (RFC 7515 section 4.1.11).
    #[error("critical header parameters are not supported")]
    CriticalHeader,
    /// No `kid` in the header: we never guess which key to use.
    #[error("token has no kid")]
    MissingKid,
    /// The `kid` is not a valid key id (a path, a query, ...).
    #[error("kid is invalid: {0}")]
    BadKid(IdError),
    /// No key with this id in the key set; the caller may refetch the JWKS once per cooldown.
    #[error("no key with kid {0}")]
    UnknownKid(Kid),
    /// The key's algorithm is not one tokens of this kind may be signed with (an ES256 attach token).
    #[error("{scope} tokens are not signed with {alg}")]
    AlgorithmNotForScope {
        /// The kind of token.
        scope: Scope,
        /// The algorithm it was signed with.
        alg: Alg,
    },
    /// The header's `typ` is missing or not `JWT` on a token of ours.
    #[error("header typ {0:?} is not JWT")]
    WrongType(Option<String>),
    /// The header's algorithm is not the one pinned for the selected key.
    #[error("header algorithm {header:?} does not match key algorithm {key}")]
    AlgorithmMismatch {
        /// What the header said.
        header: String,
        /// What the key allows.
        key: Alg,
    },
    /// The signature does not verify under the selected key.
    #[error("signature verification failed")]
    BadSignature,
    /// The signature step itself failed (unusable key, backend error).
    #[error("signature backend: {0}")]
    Backend(SignatureError),
    /// `exp` has passed (beyond the leeway).
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`, seconds.
        exp: u64,
        /// The caller's clock, seconds.
        now: u64,
    },
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf`, seconds.
        nbf: u64,
        /// The caller's clock, seconds.
        now: u64,
    },
    /// `exp - nbf` is longer than tokens of this kind may live.
    #[error("token lifetime {lifetime}s exceeds the {max}s allowed for {scope}")]
    LifetimeTooLong {
        /// The kind of token.
        scope: Scope,
        /// Its lifetime in seconds.
        lifetime: u64,
        /// The longest allowed.
        max: u64,
    },
    /// Issued by someone else.
    #[error("issuer {0:?} is not trusted")]
    WrongIssuer(String),
    /// Meant for another service.
    #[error("audience {0:?} is not this service")]
    WrongAudience(String),
    /// A token of another kind (a join token used to attach, ...).
    #[error("token has scope {found}, expected {expected}")]
    WrongScope {
        /// The scope required here.
        expected: Scope,
        /// The scope it carries.
        found: Scope,
    },
    /// Valid, but for another session.
    #[error("token is for another session")]
    WrongSession,
    /// A kind-specific claim is missing or malformed (artifact grant, body hash).
    #[error("claim {0} is missing or invalid")]
    BadClaim(&'static str),
}

impl TokenError {
    /// True when the token was genuine but is no longer (or not yet) usable: a client should get a new
    /// token instead of giving up.
    pub fn is_expiry(&self) -> bool {
        matches!(self, TokenError::Expired { .. } | TokenError::NotYetValid { .. })
    }

    /// True when the token was well-formed and signed but does not grant this request.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, TokenError::WrongScope { .. } | TokenError::WrongSession)
    }
}

//! From untrusted text to [`Verified`] claims: key selection, the pinned algorithm, the signature (through
//! the port), then every claim, in that order.

use super::claims::{Claims, Scope};
use super::jws::{json_object, UntrustedToken};
use super::signature::{Alg, SignatureError, SignatureVerifier};
use super::TokenError;
use crate::ids::{Kid, SessionId};
use crate::jwks::KeySet;
use crate::time::Timestamp;
use core::time::Duration;

/// What the verifying service trusts and tolerates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationOptions {
    /// The one trusted issuer (`iss`).
    pub issuer: String,
    /// This service's audience (`aud`).
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

impl ValidationOptions {
    /// Options with the default leeway of 30 seconds.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        ValidationOptions { issuer: issuer.into(), audience: audience.into(), leeway: Duration::from_secs(30) }
    }
}

/// What the request at hand requires of the token.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The token kind this endpoint accepts.
    pub scope: Scope,
    /// The session the request addresses, if it addresses one.
    pub session: Option<&'a SessionId>,
}

/// Claims whose signature and validity were checked. Only [`Validator::verify`] (or the `dangerous`
/// module) makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    claims: Claims,
    kid: Kid,
}

impl Verified {
    /// The checked claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The key that signed them.
    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// Takes the claims out.
    pub fn into_claims(self) -> Claims {
        self.claims
    }

    pub(crate) fn new_unchecked(claims: Claims, kid: Kid) -> Verified {
        Verified { claims, kid }
    }
}

/// Checks tokens for one service.
#[derive(Debug, Clone)]
pub struct Validator {
    options: ValidationOptions,
}

impl Validator {
    /// A validator with these options.
    pub fn new(options: ValidationOptions) -> Self {
        Validator { options }
    }

    /// The options in force.
    pub fn options(&self) -> &ValidationOptions {
        &self.options
    }

    /// Parses, verifies the signature with the key `kid` selects (its pinned algorithm, not the header's),
    /// then checks the claims against `expect` and `now`.
    pub async fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        verifier: &impl SignatureVerifier,
        expect: Expectation<'_>,
        now: Timestamp,
    ) -> Result<Verified, TokenError> {
        let untrusted = UntrustedToken::parse(token)?;
        // Ours always say `typ: JWT`; the algorithm is pinned per token kind as well as per key. Both are
        // checked before any cryptography.
        let typ = untrusted.header().typ.as_deref();
        if !typ.is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
            return Err(TokenError::WrongType(typ.map(str::to_owned)));
        }
        if let Some(alg) = Alg::from_name(&untrusted.header().alg).filter(|alg| !expect.scope.accepts(*alg)) {
            return Err(TokenError::AlgorithmNotForScope { scope: expect.scope, alg });
        }
        verify_signature(&untrusted, keys, verifier).await?;
        let claims: Claims = json_object(untrusted.payload(), "claims")?;
        self.check_claims(&claims, expect, now)?;
        Ok(Verified { claims, kid: untrusted.kid().clone() })
    }

    /// The claim checks alone, for claims whose signature was verified.
    pub fn check_claims(&self, c: &Claims, expect: Expectation<'_>, now: Timestamp) -> Result<(), TokenError> {
        let leeway = self.options.leeway.as_secs();
        let now_s = now.as_secs();
        if c.iss != self.options.issuer {
            return Err(TokenError::WrongIssuer(c.iss.clone()));
        }
        if c.aud != self.options.audience {
            return Err(TokenError::WrongAudience(c.aud.clone()));
        }
        if c.exp.saturating_add(leeway) <= now_s {
            return Err(TokenError::Expired { exp: c.exp, now: now_s });
        }
        if c.nbf > now_s.saturating_add(leeway) || c.iat > now_s.saturating_add(leeway) {
            return Err(TokenError::NotYetValid { nbf: c.nbf.max(c.iat), now: now_s });
        }
        if c.exp <= c.nbf {
            return Err(TokenError::BadClaim("exp must be after nbf"));
        }
        let lifetime = c.exp - c.nbf;
        if lifetime > c.scope.max_lifetime_secs() {
            return Err(TokenError::LifetimeTooLong { scope: c.scope, lifetime, max: c.scope.max_lifetime_secs() });
        }
        if c.scope != expect.scope {
            return Err(TokenError::WrongScope { expected: expect.scope, found: c.scope });
        }
        if let Some(session) = expect.session {
            if &c.sid != session {
                return Err(TokenError::WrongSession);
            }
        }
        let session_scoped = matches!(c.scope, Scope::Attach | Scope::Join);
        match (session_scoped, &c.ses) {
            (true, None) => return Err(TokenError::BadClaim("ses: the session's terms are missing")),
            (false, Some(_)) => return Err(TokenError::BadClaim("ses not allowed for this scope")),
            (true, Some(terms)) if terms.ends > c.iat.saturating_add(crate::lifetime::LIFETIME_CEILING.as_secs()) => {
                return Err(TokenError::BadClaim("ses: a deadline beyond the lifetime ceiling"))
            }
            _ => {}
        }
        match c.scope {
            Scope::ArtifactGet if c.art.is_none() => Err(TokenError::BadClaim("art")),
            Scope::PoolCommand if c.bh.as_deref().is_none_or(|h| h.len() != 43) => Err(TokenError::BadClaim("bh")),
            Scope::Attach | Scope::Join | Scope::ArtifactPut if c.art.is_some() || c.bh.is_some() => {
                Err(TokenError::BadClaim("art/bh not allowed for this scope"))
            }
            _ => Ok(()),
        }
    }
}

/// Selects the key by `kid`, checks the header's algorithm against the key's pinned one, and verifies the
/// signature through the port. Shared by our tokens and by OIDC ID tokens (whose claims differ).
pub async fn verify_signature(
    token: &UntrustedToken<'_>,
    keys: &KeySet,
    verifier: &impl SignatureVerifier,
) -> Result<(), TokenError> {
    let key = keys.get(token.kid()).ok_or_else(|| TokenError::UnknownKid(token.kid().clone()))?;
    if token.header().alg != key.alg().name() {
        return Err(TokenError::AlgorithmMismatch { header: token.header().alg.clone(), key: key.alg() });
    }
    match verifier.verify(key, token.signing_input(), token.signature()).await {
        Ok(()) => Ok(()),
        Err(SignatureError::Invalid) => Err(TokenError::BadSignature),
        Err(other) => Err(TokenError::Backend(other)),
    }
}

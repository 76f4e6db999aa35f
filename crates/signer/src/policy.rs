//! What the signer agrees to sign: claims of one of our token kinds (the core's `Claims`, unknown
//! members refused by its types), under the configured issuer, issued now (not back-dated, not
//! post-dated beyond the clock leeway), and living no longer than the kind allows. The same rules a
//! verifier applies, checked before a signature exists rather than after.

use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{Claims, Expectation, TokenError, ValidationOptions, Validator};
use std::time::Duration;

/// How far `iat` may be from the signer's clock either way.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Why claims were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// The claims would not verify anywhere (wrong issuer, expired, lifetime too long, ...).
    #[error("{0}")]
    Claims(TokenError),
    /// Issued at a time other than now.
    #[error("iat {iat} is not now ({now}, leeway {}s)", LEEWAY.as_secs())]
    NotNow {
        /// The claimed issue time.
        iat: u64,
        /// The signer's clock.
        now: u64,
    },
}

/// The checks, for one issuer.
pub struct Policy {
    issuer: String,
}

impl Policy {
    /// Signs only for `issuer`.
    pub fn new(issuer: impl Into<String>) -> Policy {
        Policy { issuer: issuer.into() }
    }

    /// The issuer claims must name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Accepts `claims` for signing at `now`, or says why not.
    pub fn check(&self, claims: &Claims, now: Timestamp) -> Result<(), Refusal> {
        let now_s = now.as_secs();
        if claims.iat.abs_diff(now_s) > LEEWAY.as_secs() {
            return Err(Refusal::NotNow { iat: claims.iat, now: now_s });
        }
        // Any audience: the functions address the edge and each region's pool agents.
        let validator = Validator::new(ValidationOptions {
            leeway: LEEWAY,
            ..ValidationOptions::new(self.issuer.clone(), claims.aud.clone())
        });
        let expect = Expectation { scope: claims.scope, session: Some(&claims.sid) };
        validator.check_claims(claims, expect, now).map_err(Refusal::Claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeshell_core::ids::{RegionId, Subject};
    use edgeshell_core::issue::{session_id, Issuer};

    fn now() -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000)
    }

    fn attach() -> Claims {
        let sid = session_id([7; 16]);
        Issuer::new("edgeshell-control").attach(
            &Subject::new("alice").unwrap(),
            &sid,
            &RegionId::new("eu").unwrap(),
            [1; 16],
            now(),
        )
    }

    #[test]
    fn claims_our_issuer_makes_now_are_signed() {
        assert_eq!(Policy::new("edgeshell-control").check(&attach(), now()), Ok(()));
    }

    #[test]
    fn another_issuer_a_long_life_an_expired_or_a_back_dated_token_is_refused() {
        let policy = Policy::new("edgeshell-control");
        assert!(matches!(
            Policy::new("someone-else").check(&attach(), now()),
            Err(Refusal::Claims(TokenError::WrongIssuer(_)))
        ));
        let mut long = attach();
        long.exp = long.nbf + 30 * 24 * 3600;
        assert!(matches!(policy.check(&long, now()), Err(Refusal::Claims(TokenError::LifetimeTooLong { .. }))));
        let mut back = attach();
        back.iat -= 3600;
        back.nbf -= 3600;
        back.exp -= 3600;
        assert!(matches!(policy.check(&back, now()), Err(Refusal::NotNow { .. })));
        let mut expired = attach();
        expired.exp = expired.iat;
        assert!(policy.check(&expired, now()).is_err());
        let mut ahead = attach();
        ahead.iat += 3600;
        assert!(matches!(policy.check(&ahead, now()), Err(Refusal::NotNow { .. })));
    }
}

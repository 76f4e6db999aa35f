//! Issuing our tokens: the claims of each kind with its lifetime, fresh ids from caller-supplied
//! randomness, the binding of pool commands to their request body, and what may be signed at all
//! ([`Issuer::check_signable`]: the rules a verifier applies, checked before a signature exists). The
//! control plane signs what this builds; nothing here signs or reads randomness itself.

use crate::base64url;
use crate::ids::{Jti, RegionId, SessionId, Subject};
use crate::lifetime::Terms;
use crate::time::Timestamp;
use crate::tokens::{Claims, Expectation, Scope, TokenError, ValidationOptions, Validator, Verified};
use core::time::Duration;
use sha2::{Digest, Sha256};

/// How far the `iat` of claims to sign may be from the signer's clock, either way.
pub const SIGNING_LEEWAY: Duration = Duration::from_secs(30);

/// Why claims may not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignRefusal {
    /// The claims would not verify anywhere (another issuer, expired, a lifetime too long, ...).
    #[error("{0}")]
    Claims(TokenError),
    /// Issued at a time other than now.
    #[error("iat {iat} is not now ({now}, leeway {}s)", SIGNING_LEEWAY.as_secs())]
    NotNow {
        /// The claimed issue time.
        iat: u64,
        /// The signer's clock.
        now: u64,
    },
}

/// The audience of tokens checked at the edge.
pub const EDGE_AUDIENCE: &str = "edgeshell-edge";

/// The subject of pool commands: the control plane itself.
pub const CONTROL_SUBJECT: &str = "edgeshell-control";

/// The audience of pool commands for `region`.
pub fn pool_audience(region: &RegionId) -> String {
    format!("{POOL_AUDIENCE_PREFIX}{region}")
}

/// What every pool agent's audience starts with.
pub const POOL_AUDIENCE_PREFIX: &str = "edgeshell-pool:";

/// A token id from 16 random bytes (128 bits).
pub fn jti(entropy: [u8; 16]) -> Jti {
    Jti::new(base64url::encode(&entropy)).unwrap_or_else(|_| unreachable_id())
}

/// A session id from 16 random bytes: `s_` and 22 base64url characters.
pub fn session_id(entropy: [u8; 16]) -> SessionId {
    SessionId::new(format!("s_{}", base64url::encode(&entropy))).unwrap_or_else(|_| unreachable_id())
}

/// The ids built here are valid by construction (base64url of 16 bytes is 22 characters of
/// `[A-Za-z0-9_-]`; the constants are plain words).
fn unreachable_id<T>() -> T {
    panic!("base64url of 16 bytes is always a valid id")
}

/// The subject runner-side tokens carry.
pub fn pool_subject(region: &RegionId) -> Subject {
    Subject::new(format!("pool:{region}")).unwrap_or_else(|_| unreachable_id())
}

/// The shortest attach token [`Issuer::attach_for`] makes: a little more than the room's refresh lead
/// (60 s), so a fresh token is not due for refresh the moment it is used.
pub const MIN_ATTACH_LIFETIME_SECS: u64 = 65;

/// Builds the claims of every token kind for one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// `iss` of everything issued.
    pub issuer: String,
}

impl Issuer {
    /// An issuer named by its URL.
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer { issuer: issuer.into() }
    }

    /// Whether `claims` may be signed as this issuer at `now`: they name this issuer, are issued now
    /// (not back-dated, not post-dated beyond [`SIGNING_LEEWAY`]), and pass every claim check a verifier
    /// applies (expiry, lifetime within the kind's maximum, ...). Any audience: we address the edge and
    /// each region's pool agents. Every signer checks this, so no path signs a token a verifier would
    /// refuse, and the signer service's API key is no key to long-lived or back-dated tokens.
    pub fn check_signable(&self, claims: &Claims, now: Timestamp) -> Result<(), SignRefusal> {
        let now_s = now.as_secs();
        if claims.iat.abs_diff(now_s) > SIGNING_LEEWAY.as_secs() {
            return Err(SignRefusal::NotNow { iat: claims.iat, now: now_s });
        }
        let validator = Validator::new(ValidationOptions {
            leeway: SIGNING_LEEWAY,
            ..ValidationOptions::new(self.issuer.clone(), claims.aud.clone())
        });
        let expect = Expectation { scope: claims.scope, session: Some(&claims.sid) };
        validator.check_claims(claims, expect, now).map_err(SignRefusal::Claims)
    }

    /// The common claims; `at` is the session and region the token is bound to.
    fn claims(
        &self,
        scope: Scope,
        aud: String,
        sub: Subject,
        at: (&SessionId, &RegionId),
        entropy: [u8; 16],
        now: Timestamp,
    ) -> Claims {
        let (sid, region) = at;
        let now_s = now.as_secs();
        Claims {
            iss: self.issuer.clone(),
            aud,
            sub,
            sid: sid.clone(),
            region: region.clone(),
            jti: jti(entropy),
            iat: now_s,
            nbf: now_s,
            exp: now_s + scope.max_lifetime_secs(),
            scope,
            art: None,
            bh: None,
            ses: None,
        }
    }

    /// A browser attach token for `user` to a session with these `terms` (10 minutes, one-time).
    pub fn attach(
        &self,
        user: &Subject,
        (sid, region): (&SessionId, &RegionId),
        terms: Terms,
        entropy: [u8; 16],
        now: Timestamp,
    ) -> Claims {
        let mut claims = self.claims(Scope::Attach, EDGE_AUDIENCE.into(), user.clone(), (sid, region), entropy, now);
        claims.ses = Some(terms);
        claims
    }

    /// A browser's attach token living `lifetime_secs`, clamped to
    /// [`MIN_ATTACH_LIFETIME_SECS`]..=the attach scope's maximum. Shorter tokens mean more in-band
    /// refreshes (the room asks a minute before expiry), and less exposure if one leaks.
    pub fn attach_for(
        &self,
        user: &Subject,
        at: (&SessionId, &RegionId),
        terms: Terms,
        entropy: [u8; 16],
        now: Timestamp,
        lifetime_secs: u64,
    ) -> Claims {
        let mut claims = self.attach(user, at, terms, entropy, now);
        let lifetime = lifetime_secs.clamp(MIN_ATTACH_LIFETIME_SECS, Scope::Attach.max_lifetime_secs());
        claims.exp = claims.nbf + lifetime;
        claims
    }

    /// The runner's join token to a session with these `terms` (15 minutes, one-time).
    pub fn join(
        &self,
        (sid, region): (&SessionId, &RegionId),
        terms: Terms,
        entropy: [u8; 16],
        now: Timestamp,
    ) -> Claims {
        let mut claims =
            self.claims(Scope::Join, EDGE_AUDIENCE.into(), pool_subject(region), (sid, region), entropy, now);
        claims.ses = Some(terms);
        claims
    }

    /// The runner's artifact upload token, reusable until `until` (the latest the session may end,
    /// extensions included; at most the kind's cap). The edge takes uploads with it only while the
    /// session is live.
    pub fn artifact_put(
        &self,
        (sid, region): (&SessionId, &RegionId),
        until: Timestamp,
        entropy: [u8; 16],
        now: Timestamp,
    ) -> Claims {
        let mut claims =
            self.claims(Scope::ArtifactPut, EDGE_AUDIENCE.into(), pool_subject(region), (sid, region), entropy, now);
        claims.exp = claims.exp.min(until.as_secs()).max(now.as_secs() + 1);
        claims
    }

    /// A command to `region`'s pool agent about `sid`, bound to the exact request `body` (60 s, one-time).
    pub fn pool_command(
        &self,
        sid: &SessionId,
        region: &RegionId,
        body: &[u8],
        entropy: [u8; 16],
        now: Timestamp,
    ) -> Claims {
        let subject = Subject::new(CONTROL_SUBJECT).unwrap_or_else(|_| unreachable_id());
        let mut claims = self.claims(Scope::PoolCommand, pool_audience(region), subject, (sid, region), entropy, now);
        claims.bh = Some(body_hash(body));
        claims
    }
}

/// base64url SHA-256 of a request body.
pub fn body_hash(body: &[u8]) -> String {
    base64url::encode(&Sha256::digest(body))
}

/// Checks that a verified pool command was issued for exactly this body.
pub fn check_body(command: &Verified, body: &[u8]) -> Result<(), TokenError> {
    let expected = body_hash(body);
    match command.claims().bh.as_deref() {
        Some(bh) if subtle::ConstantTimeEq::ct_eq(bh.as_bytes(), expected.as_bytes()).into() => Ok(()),
        _ => Err(TokenError::BadClaim("bh: the command was signed for another body")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(now: Timestamp) -> Terms {
        crate::lifetime::LifetimePolicy::DEFAULT.terms_at_mint(None, now).unwrap()
    }

    fn attach_now() -> (Issuer, Claims, Timestamp) {
        let issuer = Issuer::new("edgeshell-control");
        let now = Timestamp::from_millis(1_800_000_000_000);
        let sid = session_id([7; 16]);
        let claims = issuer.attach(
            &Subject::new("alice").unwrap(),
            (&sid, &RegionId::new("eu").unwrap()),
            terms(now),
            [1; 16],
            now,
        );
        (issuer, claims, now)
    }

    #[test]
    fn claims_the_issuer_makes_now_are_signable() {
        let (issuer, claims, now) = attach_now();
        assert_eq!(issuer.check_signable(&claims, now), Ok(()));
        let join = issuer.join((&claims.sid, &claims.region), terms(now), [2; 16], now);
        assert_eq!(issuer.check_signable(&join, now), Ok(()));
    }

    #[test]
    fn another_issuer_a_long_life_an_expired_a_back_or_post_dated_token_is_not_signable() {
        let (issuer, claims, now) = attach_now();
        let refused = |mutate: fn(&mut Claims)| {
            let mut c = claims.clone();
            mutate(&mut c);
            issuer.check_signable(&c, now)
        };
        assert!(matches!(
            Issuer::new("someone-else").check_signable(&claims, now),
            Err(SignRefusal::Claims(TokenError::WrongIssuer(_)))
        ));
        assert!(matches!(
            refused(|c| c.exp = c.nbf + 30 * 24 * 3600),
            Err(SignRefusal::Claims(TokenError::LifetimeTooLong { .. }))
        ));
        assert!(matches!(refused(|c| c.exp = c.iat), Err(SignRefusal::Claims(_))));
        let back_dated = refused(|c| {
            c.iat -= 3600;
            c.nbf -= 3600;
            c.exp -= 3600;
        });
        assert!(matches!(back_dated, Err(SignRefusal::NotNow { .. })));
        assert!(matches!(refused(|c| c.iat += 3600), Err(SignRefusal::NotNow { .. })));
    }

    #[test]
    fn session_tokens_carry_their_terms_within_the_ceiling_and_no_other_kind_does() {
        let (issuer, claims, now) = attach_now();
        let bad = |c: Claims| match issuer.check_signable(&c, now) {
            Err(SignRefusal::Claims(TokenError::BadClaim(m))) => m,
            other => panic!("{other:?}"),
        };
        assert!(bad(Claims { ses: None, ..claims.clone() }).starts_with("ses: the session's terms are missing"));
        let forever = Terms { ends: now.as_secs() + 8 * 24 * 3600, idle: None, detached: None };
        assert!(bad(Claims { ses: Some(forever), ..claims.clone() }).contains("ceiling"));
        let put = issuer.artifact_put((&claims.sid, &claims.region), now + Duration::from_secs(60), [3; 16], now);
        assert!(bad(Claims { ses: claims.ses, ..put }).starts_with("ses not allowed"));
    }
    use crate::dangerous::assume_verified;
    use crate::ids::Kid;
    use crate::tokens::{Expectation, ValidationOptions, Validator};

    fn check(claims: &Claims, scope: Scope, aud: &str, lifetime: u64) {
        assert_eq!((claims.scope, claims.aud.as_str(), claims.exp - claims.nbf), (scope, aud, lifetime));
        let validator = Validator::new(ValidationOptions::new("https://control.test", aud));
        let expect = Expectation { scope, session: Some(&claims.sid) };
        assert_eq!(validator.check_claims(claims, expect, Timestamp::from_secs(claims.iat)), Ok(()), "{scope}");
    }

    #[test]
    fn every_kind_passes_its_own_validation() {
        let i = Issuer::new("https://control.test");
        let (sid, region, user) = (session_id([1; 16]), RegionId::new("eu").unwrap(), Subject::new("alice").unwrap());
        let now = Timestamp::from_secs(1_800_000_000);
        check(&i.attach(&user, (&sid, &region), terms(now), [2; 16], now), Scope::Attach, EDGE_AUDIENCE, 600);
        check(&i.join((&sid, &region), terms(now), [3; 16], now), Scope::Join, EDGE_AUDIENCE, 900);
        let week = Duration::from_secs(7 * 24 * 3600);
        check(&i.artifact_put((&sid, &region), now + week, [4; 16], now), Scope::ArtifactPut, EDGE_AUDIENCE, 604_800);
        let until = i.artifact_put((&sid, &region), now + Duration::from_secs(3600), [4; 16], now);
        assert_eq!(until.exp - until.iat, 3600, "an upload token lives no longer than its session may");
        let capped = i.artifact_put((&sid, &region), now + week + week, [4; 16], now);
        assert_eq!(capped.exp - capped.iat, 604_800, "nor longer than its kind's cap");
        check(&i.pool_command(&sid, &region, b"{}", [5; 16], now), Scope::PoolCommand, "edgeshell-pool:eu", 60);
        assert_eq!(i.join((&sid, &region), terms(now), [3; 16], now).sub.as_str(), "pool:eu");
        assert_ne!(jti([2; 16]), jti([3; 16]));
        assert_eq!(sid.as_str().len(), 24);
    }

    #[test]
    fn attach_lifetimes_are_clamped_to_the_refresh_lead_and_the_scope() {
        let i = Issuer::new("https://control.test");
        let (sid, region, user) = (session_id([1; 16]), RegionId::new("eu").unwrap(), Subject::new("alice").unwrap());
        let now = Timestamp::from_secs(1_800_000_000);
        let at = (&sid, &region);
        let t = terms(now);
        check(&i.attach_for(&user, at, t, [2; 16], now, 120), Scope::Attach, EDGE_AUDIENCE, 120);
        check(&i.attach_for(&user, at, t, [2; 16], now, 1), Scope::Attach, EDGE_AUDIENCE, MIN_ATTACH_LIFETIME_SECS);
        check(&i.attach_for(&user, at, t, [2; 16], now, u64::MAX), Scope::Attach, EDGE_AUDIENCE, 600);
    }

    #[test]
    fn pool_commands_are_bound_to_their_body() {
        let i = Issuer::new("https://control.test");
        let (sid, region) = (session_id([1; 16]), RegionId::new("eu").unwrap());
        let body = br#"{"action":"start","session":"s_1"}"#;
        let claims = i.pool_command(&sid, &region, body, [5; 16], Timestamp::from_secs(1));
        let verified = assume_verified(claims, Kid::new("k").unwrap());
        assert_eq!(check_body(&verified, body), Ok(()));
        assert!(check_body(&verified, br#"{"action":"stop","session":"s_1"}"#).is_err());
    }
}

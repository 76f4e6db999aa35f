//! OIDC ID tokens (OpenID Connect Core 1.0, section 3.1.3.7): proving who a user is, once, when they
//! mint a session. Works for any RS256 provider, Firebase Auth included, and the local dev issuer.
//!
//! Identity is not capability: an ID token never reaches the edge; the control plane turns it into our
//! own short-lived, single-purpose tokens.

use crate::ids::Subject;
use crate::jwks::KeySet;
use crate::time::Timestamp;
use crate::tokens::json_object;
use crate::tokens::{verify_signature, SignatureVerifier, TokenError, UntrustedToken};
use core::time::Duration;
use serde::Deserialize;

/// Which provider to trust, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProvider {
    /// The exact `iss`.
    pub issuer: String,
    /// Our client id: must be in `aud` (and be `azp` when there are several audiences).
    pub client_id: String,
    /// Clock skew tolerated.
    pub leeway: Duration,
    /// Refuse identities authenticated longer ago than this (`auth_time`), if set.
    pub max_auth_age: Option<Duration>,
}

impl OidcProvider {
    /// A provider with a 60-second leeway and no authentication age limit.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        OidcProvider {
            issuer: issuer.into(),
            client_id: client_id.into(),
            leeway: Duration::from_secs(60),
            max_auth_age: None,
        }
    }

    /// Firebase Auth for a project: issuer `https://securetoken.google.com/<project>`, audience the project.
    pub fn firebase(project_id: &str) -> Self {
        OidcProvider::new(format!("https://securetoken.google.com/{project_id}"), project_id)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, id: &str) -> bool {
        match self {
            Audience::One(a) => a == id,
            Audience::Many(all) => all.iter().any(|a| a == id),
        }
    }

    fn is_many(&self) -> bool {
        matches!(self, Audience::Many(all) if all.len() > 1)
    }
}

/// The claims we read from an ID token; providers add many more, which are ignored.
#[derive(Debug, Clone, Deserialize)]
struct IdTokenClaims {
    iss: String,
    aud: Audience,
    sub: String,
    exp: u64,
    iat: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    auth_time: Option<u64>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
}

/// Who the user is, as the provider vouches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's stable user id.
    pub subject: Subject,
    /// E-mail, if the provider shared it.
    pub email: Option<String>,
    /// Whether the provider verified that e-mail.
    pub email_verified: bool,
    /// Display name, if shared.
    pub name: Option<String>,
}

/// Verifies an ID token's signature against the provider's keys and checks its claims.
pub async fn verify_id_token(
    token: &str,
    provider: &OidcProvider,
    keys: &KeySet,
    verifier: &impl SignatureVerifier,
    now: Timestamp,
) -> Result<Identity, TokenError> {
    let untrusted = UntrustedToken::parse(token)?;
    verify_signature(&untrusted, keys, verifier).await?;
    let c: IdTokenClaims = json_object(untrusted.payload(), "ID token claims")?;
    check(&c, provider, now)?;
    let subject = Subject::new(c.sub).map_err(|_| TokenError::BadClaim("sub"))?;
    Ok(Identity { subject, email: c.email, email_verified: c.email_verified.unwrap_or(false), name: c.name })
}

fn check(c: &IdTokenClaims, p: &OidcProvider, now: Timestamp) -> Result<(), TokenError> {
    let (now_s, leeway) = (now.as_secs(), p.leeway.as_secs());
    if c.iss != p.issuer {
        return Err(TokenError::WrongIssuer(c.iss.clone()));
    }
    if !c.aud.contains(&p.client_id) {
        return Err(TokenError::WrongAudience(match &c.aud {
            Audience::One(a) => a.clone(),
            Audience::Many(all) => all.join(", "),
        }));
    }
    if c.aud.is_many() && c.azp.as_deref() != Some(p.client_id.as_str()) {
        return Err(TokenError::BadClaim("azp"));
    }
    if c.sub.is_empty() {
        return Err(TokenError::BadClaim("sub"));
    }
    if c.exp.saturating_add(leeway) <= now_s {
        return Err(TokenError::Expired { exp: c.exp, now: now_s });
    }
    let not_before = c.iat.max(c.nbf.unwrap_or(0)).max(c.auth_time.unwrap_or(0));
    if not_before > now_s.saturating_add(leeway) {
        return Err(TokenError::NotYetValid { nbf: not_before, now: now_s });
    }
    if let (Some(max), Some(auth)) = (p.max_auth_age, c.auth_time) {
        if now_s.saturating_sub(auth) > max.as_secs() {
            return Err(TokenError::BadClaim("auth_time: signed in too long ago"));
        }
    }
    Ok(())
}

//! What the code flow remembers between requests: one-time authorization codes bound to their client,
//! redirect URI and PKCE challenge (RFC 7636, `S256` only), and refresh tokens that rotate on every use
//! (OAuth 2.0 Security BCP, section 4.14): a refresh token works once, and presenting one that was
//! already used, or a code that was already redeemed, revokes every token descended from that sign-in,
//! since only a thief or a confused client does that. The page renews one tab at a time for exactly this
//! reason. State lives in memory: restarting the dev issuer signs everyone out.

use edgeshell_core::base64url;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// How long a code may wait to be redeemed.
pub(crate) const CODE_SECS: u64 = 60;

/// Who signed in, and how: what every ID token of one sign-in repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedIn {
    /// The dev user's name.
    pub(crate) user: String,
    /// The scopes granted.
    pub(crate) scope: String,
    /// When the person signed in (`auth_time`, unchanged by refreshes).
    pub(crate) auth_time: u64,
    /// The sign-in request's nonce (the first ID token only).
    pub(crate) nonce: Option<String>,
}

impl SignedIn {
    /// Whether refresh tokens were asked for (`offline_access`, as most providers require).
    pub(crate) fn offline(&self) -> bool {
        self.scope.split(' ').any(|s| s == "offline_access")
    }
}

/// A code as issued at the sign-in page.
#[derive(Debug, Clone)]
pub(crate) struct CodeRequest {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    /// The PKCE `code_challenge` (`S256`).
    pub(crate) challenge: String,
    pub(crate) signed_in: SignedIn,
}

/// Why a grant was refused: the RFC 6749 `error` and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrantError {
    pub(crate) error: &'static str,
    pub(crate) description: String,
}

fn refused(description: impl Into<String>) -> GrantError {
    GrantError { error: "invalid_grant", description: description.into() }
}

struct Code {
    request: CodeRequest,
    issued: u64,
    /// The family of refresh tokens the redemption started, once redeemed.
    redeemed: Option<u64>,
}

struct Refresh {
    family: u64,
    client_id: String,
    signed_in: SignedIn,
    expires: u64,
    used: bool,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Code>,
    refresh: HashMap<String, Refresh>,
    revoked: HashSet<u64>,
    next_family: u64,
    refreshed: u64,
    reuses: u64,
}

/// The issuer's grants.
#[derive(Default)]
pub(crate) struct Grants {
    state: Mutex<State>,
}

/// 32 random bytes, base64url: codes, refresh and access tokens.
pub(crate) fn opaque_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64url::encode(&bytes)
}

/// Whether `verifier` (43 to 128 unreserved characters) hashes to `challenge`.
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && base64url::encode(&Sha256::digest(verifier.as_bytes())) == challenge
}

/// Whether `challenge` has the shape of an `S256` challenge (43 base64url characters).
pub(crate) fn is_challenge(challenge: &str) -> bool {
    base64url::decode(challenge).is_ok_and(|bytes| bytes.len() == 32)
}

impl Grants {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Issues a one-time code for a sign-in.
    pub(crate) fn issue_code(&self, request: CodeRequest, now: u64) -> String {
        let code = opaque_token();
        let mut state = self.state();
        state.codes.retain(|_, c| c.issued + CODE_SECS * 10 > now);
        state.codes.insert(code.clone(), Code { request, issued: now, redeemed: None });
        code
    }

    /// Redeems a code: the sign-in, and a refresh token when `offline_access` was granted. A second
    /// redemption is refused and revokes what the first one got.
    pub(crate) fn redeem(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        now: u64,
        refresh_secs: u64,
    ) -> Result<(SignedIn, Option<String>), GrantError> {
        let mut state = self.state();
        let Some(entry) = state.codes.get_mut(code) else { return Err(refused("unknown or expired code")) };
        if let Some(family) = entry.redeemed {
            state.revoked.insert(family);
            state.reuses += 1;
            return Err(refused("the code was already used; the tokens it gave are revoked"));
        }
        let request = entry.request.clone();
        if request.client_id != client_id {
            return Err(refused("the code was issued to another client"));
        }
        if request.redirect_uri != redirect_uri {
            return Err(refused("redirect_uri differs from the sign-in request's"));
        }
        if entry.issued + CODE_SECS <= now {
            return Err(refused("the code expired"));
        }
        if !pkce_matches(verifier, &request.challenge) {
            return Err(refused("code_verifier does not match the code_challenge"));
        }
        let family = state.next_family;
        state.next_family += 1;
        if let Some(entry) = state.codes.get_mut(code) {
            entry.redeemed = Some(family);
        }
        let signed_in = request.signed_in;
        let refresh = signed_in.offline().then(|| {
            let token = opaque_token();
            let record = Refresh {
                family,
                client_id: client_id.to_owned(),
                signed_in: SignedIn { nonce: None, ..signed_in.clone() },
                expires: now + refresh_secs,
                used: false,
            };
            state.refresh.insert(token.clone(), record);
            token
        });
        Ok((signed_in, refresh))
    }

    /// Uses a refresh token: the sign-in it continues and its successor. A token used before revokes
    /// its whole family (both the thief's and the owner's copies stop working).
    pub(crate) fn refresh(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
        refresh_secs: u64,
    ) -> Result<(SignedIn, String), GrantError> {
        let mut state = self.state();
        state.refresh.retain(|_, r| r.expires > now);
        let Some(record) = state.refresh.get_mut(token) else {
            return Err(refused("unknown, expired or revoked refresh token"));
        };
        if record.client_id != client_id {
            return Err(refused("the refresh token was issued to another client"));
        }
        let (family, was_used) = (record.family, std::mem::replace(&mut record.used, true));
        let signed_in = record.signed_in.clone();
        if was_used {
            state.revoked.insert(family);
            state.reuses += 1;
            return Err(refused("the refresh token was already used; its sign-in is revoked"));
        }
        if state.revoked.contains(&family) {
            return Err(refused("the sign-in was revoked"));
        }
        let next = opaque_token();
        let successor = Refresh {
            family,
            client_id: client_id.to_owned(),
            signed_in: signed_in.clone(),
            expires: now + refresh_secs,
            used: false,
        };
        state.refresh.insert(next.clone(), successor);
        state.refreshed += 1;
        Ok((signed_in, next))
    }

    /// Revokes the sign-in a refresh token belongs to (RFC 7009: unknown tokens are not an error).
    pub(crate) fn revoke(&self, token: &str) {
        let mut state = self.state();
        if let Some(family) = state.refresh.get(token).map(|r| r.family) {
            state.revoked.insert(family);
        }
    }

    /// Refresh grants answered, and reuses detected (each revoked a sign-in).
    pub(crate) fn counts(&self) -> (u64, u64) {
        let state = self.state();
        (state.refreshed, state.reuses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    // RFC 7636, appendix B.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn request(scope: &str) -> CodeRequest {
        CodeRequest {
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1:1/".into(),
            challenge: CHALLENGE.into(),
            signed_in: SignedIn { user: "alice".into(), scope: scope.into(), auth_time: 100, nonce: Some("n".into()) },
        }
    }

    #[test]
    fn pkce_follows_the_rfc_example() {
        assert!(pkce_matches(VERIFIER, CHALLENGE));
        assert!(is_challenge(CHALLENGE));
        assert!(!pkce_matches(&VERIFIER.replace('d', "e"), CHALLENGE));
        assert!(!pkce_matches("short", CHALLENGE));
        assert!(!is_challenge("plain-verifier-not-a-hash"));
    }

    #[test]
    fn a_code_works_once_with_its_verifier_and_a_second_use_revokes() {
        let grants = Grants::default();
        let code = grants.issue_code(request("openid offline_access"), 100);
        let redeem = |verifier: &str, uri: &str, now| grants.redeem(&code, "c", uri, verifier, now, 3600);
        assert_eq!(redeem("x".repeat(43).as_str(), "http://127.0.0.1:1/", 101).unwrap_err().error, "invalid_grant");
        assert!(redeem(VERIFIER, "http://127.0.0.1:2/", 101).is_err(), "another redirect_uri");
        assert!(grants.redeem(&code, "other", "http://127.0.0.1:1/", VERIFIER, 101, 3600).is_err());
        let (signed_in, refresh) = redeem(VERIFIER, "http://127.0.0.1:1/", 101).unwrap();
        assert_eq!(signed_in.nonce.as_deref(), Some("n"));
        let refresh = refresh.expect("offline_access gives a refresh token");
        assert!(redeem(VERIFIER, "http://127.0.0.1:1/", 102).is_err(), "a code works once");
        assert!(grants.refresh(&refresh, "c", 103, 3600).is_err(), "the replayed code revoked its tokens");
        assert_eq!(grants.counts(), (0, 1));
    }

    #[test]
    fn codes_expire_and_refresh_tokens_need_offline_access() {
        let grants = Grants::default();
        let code = grants.issue_code(request("openid"), 100);
        assert!(grants.redeem(&code, "c", "http://127.0.0.1:1/", VERIFIER, 100 + CODE_SECS, 60).is_err());
        let code = grants.issue_code(request("openid email"), 100);
        let (_, refresh) = grants.redeem(&code, "c", "http://127.0.0.1:1/", VERIFIER, 101, 60).unwrap();
        assert!(refresh.is_none());
    }

    #[test]
    fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
        let grants = Grants::default();
        let code = grants.issue_code(request("openid offline_access"), 100);
        let (_, first) = grants.redeem(&code, "c", "http://127.0.0.1:1/", VERIFIER, 101, 60).unwrap();
        let first = first.unwrap();
        let (signed_in, second) = grants.refresh(&first, "c", 110, 60).unwrap();
        assert_eq!((signed_in.auth_time, signed_in.nonce), (100, None), "auth_time kept, no nonce");
        let (_, third) = grants.refresh(&second, "c", 120, 60).unwrap();
        assert!(grants.refresh(&third, "other", 121, 60).is_err(), "another client");
        // The first token again: refused, and the live one stops working too.
        assert!(grants.refresh(&first, "c", 130, 60).is_err());
        assert!(grants.refresh(&third, "c", 131, 60).is_err());
        assert_eq!(grants.counts(), (2, 1));
        // Expiry and revocation.
        let code = grants.issue_code(request("openid offline_access"), 200);
        let (_, t) = grants.redeem(&code, "c", "http://127.0.0.1:1/", VERIFIER, 201, 60).unwrap();
        assert!(grants.refresh(t.as_deref().unwrap(), "c", 261, 60).is_err(), "expired");
        let code = grants.issue_code(request("openid offline_access"), 300);
        let (_, t) = grants.redeem(&code, "c", "http://127.0.0.1:1/", VERIFIER, 301, 60).unwrap();
        grants.revoke(t.as_deref().unwrap());
        assert!(grants.refresh(t.as_deref().unwrap(), "c", 302, 60).is_err(), "revoked");
    }
}

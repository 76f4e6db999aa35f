//! How a peer presents its credential when it opens a session WebSocket: in `Sec-WebSocket-Protocol`,
//! never in the URL (URLs end up in access logs and browser history), because browsers cannot set other
//! headers on a WebSocket. The client offers `edgeshell.v1` plus one credential subprotocol; the server
//! answers with `edgeshell.v1` only, so the credential is never echoed back.
//!
//! - `edgeshell.auth.<compact JWS>`: an attach token (browser) or join token (runner);
//! - `edgeshell.resume.<ticket>`: the resume ticket of the peer's last `Welcome`.
//!
//! Compact JWS (base64url and dots) and tickets (`<holder>.<base64url>`) are valid subprotocol tokens.

use super::{CloseCode, Role};
use crate::ids::SessionId;

/// The subprotocol of this protocol version, the only one a server answers with.
pub const SUBPROTOCOL: &str = "edgeshell.v1";

const AUTH_PREFIX: &str = "edgeshell.auth.";
const RESUME_PREFIX: &str = "edgeshell.resume.";

/// The credential a peer opens a connection with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A compact JWS: attach token (browser) or join token (runner).
    Token(String),
    /// A resume ticket from the last `Welcome`.
    Resume(String),
}

impl core::fmt::Debug for Credential {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Both are bearer secrets.
        f.write_str(match self {
            Credential::Token(_) => "Credential::Token(..)",
            Credential::Resume(_) => "Credential::Resume(..)",
        })
    }
}

/// Why an offered subprotocol list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// `edgeshell.v1` was not offered: another version or not our client.
    #[error("the client does not speak {SUBPROTOCOL}")]
    WrongVersion,
    /// No `edgeshell.auth.*` or `edgeshell.resume.*` entry.
    #[error("no credential offered in Sec-WebSocket-Protocol")]
    NoCredential,
    /// More than one credential, or an empty or malformed one.
    #[error("malformed credential in Sec-WebSocket-Protocol: {0}")]
    Malformed(&'static str),
}

impl Credential {
    /// The subprotocols a client offers, in order: the version, then the credential.
    pub fn offer(&self) -> [String; 2] {
        let credential = match self {
            Credential::Token(t) => format!("{AUTH_PREFIX}{t}"),
            Credential::Resume(t) => format!("{RESUME_PREFIX}{t}"),
        };
        [SUBPROTOCOL.to_owned(), credential]
    }

    /// The `Sec-WebSocket-Protocol` header value a client sends.
    pub fn header_value(&self) -> String {
        self.offer().join(", ")
    }

    /// Reads the credential from the offered subprotocols (one or more comma-separated header values).
    pub fn from_offer(header: &str) -> Result<Credential, HandshakeError> {
        let mut version = false;
        let mut found = None;
        for item in header.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let credential = if item == SUBPROTOCOL {
                version = true;
                continue;
            } else if let Some(token) = item.strip_prefix(AUTH_PREFIX) {
                Credential::Token(check_text(token)?.to_owned())
            } else if let Some(ticket) = item.strip_prefix(RESUME_PREFIX) {
                Credential::Resume(check_text(ticket)?.to_owned())
            } else {
                // Other subprotocols are ignored, as RFC 6455 allows.
                continue;
            };
            if found.replace(credential).is_some() {
                return Err(HandshakeError::Malformed("more than one credential"));
            }
        }
        if !version {
            return Err(HandshakeError::WrongVersion);
        }
        found.ok_or(HandshakeError::NoCredential)
    }
}

/// The subprotocol to answer an upgrade that offered `offered` (the `Sec-WebSocket-Protocol` value),
/// always one the client offered: ours if offered; else (a refusal of another version) the first
/// offered that is not a credential, so the client completes the handshake and reads the close code
/// that says why; else none. RFC 6455 makes a client fail a connection answered with a subprotocol it
/// did not offer, and browsers also fail one answered with none when they offered some, which would
/// hide the close code. A credential is never echoed into a response header.
pub fn answered_subprotocol(offered: &str) -> Option<&str> {
    let mut items = offered.split(',').map(str::trim).filter(|p| !p.is_empty());
    if items.clone().any(|p| p == SUBPROTOCOL) {
        return Some(SUBPROTOCOL);
    }
    items.find(|p| !p.starts_with(AUTH_PREFIX) && !p.starts_with(RESUME_PREFIX))
}

/// What a session WebSocket upgrade asks for, read from its path, query and offered subprotocols before
/// any token is checked: `/sessions/{sid}/attach` (browser) or `/sessions/{sid}/join` (runner), and for a
/// browser's resume the offset it continues at (`?offset=<bytes>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The session addressed.
    pub session: SessionId,
    /// Who connects.
    pub role: Role,
    /// With what.
    pub credential: Credential,
    /// A browser resume's offset (output bytes it already has).
    pub offset: Option<u64>,
}

/// A session connection refused, with the close code that says why: before any token check
/// ([`Upgrade::parse`]), or by a host's token check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct UpgradeRefused {
    /// The close code (and through it the HTTP status).
    pub code: CloseCode,
    /// What was wrong.
    pub reason: String,
}

impl UpgradeRefused {
    /// A refusal with this code and reason.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> UpgradeRefused {
        UpgradeRefused { code, reason: reason.into() }
    }
}

impl From<crate::tokens::TokenError> for UpgradeRefused {
    fn from(e: crate::tokens::TokenError) -> UpgradeRefused {
        UpgradeRefused::new(CloseCode::from(&e), e.to_string())
    }
}

impl Upgrade {
    /// Reads an upgrade request: the URL path, its query (if any) and the `Sec-WebSocket-Protocol` value.
    pub fn parse(path: &str, query: Option<&str>, protocols: &str) -> Result<Upgrade, UpgradeRefused> {
        let refuse = |code, reason: String| UpgradeRefused::new(code, reason);
        let no_route = || refuse(CloseCode::SessionNotFound, format!("no route {path}"));
        let rest = path.strip_prefix("/sessions/").ok_or_else(no_route)?;
        let (sid, tail) = rest.split_once('/').ok_or_else(no_route)?;
        let role = match tail {
            "attach" => Role::Browser,
            "join" => Role::Runner,
            _ => return Err(no_route()),
        };
        let session = SessionId::new(sid).map_err(|e| refuse(CloseCode::SessionNotFound, e.to_string()))?;
        let credential = Credential::from_offer(protocols).map_err(|e| {
            let code =
                if e == HandshakeError::WrongVersion { CloseCode::ProtocolError } else { CloseCode::Unauthorized };
            refuse(code, e.to_string())
        })?;
        let offset = match (role, &credential) {
            (Role::Browser, Credential::Resume(_)) => {
                let value = query
                    .unwrap_or_default()
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("offset="))
                    .ok_or_else(|| refuse(CloseCode::ProtocolError, "a resume needs ?offset=<bytes>".into()))?;
                let offset = value
                    .parse()
                    .map_err(|_| refuse(CloseCode::ProtocolError, format!("offset {value:?} is not a byte count")))?;
                Some(offset)
            }
            _ => None,
        };
        Ok(Upgrade { session, role, credential, offset })
    }
}

fn check_text(text: &str) -> Result<&str, HandshakeError> {
    if text.is_empty() {
        return Err(HandshakeError::Malformed("empty"));
    }
    if text.len() > super::MAX_TEXT_BYTES {
        return Err(HandshakeError::Malformed("too long"));
    }
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(HandshakeError::Malformed("characters outside base64url and '.'"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: &str, expected: Result<Credential, HandshakeError>) {
        assert_eq!(Credential::from_offer(header), expected, "{header}");
    }

    #[test]
    fn only_an_offered_subprotocol_is_answered() {
        assert_eq!(answered_subprotocol("edgeshell.v1, edgeshell.auth.x"), Some(SUBPROTOCOL));
        assert_eq!(answered_subprotocol("edgeshell.auth.x,edgeshell.v1"), Some(SUBPROTOCOL));
        assert_eq!(answered_subprotocol("edgeshell.v0, edgeshell.auth.x"), Some("edgeshell.v0"));
        assert_eq!(answered_subprotocol("edgeshell.auth.x, edgeshell.v10"), Some("edgeshell.v10"));
        assert_eq!(answered_subprotocol("edgeshell.auth.x, edgeshell.resume.y"), None, "never a credential");
        assert_eq!(answered_subprotocol(""), None);
    }

    #[test]
    fn offers_round_trip() {
        for c in [Credential::Token("eyJ.eyJ.sig-_".into()), Credential::Resume("r.AAAA".into())] {
            check(&c.header_value(), Ok(c.clone()));
            // Browsers may send the list as several header lines joined by the server.
            check(&format!("chat, {}", c.offer().join(",")), Ok(c));
        }
    }

    #[test]
    fn refuses_what_is_not_one_clean_credential() {
        check("edgeshell.auth.a.b.c", Err(HandshakeError::WrongVersion));
        check("edgeshell.v2, edgeshell.auth.x", Err(HandshakeError::WrongVersion));
        check("edgeshell.v1", Err(HandshakeError::NoCredential));
        check("edgeshell.v1, edgeshell.auth.", Err(HandshakeError::Malformed("empty")));
        check(
            "edgeshell.v1, edgeshell.auth.a, edgeshell.resume.r.b",
            Err(HandshakeError::Malformed("more than one credential")),
        );
        check(
            "edgeshell.v1, edgeshell.auth.a/b",
            Err(HandshakeError::Malformed("characters outside base64url and '.'")),
        );
        let long = format!("edgeshell.v1, edgeshell.auth.{}", "a".repeat(super::super::MAX_TEXT_BYTES + 1));
        check(&long, Err(HandshakeError::Malformed("too long")));
        assert_eq!(format!("{:?}", Credential::Token("secret".into())), "Credential::Token(..)");
    }

    #[test]
    fn upgrades_name_session_role_credential_and_offset() {
        let token = Credential::Token("a.b.c".into()).header_value();
        let resume = Credential::Resume("s1.AAAA".into()).header_value();
        let up = Upgrade::parse("/sessions/s_abc/attach", None, &token).unwrap();
        assert_eq!((up.session.as_str(), up.role, up.offset), ("s_abc", Role::Browser, None));
        let up = Upgrade::parse("/sessions/s_abc/join", Some("x=1"), &resume).unwrap();
        assert_eq!((up.role, up.offset), (Role::Runner, None), "runners resume where the room says");
        let up = Upgrade::parse("/sessions/s_abc/attach", Some("a=b&offset=42"), &resume).unwrap();
        assert_eq!(up.offset, Some(42));
        let code =
            |path: &str, query: Option<&str>, protocols: &str| Upgrade::parse(path, query, protocols).unwrap_err().code;
        assert_eq!(code("/sessions/s_abc/attach", None, &resume), CloseCode::ProtocolError);
        assert_eq!(code("/sessions/s_abc/attach", Some("offset=-1"), &resume), CloseCode::ProtocolError);
        assert_eq!(code("/sessions/s_abc/watch", None, &token), CloseCode::SessionNotFound);
        assert_eq!(code("/sessions/../attach", None, &token), CloseCode::SessionNotFound);
        assert_eq!(code("/sessions/s_abc", None, &token), CloseCode::SessionNotFound);
        assert_eq!(code("/sessions/s_abc/attach", None, "edgeshell.v1"), CloseCode::Unauthorized);
        assert_eq!(code("/sessions/s_abc/attach", None, "chat"), CloseCode::ProtocolError);
    }
}

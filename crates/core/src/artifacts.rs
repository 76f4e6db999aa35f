//! Artifacts (files a session's program produces): path rules, the limits
//! (docs/requirements.md#r-limits), and download links — `artifact:get` tokens bound to one session,
//! one path, one method and a short expiry, with a `kid` in the header and a one-time `jti` that the
//! JTI store consumes on use.

use crate::ids::{Jti, RegionId, SessionId, Subject};
use crate::time::Timestamp;
use crate::tokens::{ArtifactGrant, Claims, Method, Scope, Verified};
use core::fmt;
use core::time::Duration;

/// Why an artifact request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// The path is not a safe relative path.
    #[error("artifact path {path:?} is invalid: {reason}")]
    BadPath {
        /// The path given (truncated for display).
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The link is for another session, path or method.
    #[error("link does not grant {0}")]
    NotGranted(&'static str),
    /// The link was not an artifact link.
    #[error("token is not an artifact link")]
    NotALink,
    /// A limit would be exceeded.
    #[error("{what} limit exceeded: {value} > {limit}")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The value it would reach.
        value: u64,
        /// The limit.
        limit: u64,
    },
}

const MAX_PATH_BYTES: usize = 512;
const MAX_SEGMENTS: usize = 16;

/// A validated artifact path: relative, `/`-separated, no empty, `.` or `..` segments, printable ASCII
/// without characters that mean something in URLs, shells or Windows paths.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// Validates `path`.
    pub fn new(path: &str) -> Result<Self, ArtifactError> {
        let bad = |reason| ArtifactError::BadPath { path: path.chars().take(80).collect(), reason };
        if path.is_empty() || path.len() > MAX_PATH_BYTES {
            return Err(bad("must be 1 to 512 bytes"));
        }
        if path.starts_with('/') {
            return Err(bad("must be relative"));
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() > MAX_SEGMENTS {
            return Err(bad("too many segments"));
        }
        for s in segments {
            if s.is_empty() {
                return Err(bad("empty segment"));
            }
            if s == "." || s == ".." {
                return Err(bad("dot segment"));
            }
            if s.starts_with(' ') || s.ends_with(' ') || s.ends_with('.') {
                return Err(bad("segment starts or ends with a space, or ends with a dot"));
            }
            if let Some(c) = s.chars().find(|c| !is_path_char(*c)) {
                return Err(if c == '\\' { bad("backslash") } else { bad("character not allowed") });
            }
        }
        Ok(ArtifactPath(path.to_owned()))
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '+' | '@' | '=' | ',' | '(' | ')' | '[' | ']')
}

impl fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Limits on artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactLimits {
    /// Artifacts one session may store.
    pub max_per_session: u32,
    /// Bytes one artifact may hold.
    pub max_bytes: u64,
    /// Bytes one user may store across sessions.
    pub max_user_bytes: u64,
    /// How long artifacts are kept.
    pub retention: Duration,
    /// How long a download link is valid.
    pub link_ttl: Duration,
}

impl ArtifactLimits {
    /// The defaults (docs/requirements.md#r-limits).
    pub const DEFAULT: ArtifactLimits = ArtifactLimits {
        max_per_session: 50,
        max_bytes: 100 * 1024 * 1024,
        max_user_bytes: 10 * 1024 * 1024 * 1024,
        retention: Duration::from_secs(7 * 24 * 60 * 60),
        link_ttl: Duration::from_secs(5 * 60),
    };
}

impl Default for ArtifactLimits {
    fn default() -> Self {
        ArtifactLimits::DEFAULT
    }
}

/// What is stored already, for quota checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Artifacts in this session.
    pub session_artifacts: u32,
    /// Bytes stored by the user.
    pub user_bytes: u64,
}

impl ArtifactLimits {
    /// Whether an upload of `size` bytes fits.
    pub fn check_upload(&self, usage: Usage, size: u64) -> Result<(), ArtifactError> {
        let exceeded = |what, value, limit| Err(ArtifactError::LimitExceeded { what, value, limit });
        if size > self.max_bytes {
            return exceeded("artifact size", size, self.max_bytes);
        }
        let count = u64::from(usage.session_artifacts) + 1;
        if count > u64::from(self.max_per_session) {
            return exceeded("artifacts per session", count, u64::from(self.max_per_session));
        }
        let total = usage.user_bytes.saturating_add(size);
        if total > self.max_user_bytes {
            return exceeded("storage per user", total, self.max_user_bytes);
        }
        Ok(())
    }

    /// When an artifact stored at `created` is deleted.
    pub fn expires_at(&self, created: Timestamp) -> Timestamp {
        created + self.retention
    }
}

/// Everything a download link is bound to.
#[derive(Debug, Clone)]
pub struct LinkRequest<'a> {
    /// Issuer of the link (the control plane).
    pub issuer: &'a str,
    /// Audience (the edge).
    pub audience: &'a str,
    /// The session's owner; only they are given links.
    pub owner: &'a Subject,
    /// The session.
    pub session: &'a SessionId,
    /// Its region.
    pub region: &'a RegionId,
    /// The artifact.
    pub path: &'a ArtifactPath,
    /// The one method allowed.
    pub method: Method,
    /// A fresh unique id (from the caller's randomness).
    pub jti: Jti,
}

/// The claims of a download link issued at `now`, valid for `limits.link_ttl`.
pub fn link_claims(req: LinkRequest<'_>, limits: &ArtifactLimits, now: Timestamp) -> Claims {
    let ttl = limits.link_ttl.min(Duration::from_secs(Scope::ArtifactGet.max_lifetime_secs()));
    Claims {
        iss: req.issuer.to_owned(),
        aud: req.audience.to_owned(),
        sub: req.owner.clone(),
        sid: req.session.clone(),
        region: req.region.clone(),
        jti: req.jti,
        iat: now.as_secs(),
        nbf: now.as_secs(),
        exp: (now + ttl).as_secs(),
        scope: Scope::ArtifactGet,
        art: Some(ArtifactGrant { path: req.path.as_str().to_owned(), method: req.method }),
        bh: None,
        ses: None,
    }
}

/// Checks a verified link against the request it arrived with. One-time use is the JTI store's job,
/// after this check passes.
pub fn check_link(
    link: &Verified,
    session: &SessionId,
    path: &ArtifactPath,
    method: Method,
) -> Result<(), ArtifactError> {
    let c = link.claims();
    let grant = c.art.as_ref().filter(|_| c.scope == Scope::ArtifactGet).ok_or(ArtifactError::NotALink)?;
    if &c.sid != session {
        return Err(ArtifactError::NotGranted("this session"));
    }
    if grant.path != path.as_str() {
        return Err(ArtifactError::NotGranted("this path"));
    }
    if grant.method != method {
        return Err(ArtifactError::NotGranted("this method"));
    }
    Ok(())
}

/// The URL path of an artifact's download route at the edge (its token travels as `Authorization: Bearer`).
pub fn download_path(session: &SessionId, path: &ArtifactPath) -> String {
    // Both parts are restricted to characters that need no escaping except the space.
    format!("/artifacts/{session}/{}", path.as_str().replace(' ', "%20"))
}

/// Reads the session and artifact of a URL path that [`download_path`] made (the upload route uses the
/// same form). `None` when it is not an artifact route or names no valid session; a bad artifact path
/// is an error that says why.
pub fn parse_artifact_route(url_path: &str) -> Option<Result<(SessionId, ArtifactPath), ArtifactError>> {
    let rest = url_path.strip_prefix("/artifacts/")?;
    let (sid, file) = rest.split_once('/')?;
    let session = SessionId::new(sid).ok()?;
    // Paths hold no escapes but the space; any other `%` is refused by `ArtifactPath`.
    Some(ArtifactPath::new(&file.replace("%20", " ")).map(|path| (session, path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_routes_round_trip_and_refuse_escapes() {
        let session = SessionId::new("s_abc").unwrap();
        let path = ArtifactPath::new("out/run 1.txt").unwrap();
        let route = download_path(&session, &path);
        assert_eq!(parse_artifact_route(&route), Some(Ok((session, path))));
        assert_eq!(parse_artifact_route("/elsewhere/s_abc/x"), None);
        assert_eq!(parse_artifact_route("/artifacts/s_abc"), None);
        assert_eq!(parse_artifact_route("/artifacts/not%20a%20session/x"), None);
        for bad in ["/artifacts/s_abc/..%2Fetc", "/artifacts/s_abc/a/../b", "/artifacts/s_abc/"] {
            assert!(matches!(parse_artifact_route(bad), Some(Err(ArtifactError::BadPath { .. }))), "{bad}");
        }
    }
    use crate::dangerous::assume_verified;
    use crate::ids::Kid;

    fn check_path(input: &str, ok: bool) {
        assert_eq!(ArtifactPath::new(input).is_ok(), ok, "{input:?}");
    }

    #[test]
    fn paths() {
        check_path("report.html", true);
        check_path("out/logs/run 1.txt", true);
        for bad in
            ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\\b", "a?b", "a#b", "a%2e", "a\0", "x.", " x", "é"]
        {
            check_path(bad, false);
        }
        check_path("a/".repeat(16).trim_end_matches('/'), true);
        check_path("a/".repeat(17).trim_end_matches('/'), false);
    }

    #[test]
    fn quotas() {
        let l = ArtifactLimits::default();
        assert!(l.check_upload(Usage::default(), 100 * 1024 * 1024).is_ok());
        assert!(l.check_upload(Usage::default(), 100 * 1024 * 1024 + 1).is_err());
        assert!(l.check_upload(Usage { session_artifacts: 49, user_bytes: 0 }, 1).is_ok());
        assert!(l.check_upload(Usage { session_artifacts: 50, user_bytes: 0 }, 1).is_err());
        assert!(l.check_upload(Usage { session_artifacts: 0, user_bytes: l.max_user_bytes }, 1).is_err());
    }

    #[test]
    fn links_are_bound() {
        let (owner, sid, region) =
            (Subject::new("u1").unwrap(), SessionId::new("s1").unwrap(), RegionId::new("eu").unwrap());
        let path = ArtifactPath::new("out/report.html").unwrap();
        let req = LinkRequest {
            issuer: "iss",
            audience: "aud",
            owner: &owner,
            session: &sid,
            region: &region,
            path: &path,
            method: Method::Get,
            jti: Jti::new("j1").unwrap(),
        };
        let claims = link_claims(req, &ArtifactLimits::default(), Timestamp::from_secs(1000));
        assert_eq!(claims.exp - claims.iat, 300);
        let link = assume_verified(claims.clone(), Kid::new("k").unwrap());
        assert_eq!(check_link(&link, &sid, &path, Method::Get), Ok(()));
        assert_eq!(
            check_link(&link, &SessionId::new("s2").unwrap(), &path, Method::Get),
            Err(ArtifactError::NotGranted("this session"))
        );
        assert_eq!(
            check_link(&link, &sid, &ArtifactPath::new("other").unwrap(), Method::Get),
            Err(ArtifactError::NotGranted("this path"))
        );
        assert_eq!(check_link(&link, &sid, &path, Method::Head), Err(ArtifactError::NotGranted("this method")));
        let mut attach = claims;
        attach.scope = Scope::Attach;
        assert_eq!(
            check_link(&assume_verified(attach, Kid::new("k").unwrap()), &sid, &path, Method::Get),
            Err(ArtifactError::NotALink)
        );
        assert_eq!(download_path(&sid, &ArtifactPath::new("a b.txt").unwrap()), "/artifacts/s1/a%20b.txt");
    }
}

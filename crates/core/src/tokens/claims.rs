//! The claims of every token kind edgeshell issues. One struct with a `scope` naming the kind keeps the
//! validation in one place; kind-specific grants are optional fields checked per scope.

use crate::ids::{Jti, RegionId, SessionId, Subject};
use core::fmt;
use serde::{Deserialize, Serialize};

/// What a token lets its bearer do. Each scope is one token kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// A browser attaches to its session's room (one-time, consumed by the room).
    #[serde(rename = "session:attach")]
    Attach,
    /// The runner joins its session's room (one-time, consumed by the room).
    #[serde(rename = "session:join")]
    Join,
    /// Download one artifact (one-time, consumed by the JTI function).
    #[serde(rename = "artifact:get")]
    ArtifactGet,
    /// The runner uploads artifacts of its session (reusable until `exp`; quotas checked on upload).
    #[serde(rename = "artifact:put")]
    ArtifactPut,
    /// The control plane tells a pool agent to start or stop a runner (one-time, bound to the body).
    #[serde(rename = "pool:command")]
    PoolCommand,
}

impl Scope {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Attach => "session:attach",
            Scope::Join => "session:join",
            Scope::ArtifactGet => "artifact:get",
            Scope::ArtifactPut => "artifact:put",
            Scope::PoolCommand => "pool:command",
        }
    }

    /// The longest a token of this kind may live (`exp - nbf`), in seconds. Defence in depth: even the
    /// control plane cannot mint a long-lived attach token by mistake.
    pub const fn max_lifetime_secs(self) -> u64 {
        match self {
            Scope::Attach => 10 * 60,
            Scope::Join => 15 * 60,
            Scope::ArtifactGet => 5 * 60,
            // The session's longest life: the token is of use only while its session is live.
            Scope::ArtifactPut => crate::lifetime::LIFETIME_CEILING.as_secs(),
            Scope::PoolCommand => 60,
        }
    }

    /// Whether a token of this kind may be signed ES256 instead of RS256: only where every verifier is
    /// one of our native services or the edge (join: the room; uploads: the Worker; pool commands: the
    /// pool agent), never a token the components must check in wasm (artifact links) nor the browser's
    /// attach token, which stays RS256 as the edge's contract says.
    pub fn may_use_es256(self) -> bool {
        match self {
            Scope::Join | Scope::ArtifactPut | Scope::PoolCommand => true,
            Scope::Attach | Scope::ArtifactGet => false,
        }
    }

    /// Whether a token of this kind may be signed with `alg`: RS256 always, ES256 where
    /// [`Scope::may_use_es256`]. The algorithm is pinned per kind as well as per key, so a key of the
    /// set that may sign one kind cannot vouch for another.
    pub fn accepts(self, alg: crate::tokens::Alg) -> bool {
        match alg {
            crate::tokens::Alg::Rs256 => true,
            crate::tokens::Alg::Es256 => self.may_use_es256(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HTTP methods an artifact link may be bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// Download.
    #[serde(rename = "GET")]
    Get,
    /// Metadata only.
    #[serde(rename = "HEAD")]
    Head,
}

/// The artifact an `artifact:get` token grants: one path, one method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactGrant {
    /// The artifact's path within its session, as validated by [`crate::artifacts::ArtifactPath`].
    pub path: String,
    /// The one method the link allows.
    pub method: Method,
}

/// The payload of every edgeshell token. Unknown and duplicate claims are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Issuer: the control plane's URL.
    pub iss: String,
    /// Audience: the service that must accept it (`edgeshell-edge`, `edgeshell-pool:<region>`).
    pub aud: String,
    /// The user (or `pool:<region>` for runner tokens).
    pub sub: Subject,
    /// The session it is bound to.
    pub sid: SessionId,
    /// The region the session's runner lives in.
    pub region: RegionId,
    /// Unique id, consumed once where the kind is one-time.
    pub jti: Jti,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not before, seconds since the epoch.
    pub nbf: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// The token kind.
    pub scope: Scope,
    /// For `artifact:get`: what may be downloaded, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub art: Option<ArtifactGrant>,
    /// For `pool:command`: base64url SHA-256 of the request body the token authorizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bh: Option<String>,
    /// For `session:attach` and `session:join`: the session's terms (deadline, idle and detached
    /// rules), which the room enforces ([`crate::lifetime`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ses: Option<crate::lifetime::Terms>,
}

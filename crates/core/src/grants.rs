//! Who may have which tokens signed. The token signer serves several clients (the control functions,
//! and in tests the test suites), each with its own API key, stored as SHA-256, and a grant: the token
//! kinds (scopes) and audiences it may have signed. A leaked key's blast radius is its grant, within
//! what `Issuer::check_signable` allows anyone (our issuer, issued now, within the kind's lifetime).
//!
//! The clients are configured as JSON (`EDGESHELL_SIGNER_CLIENTS`):
//!
//! ```json
//! [{"name": "functions", "key_sha256": "<64 hex digits>",
//!   "scopes": ["session:attach", "session:join", "pool:command", "artifact:get", "artifact:put"],
//!   "audiences": ["edgeshell-edge", "edgeshell-pool:*"]}]
//! ```
//!
//! An audience ending in `*` matches any audience with that prefix.

use crate::issue::EDGE_AUDIENCE;
use crate::tokens::{Claims, Scope};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What the control functions have signed: attach and join tokens, pool commands, artifact links, and
/// each runner's upload token.
pub const FUNCTIONS_SCOPES: [Scope; 5] =
    [Scope::Attach, Scope::Join, Scope::PoolCommand, Scope::ArtifactGet, Scope::ArtifactPut];

/// The audiences the control functions sign for: the edge and every region's pool agents.
pub const FUNCTIONS_AUDIENCES: [&str; 2] = [EDGE_AUDIENCE, "edgeshell-pool:*"];

/// One client of the signer.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerClient {
    /// A name for logs and metrics.
    pub name: String,
    /// The SHA-256 of its API key, as hex.
    #[serde(deserialize_with = "sha256_hex")]
    key_sha256: [u8; 32],
    /// The token kinds it may have signed.
    pub scopes: Vec<Scope>,
    /// The audiences it may have signed for (exact, or a prefix ending in `*`).
    pub audiences: Vec<String>,
}

impl core::fmt::Debug for SignerClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The key's hash is not secret, but nothing here needs to show it.
        f.debug_struct("SignerClient")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

/// Why claims are outside a client's grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    /// The client may not have tokens of this kind signed.
    #[error("client {client} may not have {scope} tokens signed")]
    Scope {
        /// The client.
        client: String,
        /// The kind asked for.
        scope: Scope,
    },
    /// The client may not have tokens for this audience signed.
    #[error("client {client} may not have tokens for audience {audience:?} signed")]
    Audience {
        /// The client.
        client: String,
        /// The audience asked for.
        audience: String,
    },
}

/// Why the client list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantsError {
    /// Not the JSON list described in the module documentation.
    #[error("signer clients: {0}")]
    Malformed(String),
    /// No client at all: the signer would refuse everything.
    #[error("signer clients: the list is empty")]
    Empty,
    /// A client without scopes or audiences could never sign anything.
    #[error("signer client {0:?} has no scopes or no audiences")]
    NothingGranted(String),
}

impl SignerClient {
    /// A client holding the key whose SHA-256 is `key_sha256` (for tests and tools that build the list).
    pub fn new(name: &str, key: &str, scopes: &[Scope], audiences: &[&str]) -> SignerClient {
        SignerClient {
            name: name.to_owned(),
            key_sha256: Sha256::digest(key.as_bytes()).into(),
            scopes: scopes.to_vec(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Whether these claims are within the client's grant.
    pub fn allows(&self, claims: &Claims) -> Result<(), GrantRefusal> {
        if !self.scopes.contains(&claims.scope) {
            return Err(GrantRefusal::Scope { client: self.name.clone(), scope: claims.scope });
        }
        let matches = |pattern: &String| match pattern.strip_suffix('*') {
            Some(prefix) => claims.aud.starts_with(prefix),
            None => *pattern == claims.aud,
        };
        if !self.audiences.iter().any(matches) {
            return Err(GrantRefusal::Audience { client: self.name.clone(), audience: claims.aud.clone() });
        }
        Ok(())
    }

    /// The list entry as JSON (what `EDGESHELL_SIGNER_CLIENTS` holds for this client).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "key_sha256": crate::bundles::hex(&self.key_sha256),
            "scopes": self.scopes.iter().map(|s| s.name()).collect::<Vec<_>>(),
            "audiences": self.audiences,
        })
    }
}

/// Every client of a signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerClients(Vec<SignerClient>);

impl SignerClients {
    /// Parses and checks the configured list.
    pub fn parse(json: &str) -> Result<SignerClients, GrantsError> {
        let clients: Vec<SignerClient> =
            serde_json::from_str(json).map_err(|e| GrantsError::Malformed(e.to_string()))?;
        if clients.is_empty() {
            return Err(GrantsError::Empty);
        }
        if let Some(c) = clients.iter().find(|c| c.scopes.is_empty() || c.audiences.is_empty()) {
            return Err(GrantsError::NothingGranted(c.name.clone()));
        }
        Ok(SignerClients(clients))
    }

    /// The list, from clients built in code.
    pub fn from_clients(clients: Vec<SignerClient>) -> SignerClients {
        SignerClients(clients)
    }

    /// The client whose key was presented, if any: every entry's hash is compared in constant time, so
    /// the time taken says nothing about which key, or how much of one, matched.
    pub fn identify(&self, presented: &str) -> Option<&SignerClient> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for client in &self.0 {
            if bool::from(client.key_sha256.ct_eq(&hash)) {
                found = Some(client);
            }
        }
        found
    }

    /// The list as JSON.
    pub fn to_json(&self) -> String {
        serde_json::Value::Array(self.0.iter().map(SignerClient::to_json).collect()).to_string()
    }
}

fn sha256_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = String::deserialize(d)?;
    let bad = || serde::de::Error::custom("key_sha256 must be 64 hex digits");
    if text.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = core::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RegionId, SessionId, Subject};
    use crate::issue::Issuer;
    use crate::time::Timestamp;

    fn functions() -> SignerClient {
        SignerClient::new("functions", "functions-key", &FUNCTIONS_SCOPES, &FUNCTIONS_AUDIENCES)
    }

    #[test]
    fn grants_bound_kinds_and_audiences() {
        assert_eq!(FUNCTIONS_AUDIENCES[1], format!("{}*", crate::issue::POOL_AUDIENCE_PREFIX));
        let issuer = Issuer::new("https://control.test");
        let (sid, region) = (SessionId::new("s_1").unwrap(), RegionId::new("eu").unwrap());
        let now = Timestamp::from_secs(1_000_000);
        let terms = crate::lifetime::LifetimePolicy::DEFAULT.terms_at_mint(None, now).unwrap();
        let attach = issuer.attach(&Subject::new("alice").unwrap(), (&sid, &region), terms, [1; 16], now);
        let command = issuer.pool_command(&sid, &region, b"{}", [2; 16], now);
        let upload = issuer.artifact_put((&sid, &region), now + core::time::Duration::from_secs(60), [3; 16], now);
        let f = functions();
        assert_eq!(f.allows(&attach), Ok(()));
        assert_eq!(f.allows(&command), Ok(()), "edgeshell-pool:eu matches edgeshell-pool:*");
        assert_eq!(f.allows(&upload), Ok(()), "each runner's upload token");
        let narrow = SignerClient::new("links", "k", &[Scope::ArtifactGet], &["edgeshell-edge"]);
        assert!(matches!(narrow.allows(&upload), Err(GrantRefusal::Scope { scope: Scope::ArtifactPut, .. })));
        let edge_only = SignerClient::new("edge-only", "k", &[Scope::PoolCommand], &["edgeshell-edge"]);
        assert!(matches!(edge_only.allows(&command), Err(GrantRefusal::Audience { .. })));
    }

    #[test]
    fn the_list_parses_strictly_and_identifies_by_key() {
        let tests = SignerClient::new("tests", "tests-key", &[Scope::ArtifactPut], &["edgeshell-edge"]);
        let list = SignerClients::from_clients(vec![functions(), tests]);
        let back = SignerClients::parse(&list.to_json()).unwrap();
        assert_eq!(back, list);
        assert_eq!(back.identify("functions-key").map(|c| c.name.as_str()), Some("functions"));
        assert_eq!(back.identify("tests-key").map(|c| c.name.as_str()), Some("tests"));
        assert_eq!(back.identify("functions-key "), None);
        assert_eq!(SignerClients::parse("[]"), Err(GrantsError::Empty));
        assert!(matches!(SignerClients::parse(r#"[{"name":"x"}]"#), Err(GrantsError::Malformed(_))));
        let nothing = r#"[{"name":"x","key_sha256":"00000000000000000000000000000000000000000000000000000000000000ff","scopes":[],"audiences":["a"]}]"#;
        assert_eq!(SignerClients::parse(nothing), Err(GrantsError::NothingGranted("x".into())));
        let short = r#"[{"name":"x","key_sha256":"00ff","scopes":["session:join"],"audiences":["a"]}]"#;
        assert!(matches!(SignerClients::parse(short), Err(GrantsError::Malformed(_))));
        assert!(!format!("{back:?}").contains("key_sha256"));
    }
}

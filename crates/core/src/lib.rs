//! The I/O-free domain core of edgeshell, shared by the edge Worker (`wasm32-unknown-unknown`), the control
//! functions (`wasm32-wasip2`) and native code (pool agent, runner, tests).
//!
//! Nothing here reads the clock, the environment or randomness, or touches files and sockets: callers pass
//! `now` ([`time::Timestamp`]) and random bytes in, and carry out the effects the core returns. Platform crates
//! are thin adapters around these modules.

#![forbid(unsafe_code)]

pub mod agent_lease;
pub mod api_error;
pub mod artifacts;
pub mod base64url;
pub mod browser_link;
pub mod bundles;
pub mod dangerous;
pub mod files;
pub mod grants;
pub mod ids;
pub mod issue;
pub mod jti;
pub mod jwks;
pub mod lifetime;
pub mod machine;
pub mod oidc;
pub mod placement;
pub mod pool_api;
pub mod pool_ledger;
pub mod pool_room;
pub mod protocol;
pub mod quotas;
pub mod ratelimit;
pub mod repo;
pub mod room;
pub mod runner_link;
pub mod sealed_stream;
pub mod secret;
pub mod settings;
pub mod templates;
pub mod time;
pub mod tokens;
pub mod vault;
pub mod web_policy;

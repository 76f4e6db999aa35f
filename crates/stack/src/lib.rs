//! The local stack's pieces, started from Rust on loopback ports and stopped on drop: a private Postgres
//! with the control plane's schema ([`postgres`]), the functions host serving the real components
//! ([`functions_host`]), and the two together with the dev OIDC issuer as one control plane
//! ([`control`]), the edge gateway under `wrangler dev` ([`edge`]), a pool agent process
//! ([`pool_agent`]), and a counting, switchable JWKS proxy ([`jwks_proxy`]). Integration tests of every
//! crate start what they need from here.

pub mod control;
pub mod edge;
pub mod functions_host;
pub mod git_server;
pub mod jwks_proxy;
pub mod paths;
pub mod pool_agent;
pub mod postgres;

pub use control::{ControlPlane, ControlSettings};
pub use edge::EdgeGateway;
pub use functions_host::FunctionsHost;
pub use git_server::GitServer;
pub use jwks_proxy::JwksProxy;
pub use pool_agent::{AgentSettings, PoolAgent};

/// A setting of the local stack and the tests (the core's `DEV` catalogue), read from the environment
/// with the core's reader: `None` when unset or blank.
pub fn dev_setting(name: &str) -> Option<String> {
    let env = |name: &str| std::env::var(name).ok();
    edgeshell_core::settings::Reader::new(edgeshell_core::settings::Program::Dev, &env)
        .text(name)
        .unwrap_or_else(|e| panic!("{e}"))
}

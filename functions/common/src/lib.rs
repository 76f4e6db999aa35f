//! What every control function shares, so each component stays a thin adapter over the core:
//! JSON errors with stable codes ([`reply`]), request parsing and internal authentication
//! ([`request`]), requests on `wasi:http` directly for hot routes ([`wasi_http`]), the clock and
//! randomness ([`platform`]), Postgres ([`db`]), outbound HTTP with timeouts ([`outbound`]), the
//! signed-in user ([`identity`]), token signing ([`signing`]) and the pool registry ([`registry`]).

pub mod db;
pub mod identity;
pub mod outbound;
pub mod platform;
pub mod registry;
pub mod reply;
pub mod request;
pub mod settings;
pub mod signing;
pub mod wasi_http;

pub use reply::{ApiError, ErrorCode, Reply};

//! What every control function shares, so each component stays a thin adapter over the core:
//! JSON errors with stable codes ([`reply`]), request parsing and internal authentication
//! ([`request`]), requests read on `wasi:http` directly, headers first and bodies only as far as a
//! route allows ([`wasi_http`]), the clock and randomness ([`platform`]), rate limits before
//! authentication ([`ratelimit`]), Postgres ([`db`]), outbound HTTP with timeouts ([`outbound`]), the
//! signed-in user ([`identity`]), token signing ([`signing`]) and the pool registry ([`registry`]).

pub mod data_keys;
pub mod db;
pub mod identity;
pub mod outbound;
pub mod platform;
pub mod ratelimit;
pub mod registry;
pub mod reply;
pub mod request;
pub mod settings;
pub mod signing;
pub mod wasi_http;

pub use reply::{ApiError, ErrorCode, Reply};

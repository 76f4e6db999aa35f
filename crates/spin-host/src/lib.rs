//! A local host for the control functions' Spin components, built on wasmtime: the same `.wasm` files
//! that run on Spin in production run here, locally and in every test.
//!
//! Implemented: HTTP triggers by the routes of `spin.toml` (Spin's router: `:name` captures, `/...`
//! wildcards, the `spin-*` request headers, `/.well-known/spin/health` and `info`), a fresh instance
//! per request from a pre-instantiated component (a core module converted to one on load, as Spin
//! converts it), precompiled components cached on disk, `fermyon:spin/variables` (from
//! `SPIN_VARIABLE_*`, a dotenv file, or the manifest's defaults), a component's `environment` and
//! `files` (read-only at `/`), `spin:postgres@4.0.0` on a connection pool, and `wasi:http` outbound
//! requests limited to each component's `allowed_outbound_hosts`.

pub mod compile;
pub mod componentize;
pub mod files;
mod guest_run;
pub mod manifest;
pub mod outbound;
pub mod postgres;
pub mod router;
pub mod server;
pub mod variables;

pub use server::{Host, HostConfig};

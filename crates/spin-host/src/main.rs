//! `edgeshell-spin-host`: serves the components of a `spin.toml` on a local address.
//!
//! ```text
//! edgeshell-spin-host [--manifest spin.toml] [--listen 127.0.0.1:3000] [--env-file .env]
//!                     [--cache-dir DIR] [--wasm-dir DIR] [--max-instances 256]
//!                     [--max-body-bytes 16777216] [--guest-deadline-secs 60]
//! ```
//!
//! Arguments are parsed by `clap` (`--help` lists them).

use anyhow::{Context, Result};
use edgeshell_spin_host::{Host, HostConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// jemalloc instead of glibc's malloc: per-request stores, WASI contexts and HTTP messages allocate and
/// free many small objects across both cores (see `Cargo.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Serves the components of a `spin.toml` on a local address, as Spin would.
#[derive(Debug, clap::Parser)]
#[command(name = "edgeshell-spin-host", version)]
struct Args {
    /// The application's manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// Where to listen (IP:PORT).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: std::net::SocketAddr,
    /// A dotenv file of `SPIN_VARIABLE_*` values (after the process environment).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Where precompiled components are cached.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Load each component's `.wasm` from this directory instead of its manifest path.
    #[arg(long)]
    wasm_dir: Option<PathBuf>,
    /// Requests in flight at most (instance slots); beyond, a request gets a 503.
    #[arg(long, default_value_t = edgeshell_spin_host::server::DEFAULT_MAX_INSTANCES)]
    max_instances: u32,
    /// The largest request body a guest is given, in bytes.
    #[arg(long, default_value_t = edgeshell_spin_host::server::GuestLimits::DEFAULT.max_body_bytes)]
    max_body_bytes: u64,
    /// How long a guest may run for one request, in seconds.
    #[arg(long, default_value_t = edgeshell_spin_host::server::GuestLimits::DEFAULT.deadline.as_secs())]
    guest_deadline_secs: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let mut limits = edgeshell_spin_host::server::GuestLimits::DEFAULT;
    limits.max_body_bytes = args.max_body_bytes;
    limits.deadline = std::time::Duration::from_secs(args.guest_deadline_secs);
    let config = HostConfig {
        manifest: args.manifest,
        env_file: args.env_file,
        cache_dir: args.cache_dir.unwrap_or_else(|| std::env::temp_dir().join("edgeshell-cwasm")),
        wasm_dir: args.wasm_dir,
        max_instances: args.max_instances,
        limits,
    };
    let listen = args.listen;
    let host = Arc::new(Host::load(&config)?);
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    eprintln!("edgeshell-spin-host: serving {} on http://{}", config.manifest.display(), listener.local_addr()?);
    tokio::select! {
        result = host.serve(listener) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_command_line_has_the_documented_defaults() {
        <Args as clap::CommandFactory>::command().debug_assert();
        let args = Args::try_parse_from(["edgeshell-spin-host"]).unwrap();
        assert_eq!(args.manifest, PathBuf::from("spin.toml"));
        assert_eq!(args.listen.to_string(), "127.0.0.1:3000");
        assert_eq!((args.max_instances, args.max_body_bytes, args.guest_deadline_secs), (256, 16 * 1024 * 1024, 60));
        assert!(Args::try_parse_from(["edgeshell-spin-host", "--listen", "localhost"]).is_err());
        assert!(Args::try_parse_from(["edgeshell-spin-host", "--max-instances", "many"]).is_err());
    }
}

//! `edgeshell-spin-host`: serves the components of a `spin.toml` on a local address.
//!
//! ```text
//! edgeshell-spin-host [--manifest spin.toml] [--listen 127.0.0.1:3000] [--env-file .env]
//!                     [--cache-dir DIR] [--wasm-dir DIR] [--max-instances 256]
//!                     [--max-body-bytes 16777216] [--guest-deadline-secs 60]
//! ```

use anyhow::{bail, Context, Result};
use edgeshell_spin_host::{Host, HostConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// jemalloc instead of glibc's malloc: per-request stores, WASI contexts and HTTP messages allocate and
/// free many small objects across both cores (see `Cargo.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<()> {
    let mut config = HostConfig {
        manifest: PathBuf::from("spin.toml"),
        env_file: None,
        cache_dir: std::env::temp_dir().join("edgeshell-cwasm"),
        wasm_dir: None,
        max_instances: edgeshell_spin_host::server::DEFAULT_MAX_INSTANCES,
        limits: edgeshell_spin_host::server::GuestLimits::DEFAULT,
    };
    let mut listen = String::from("127.0.0.1:3000");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--manifest" => config.manifest = value()?.into(),
            "--listen" => listen = value()?,
            "--env-file" => config.env_file = Some(value()?.into()),
            "--cache-dir" => config.cache_dir = value()?.into(),
            "--wasm-dir" => config.wasm_dir = Some(value()?.into()),
            "--max-instances" => config.max_instances = value()?.parse().context("--max-instances is a number")?,
            "--max-body-bytes" => {
                config.limits.max_body_bytes = value()?.parse().context("--max-body-bytes is a number")?
            }
            "--guest-deadline-secs" => {
                let secs = value()?.parse().context("--guest-deadline-secs is a number")?;
                config.limits.deadline = std::time::Duration::from_secs(secs);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let host = Arc::new(Host::load(&config)?);
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("binding {listen}"))?;
    eprintln!("edgeshell-spin-host: serving {} on http://{}", config.manifest.display(), listener.local_addr()?);
    tokio::select! {
        result = host.serve(listener) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

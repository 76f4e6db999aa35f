//! The functions host on a loopback port, serving the components of `spin.toml`.

use edgeshell_spin_host::server::GuestLimits;
use edgeshell_spin_host::{Host, HostConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A running host; stops when dropped.
pub struct FunctionsHost {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: PathBuf,
}

impl Drop for FunctionsHost {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl FunctionsHost {
    /// Serves with the variables in `env` (dotenv lines), compiled components cached in `cache_dir`,
    /// and at most `max_instances` requests at once, at `addr` (a free port when `None`).
    pub async fn start(
        env: &str,
        cache_dir: &Path,
        max_instances: u32,
        addr: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<FunctionsHost> {
        FunctionsHost::start_with(env, cache_dir, max_instances, GuestLimits::DEFAULT, addr).await
    }

    /// [`FunctionsHost::start`] with these per-request limits.
    pub async fn start_with(
        env: &str,
        cache_dir: &Path,
        max_instances: u32,
        limits: GuestLimits,
        addr: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<FunctionsHost> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let dir = std::env::temp_dir().join(format!("edgeshell-host-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let env_file = dir.join(".env");
        std::fs::write(&env_file, env)?;
        let config = HostConfig {
            manifest: crate::paths::manifest(),
            env_file: Some(env_file),
            cache_dir: cache_dir.to_owned(),
            wasm_dir: Some(crate::paths::wasm_dir()?),
            max_instances,
            limits,
        };
        let host = Arc::new(Host::load(&config)?);
        let listener = match addr {
            Some(addr) => tokio::net::TcpListener::bind(addr).await?,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        };
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let task = tokio::spawn(host.serve(listener));
        Ok(FunctionsHost { url, addr, task, dir })
    }

    /// Stops serving and waits until the listener is closed.
    pub async fn stop(&self) {
        self.task.abort();
        while !self.task.is_finished() {
            tokio::task::yield_now().await;
        }
    }
}

//! Watching the local pool agent's lease (the core's [`AgentLease`]): a runner started by a local
//! agent outlives it, so that a restarted agent can adopt it, but only for the lease's window: with no
//! agent refreshing the lease file for that long, the session ends as if stopped.

use edgeshell_core::agent_lease::{AgentLease, REFRESH_EVERY};
use edgeshell_platform::clock;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Completes once the lease in `lease` (its file and window) has lapsed; never without one.
pub async fn lapsed(lease: Option<(PathBuf, Duration)>) {
    let Some((file, window)) = lease else { return std::future::pending().await };
    let mut held = AgentLease::new(window, clock::now());
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        if !held.observe(refreshed(&file), clock::now()) {
            tracing::warn!(
                lease = %file.display(),
                window_secs = held.window().as_secs(),
                "no pool agent has held the lease within its window: ending the session"
            );
            return;
        }
    }
}

/// When the lease file was last refreshed (its modification time), if it can be read.
pub fn refreshed(file: &Path) -> Option<edgeshell_core::time::Timestamp> {
    let modified = std::fs::metadata(file).ok()?.modified().ok()?;
    Some(clock::timestamp(modified))
}

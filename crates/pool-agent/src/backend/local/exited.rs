//! Waiting for a runner this agent adopted: not its child, so it cannot be waited for; its pidfd (Linux
//! 5.3+) says when it exits, and without one its process is looked at.

use edgeshell_runner::process_tree;
use std::time::Duration;

/// How often an adopted runner's process is looked at where the kernel gives no pidfd.
const ADOPTED_POLL: Duration = Duration::from_millis(200);

/// Waits until the process `pid` that started at `start_time` (an adopted runner: not this agent's
/// child, so no `wait`) has exited: on its pidfd, which becomes readable when it does (Linux 5.3+),
/// else by looking every [`ADOPTED_POLL`].
pub(super) async fn exited(pid: i32, start_time: u64) {
    let running =
        || process_tree::stat(pid).is_some_and(|s| s.start_time == start_time) && !process_tree::is_zombie(pid);
    let pidfd = rustix::process::Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    if let Some(fd) = pidfd {
        // The pid may have been taken by another process before the pidfd was opened: it must still be
        // the runner.
        if !running() {
            return;
        }
        // Blocking waits of at most a second on the blocking pool (registering the descriptor with the
        // runtime would take `unsafe`), so that a runtime shutting down never waits longer for one.
        let fd = std::sync::Arc::new(fd);
        loop {
            let fd = fd.clone();
            let waited = tokio::task::spawn_blocking(move || {
                let mut fds = [rustix::event::PollFd::new(&*fd, rustix::event::PollFlags::IN)];
                let second = rustix::event::Timespec { tv_sec: 1, tv_nsec: 0 };
                rustix::event::poll(&mut fds, Some(&second))
            })
            .await;
            match waited {
                Ok(Ok(0)) | Ok(Err(rustix::io::Errno::INTR)) => continue,
                Ok(Ok(_)) => return,
                // The pidfd cannot be waited on: look at the process instead.
                _ => break,
            }
        }
    }
    while running() {
        tokio::time::sleep(ADOPTED_POLL).await;
    }
}

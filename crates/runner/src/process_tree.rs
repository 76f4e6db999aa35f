//! Finding and killing every process of a runner on Linux: all processes whose session or process
//! group is one of the given ids, found in `/proc`. A program's own children stay in its session even
//! when a shell puts them into job process groups, so this catches what `kill(-pgid)` alone misses.
//! A process that calls `setsid` itself escapes that; when a session has a user of its own (the local
//! backend started as root), [`kill_user`] kills every process of that user at once, however it
//! detached. On Kubernetes the pod is the boundary.

use rustix::process::{Pid, Signal};
use std::time::Duration;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: i32,
    /// Parent's process id.
    pub ppid: i32,
    /// Process group id.
    pub pgrp: i32,
    /// Session id.
    pub session: i32,
    /// The foreground process group of its controlling terminal (`tpgid`; -1 without one).
    pub terminal_foreground: i32,
    /// Start time in clock ticks since boot: with the pid, it names one process (pids are reused).
    pub start_time: u64,
}

/// Parses one `/proc/<pid>/stat` line (the command name may hold spaces and parentheses).
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let pid = line.split_once(' ')?.0.parse().ok()?;
    let rest = &line[line.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) pgrp(2) session(3) tty_nr(4) tpgid(5) ... starttime(19).
    Some(ProcStat {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        terminal_foreground: fields.get(5)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The status of one process, if it exists.
pub fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process whose session or process group is in `ids`, never the caller itself. Ids 0 and 1
/// (kernel threads, init) are ignored.
pub fn members(ids: &[i32]) -> Vec<ProcStat> {
    let ids: Vec<i32> = ids.iter().copied().filter(|id| *id > 1).collect();
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    if ids.is_empty() {
        return Vec::new();
    }
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .filter(|s| s.pid != me && (ids.contains(&s.session) || ids.contains(&s.pgrp)))
        .collect()
}

/// Kills every process in the sessions and groups `ids` with `SIGKILL`, again and again until none is
/// left (a fork may race the first pass). Returns how many processes were signalled.
pub async fn kill_all(ids: &[i32]) -> usize {
    let mut signalled = 0;
    for _ in 0..50 {
        let found = members(ids);
        // Zombies (already dead, waiting for their parent to reap them) are not worth another pass.
        let live: Vec<_> = found.iter().filter(|s| !is_zombie(s.pid)).collect();
        if live.is_empty() {
            return signalled;
        }
        for s in live {
            if let Some(pid) = Pid::from_raw(s.pid) {
                if rustix::process::kill_process(pid, Signal::KILL).is_ok() {
                    signalled += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signalled
}

/// The live (not zombie) processes whose real user id is `uid`.
pub fn user_processes(uid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| real_uid(*pid) == Some(uid) && !is_zombie(*pid))
        .collect()
}

/// Whether process `pid`'s environment (as it was at exec) has `name=value`. False when it cannot be
/// read (gone, or another user's non-dumpable process and the caller is not root).
pub fn environ_has(pid: i32, name: &str, value: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    let wanted = format!("{name}={value}");
    environ.split(|b| *b == 0).any(|entry| entry == wanted.as_bytes())
}

fn real_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Kills every process of the user `uid` with `SIGKILL`, however it detached, until none is left;
/// returns how many were found at first. `kill(-1)` made as that user signals all of its processes in
/// one pass that a fork cannot race (the kernel holds the task list while it signals). Refuses root and
/// the caller's own user: only a session's own user may be wiped out.
pub async fn kill_user(uid: u32) -> std::io::Result<usize> {
    let me = rustix::process::getuid().as_raw();
    if uid == 0 || uid == me {
        return Err(std::io::Error::other(format!("refusing to kill every process of user {uid}")));
    }
    let found = user_processes(uid).len();
    for _ in 0..50 {
        if user_processes(uid).is_empty() {
            return Ok(found);
        }
        // A child that becomes the user and signals everything the user owns, then exits without
        // running anything (it is never counted against the user's process limit by an exec).
        let mut helper = tokio::process::Command::new("/proc/self/exe");
        helper
            .uid(uid)
            .gid(uid)
            .env_clear()
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        #[allow(unsafe_code)]
        // SAFETY: runs in the forked child after the standard library switched its user, and makes only
        // the kill and _exit system calls, which are async-signal-safe.
        unsafe {
            helper.pre_exec(|| {
                libc::kill(-1, libc::SIGKILL);
                libc::_exit(0)
            });
        }
        helper.status().await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(std::io::Error::other(format!("processes of user {uid} survived 50 rounds of SIGKILL")))
}

/// True when `pid` is gone or a zombie (exited, waiting for its parent to reap it).
pub fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|l| l.rfind(')').and_then(|i| l.get(i + 2..i + 3)).map(|s| s == "Z" || s == "X"))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line = "4242 (my (odd) name) S 1 4242 4242 34816 4242 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 \
                    18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pid: 4242,
                ppid: 1,
                pgrp: 4242,
                session: 4242,
                terminal_foreground: 4242,
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        let me = stat(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
    }

    #[test]
    fn never_wipes_out_root_or_its_own_user() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let me = rustix::process::getuid().as_raw();
        for uid in [0, me] {
            assert!(runtime.block_on(kill_user(uid)).is_err(), "{uid}");
        }
        assert!(user_processes(me).contains(&(std::process::id() as i32)));
    }
}

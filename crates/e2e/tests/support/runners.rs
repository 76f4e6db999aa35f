//! A session's runner process as the tests and benchmarks watch it: found by the session id in its
//! environment, its peak resident memory read from `/proc`.

use edgeshell_e2e::Session;
use edgeshell_runner::process_tree;

/// The session's runner: the process with the session's id in its environment that runs `runner`
/// (the agent's embedded runner), not the program.
pub(crate) fn runner_pid(session: &Session) -> i32 {
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| process_tree::environ_has(*pid, "EDGESHELL_SESSION_ID", session.id.as_str()))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.split(|b| *b == 0).nth(1) == Some(b"runner".as_slice())
        })
        .collect();
    assert_eq!(pids.len(), 1, "one runner for {}: {pids:?}", session.id);
    pids[0]
}

/// A process's peak resident memory (`VmHWM`), bytes.
pub(crate) fn peak_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

//! The PTY layer against a real shell: input echoes, resize reaches `stty size`, Ctrl-C interrupts the
//! foreground job, the exit status comes back, and stopping kills everything the program started.

mod support;

use edgeshell_runner::process_tree;
use edgeshell_runner::pty::{exit_status, Program, Pty, ReadResult};
use std::time::Duration;

fn shell(dir: &std::path::Path) -> Program {
    support::shell(dir, &[])
}

/// Reads until `needle` appears in the output (after `from`), or fails after 10 s.
async fn expect(pty: &Pty, seen: &mut String, needle: &str) {
    let mut buf = [0u8; 4096];
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains(needle) {
            match pty.read(&mut buf).await.unwrap() {
                ReadResult::Data(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                ReadResult::Closed => return false,
            }
        }
        true
    })
    .await;
    assert_eq!(found, Ok(true), "waiting for {needle:?}; output so far: {seen:?}");
    // Later expectations look only at what follows.
    let at = seen.find(needle).unwrap() + needle.len();
    seen.drain(..at);
}

async fn send(pty: &Pty, text: &[u8]) {
    let mut rest = text;
    while !rest.is_empty() {
        let n = pty.write(rest).await.unwrap();
        rest = &rest[n..];
    }
}

/// The program that holds the terminal: the command name of its foreground process group's leader,
/// or `None` while the shell holds it itself.
fn terminal_holder(pty: &Pty) -> Option<String> {
    let shell = process_tree::stat(pty.pid().as_raw_nonzero().get()).expect("the shell is running");
    let foreground = shell.terminal_foreground;
    (foreground > 0 && foreground != shell.pgrp)
        .then(|| std::fs::read_to_string(format!("/proc/{foreground}/comm")).unwrap_or_default().trim().to_owned())
}

/// Waits (at most 10 s) until `program` holds the terminal, or with `None` the shell again. An
/// interrupt must wait for the job's own program: the shell's child holds the terminal before it has
/// become the job (it still has the shell's SIGINT handler until `exec`, so an interrupt then is
/// lost and the job runs on), and a line typed before the shell has the terminal back may be read by
/// nobody. On a loaded machine, 200 ms after typing was not always enough.
async fn until_the_terminal_is_held_by(pty: &Pty, program: Option<&str>) {
    for _ in 0..1000 {
        if terminal_holder(pty).as_deref() == program {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the terminal is held by {:?}, not {program:?}, after 10 s", terminal_holder(pty));
}

#[tokio::test]
async fn input_echoes_and_output_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (pty, _child) = Pty::spawn(&shell(dir.path())).unwrap();
    let mut seen = String::new();
    send(&pty, b"echo he''llo\n").await;
    // The terminal echoes the typed line, then the shell prints the word.
    expect(&pty, &mut seen, "echo he''llo").await;
    expect(&pty, &mut seen, "hello").await;
}

#[tokio::test]
async fn resize_reaches_stty_size() {
    let dir = tempfile::tempdir().unwrap();
    let (pty, _child) = Pty::spawn(&shell(dir.path())).unwrap();
    let mut seen = String::new();
    send(&pty, b"stty size\n").await;
    expect(&pty, &mut seen, "24 80").await;
    pty.resize(132, 43).unwrap();
    send(&pty, b"stty size\n").await;
    expect(&pty, &mut seen, "43 132").await;
}

#[tokio::test]
async fn ctrl_c_interrupts_the_foreground_job() {
    let dir = tempfile::tempdir().unwrap();
    let (pty, _child) = Pty::spawn(&shell(dir.path())).unwrap();
    let mut seen = String::new();
    // Typed Ctrl-C goes through the line discipline as SIGINT.
    send(&pty, b"sleep 60; echo not-interrupted\n").await;
    expect(&pty, &mut seen, "not-interrupted").await; // the echo of the typed line
    until_the_terminal_is_held_by(&pty, Some("sleep")).await;
    send(&pty, &[3]).await;
    // The 60 s job ends at once: the shell has the terminal back.
    until_the_terminal_is_held_by(&pty, None).await;
    send(&pty, b"echo after-$((40+2))\n").await;
    expect(&pty, &mut seen, "after-42").await;
    assert!(!seen.contains("not-interrupted"), "sleep was not interrupted: {seen:?}");
    // A Signal frame takes the other path: kill() to the foreground group.
    send(&pty, b"sleep 60\n").await;
    until_the_terminal_is_held_by(&pty, Some("sleep")).await;
    pty.signal(rustix::process::Signal::INT).unwrap();
    until_the_terminal_is_held_by(&pty, None).await;
    send(&pty, b"echo again-$((1+1))\n").await;
    expect(&pty, &mut seen, "again-2").await;
}

/// A runner started under `nohup` or as a shell's background job has SIGINT, SIGQUIT (and SIGHUP)
/// ignored, and ignored signals survive `exec`: the program must still start with those at their
/// default action, or Ctrl-C typed into the terminal would interrupt nothing.
#[tokio::test]
async fn the_program_gets_default_signal_actions_whatever_the_runner_ignores() {
    let dir = tempfile::tempdir().unwrap();
    let program = Program {
        args: vec!["-c".into(), r#"echo "ignored=$(grep SigIgn /proc/$$/status | cut -f2)=""#.into()],
        ..shell(dir.path())
    };
    let ignored = [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];
    #[allow(unsafe_code)]
    // SAFETY: SIG_IGN installs no handler; the previous actions are put back right after the spawn.
    let before: Vec<_> = ignored.iter().map(|&signal| unsafe { libc::signal(signal, libc::SIG_IGN) }).collect();
    let spawned = Pty::spawn(&program);
    for (&signal, &action) in ignored.iter().zip(&before) {
        #[allow(unsafe_code)]
        // SAFETY: restores the action read above (default, ignored, or the one installed before).
        unsafe {
            libc::signal(signal, action);
        }
    }
    let (pty, _child) = spawned.unwrap();
    // The line is `ignored=<SigIgn in hex>=`.
    let mut out = String::new();
    let mut buf = [0u8; 256];
    let mask = loop {
        if let Some(mask) = out.split_once("ignored=").and_then(|(_, rest)| rest.split_once('=')).map(|(m, _)| m) {
            break u64::from_str_radix(mask.trim(), 16).unwrap();
        }
        let read = tokio::time::timeout(Duration::from_secs(10), pty.read(&mut buf)).await.unwrap().unwrap();
        match read {
            ReadResult::Data(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            ReadResult::Closed => panic!("no mask in {out:?}"),
        }
    };
    for signal in ignored {
        assert_eq!(mask & (1 << (signal - 1)), 0, "signal {signal} is ignored in the program: {mask:#x}");
    }
}

#[tokio::test]
async fn exit_status_is_reported_after_the_last_output() {
    let dir = tempfile::tempdir().unwrap();
    let (pty, mut child) = Pty::spawn(&shell(dir.path())).unwrap();
    let mut seen = String::new();
    send(&pty, b"printf 'last words'; exit 7\n").await;
    expect(&pty, &mut seen, "last words").await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert_eq!(exit_status(status), edgeshell_core::protocol::ExitStatus::Code(7));
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), pty.read(&mut buf)).await.unwrap().unwrap() {
            ReadResult::Closed => break,
            ReadResult::Data(_) => {}
        }
    }
}

#[tokio::test]
async fn a_killed_program_reports_its_signal() {
    let dir = tempfile::tempdir().unwrap();
    let mut program = shell(dir.path());
    program.args = vec!["-c".into(), "kill -TERM $$".into()];
    let (_pty, mut child) = Pty::spawn(&program).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert_eq!(exit_status(status), edgeshell_core::protocol::ExitStatus::Signaled(15));
}

#[tokio::test]
async fn stop_kills_everything_the_program_started() {
    let dir = tempfile::tempdir().unwrap();
    let (pty, _child) = Pty::spawn(&shell(dir.path())).unwrap();
    let mut seen = String::new();
    // Job control puts each background job in its own process group; a nohup'd child ignores SIGHUP.
    send(&pty, b"set -m; sleep 1001 & nohup sleep 1002 >/dev/null 2>&1 & (sleep 1003; true) & echo started-$((2*3))\n")
        .await;
    expect(&pty, &mut seen, "started-6").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let group = pty.pid().as_raw_nonzero().get();
    let before = process_tree::members(&[group]);
    assert!(before.len() >= 4, "shell and three jobs expected: {before:?}");
    assert!(before.iter().any(|p| p.pgrp != group), "jobs have their own groups: {before:?}");
    let killed = process_tree::kill_all(&[group]).await;
    assert!(killed >= 4, "{killed}");
    let after: Vec<_> = process_tree::members(&[group])
        .into_iter()
        .filter(|p| {
            let state = std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).unwrap_or_default();
            !state.contains(") Z ")
        })
        .collect();
    assert!(after.is_empty(), "survivors: {after:?}");
}

#[tokio::test]
async fn the_program_sees_only_the_environment_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("EDGESHELL_JOIN_TOKEN", "must-not-leak");
    let (pty, _child) = Pty::spawn(&shell(dir.path())).unwrap();
    let mut seen = String::new();
    send(&pty, b"echo token=[$EDGESHELL_JOIN_TOKEN] pwd=$(pwd)\n").await;
    expect(&pty, &mut seen, "token=[] pwd=").await;
    expect(&pty, &mut seen, dir.path().file_name().unwrap().to_str().unwrap()).await;
}

#[tokio::test]
async fn bulk_output_is_read_in_large_pieces_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (pty, _child) = Pty::spawn(&shell(dir.path())).unwrap();
    let mut seen = String::new();
    send(&pty, b"stty -echo; echo re''ady\n").await;
    // The prompt too: it may come in a read of its own, and must not be taken for the start of the output.
    expect(&pty, &mut seen, "ready\r\n$ ").await;
    // 40,000 lines of 10 bytes each ("%09d\n", the terminal turning "\n" into "\r\n").
    send(&pty, b"seq -f '%09g' 1 40000; echo do''ne\n").await;
    let mut buf = vec![0u8; 32 * 1024];
    let (mut output, mut reads, mut largest) = (Vec::new(), 0usize, 0usize);
    let done = |output: &[u8]| output.windows(6).rev().take(64 * 1024).any(|w| w == b"done\r\n");
    while !done(&output) {
        match tokio::time::timeout(Duration::from_secs(10), pty.read(&mut buf)).await.unwrap().unwrap() {
            ReadResult::Data(n) => {
                output.extend_from_slice(&buf[..n]);
                largest = largest.max(n);
            }
            ReadResult::Closed => panic!("closed after {} bytes", output.len()),
        }
        reads += 1;
        // What sending a frame costs the runner; meanwhile the program keeps writing.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let expected: String = (1..=40_000).map(|i| format!("{i:09}\r\n")).collect::<String>() + "done\r\n";
    let text = String::from_utf8_lossy(&output);
    assert!(text.starts_with(&expected), "every line, once and in order");
    // The kernel hands over at most 4 KiB at a time; one read takes all that is ready. (How much is
    // ready depends on how much CPU the program got meanwhile, so only the largest read is checked.)
    assert!(largest > 8 * 1024, "{} bytes in {reads} reads, the largest {largest}", output.len());
}

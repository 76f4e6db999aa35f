//! The sample CLI as the runner starts it: one task, the interactive loop, colour on and off, and
//! handing over to a configured agent CLI.

use std::io::Write;
use std::process::{Command, Stdio};

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgeshell-sample-cli"));
    c.env_clear().env("PATH", "/usr/bin:/bin").env("EDGESHELL_DEMO_SPEED", "100");
    c
}

fn run(mut c: Command, stdin: &str) -> (i32, String) {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn one_task_goes_through_every_stage() {
    let mut c = cli();
    c.env("NO_COLOR", "1").args(["--task", "add a --verbose flag"]);
    let (code, out) = run(c, "");
    assert_eq!(code, 0);
    let mut at = 0;
    for stage in [
        "Task: add a --verbose flag",
        "Reading the repository",
        "Planning",
        "Editing",
        "Running tests",
        "8 passed",
        "Done",
    ] {
        let found = out[at..].find(stage).unwrap_or_else(|| panic!("{stage:?} missing or out of order in:\n{out}"));
        at += found;
    }
    assert!(!out.contains('\x1b'), "NO_COLOR output has escapes");
}

#[test]
fn colour_is_on_by_default() {
    let mut c = cli();
    c.env("TERM", "xterm-256color").args(["--task", "x"]);
    let (_, out) = run(c, "");
    assert!(out.contains("\x1b[1;38;5;75m"), "no colour: {out:?}");
}

#[test]
fn the_interactive_loop_prompts_runs_and_quits() {
    let mut c = cli();
    c.env("NO_COLOR", "1");
    let (code, out) = run(c, "\nrename the config module\nexit\n");
    assert_eq!(code, 0);
    assert!(out.contains("edgeshell sample agent"), "{out}");
    assert_eq!(out.matches("What should the agent do?").count(), 3, "{out}");
    assert!(out.contains("Task: rename the config module") && out.trim_end().ends_with("bye"), "{out}");
    // End of input also quits.
    let mut c = cli();
    c.env("NO_COLOR", "1");
    let (code, out) = run(c, "");
    assert_eq!((code, out.trim_end().ends_with("bye")), (0, true));
}

#[test]
fn a_configured_agent_cli_takes_over_with_its_arguments() {
    let mut c = cli();
    c.env("EDGESHELL_AGENT_COMMAND", "printf '%s|'").args(["--model", "big one"]);
    let (code, out) = run(c, "");
    assert_eq!((code, out.as_str()), (0, "--model|big one|"));
    let mut missing = cli();
    missing.env("EDGESHELL_AGENT_COMMAND", "no-such-agent-cli");
    assert_eq!(run(missing, "").0, 127);
}

#[test]
fn bad_arguments_are_refused() {
    let mut c = cli();
    c.arg("--frobnicate");
    assert_eq!(run(c, "").0, 2);
}

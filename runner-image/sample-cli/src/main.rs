//! `edgeshell-sample-cli`: the session program the runner image starts by default. With
//! `EDGESHELL_AGENT_COMMAND` set it hands over to that real agent CLI (`exec`, arguments passed on);
//! otherwise it asks for a task and shows a coding agent working through it, stage by stage, in colour
//! (`NO_COLOR` turns colour off; `EDGESHELL_DEMO_SPEED` speeds it up).
//!
//! ```text
//! edgeshell-sample-cli                 interactive: prompt, run, prompt again (`exit` or Ctrl-D quits)
//! edgeshell-sample-cli --task TEXT     run one task and exit
//! ```

// Printing to the terminal is this program's job.
#![allow(clippy::print_stdout)]

mod demo;
mod style;

use edgeshell_core::settings::{Program, Reader, SettingsError};
use std::io::{BufRead, Write};

/// A setting's value, or the program stops with the reason.
fn or_exit<T>(result: Result<T, SettingsError>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("edgeshell-sample-cli: {e}");
        std::process::exit(2)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let settings = Reader::new(Program::SampleCli, &env);
    if let Some(agent) = or_exit(settings.text("EDGESHELL_AGENT_COMMAND")) {
        use std::os::unix::process::CommandExt;
        // `sh -c 'exec <agent> "$@"'` keeps the agent's own argument handling and PATH lookup.
        let error = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("exec {agent} \"$@\""))
            .arg("edgeshell-agent")
            .args(&args)
            .exec();
        eprintln!("edgeshell-sample-cli: could not start {agent:?}: {error}");
        std::process::exit(127);
    }
    let style = style::Style::from_env();
    let speed: f64 = or_exit(settings.value("EDGESHELL_DEMO_SPEED"));
    let pace = demo::Pace::new(speed);
    match args.as_slice() {
        [flag, task] if flag == "--task" => demo::run_task(&style, &pace, task),
        [] => interactive(&style, &pace),
        _ => {
            eprintln!("usage: edgeshell-sample-cli [--task TEXT]");
            std::process::exit(2);
        }
    }
}

fn interactive(style: &style::Style, pace: &demo::Pace) {
    demo::banner(style);
    let stdin = std::io::stdin();
    loop {
        print!("{} ", style.prompt("What should the agent do?"));
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let task = line.trim();
        match task {
            "" => continue,
            "exit" | "quit" => break,
            _ => demo::run_task(style, pace, task),
        }
    }
    println!("{}", style.dim("bye"));
}

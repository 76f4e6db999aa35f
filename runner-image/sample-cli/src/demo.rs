//! The demo itself: a task goes through the stages a coding agent shows (reading the repository,
//! planning, editing, testing, summary), with spinners and progress bars paced like real work.

use crate::style::{Style, SPINNER};
use std::io::Write;
use std::time::{Duration, Instant};

/// How fast the demo runs.
pub(crate) struct Pace {
    speed: f64,
}

impl Pace {
    /// `speed` > 1 is faster; nonsense is taken as 1.
    pub(crate) fn new(speed: f64) -> Pace {
        Pace { speed: if speed.is_finite() && speed > 0.0 { speed } else { 1.0 } }
    }

    fn wait(&self, ms: u64) {
        std::thread::sleep(Duration::from_secs_f64(ms as f64 / 1000.0 / self.speed));
    }
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// The greeting of the interactive mode.
pub(crate) fn banner(style: &Style) {
    let rule = "─".repeat(style.width().min(64));
    println!("{}", style.dim(&rule));
    println!("  {}  {}", style.title("edgeshell sample agent"), style.dim("a demo of the CLIs edgeshell hosts"));
    println!("  {}", style.dim("Type a task, e.g. \"add a --verbose flag\". `exit` quits."));
    println!("{}", style.dim(&rule));
}

/// Spins for `ms` with `label`, then marks it done.
fn spin(style: &Style, pace: &Pace, label: &str, ms: u64) {
    if style.live() {
        for i in 0..(ms / 80).max(1) {
            print!("\r  {} {label}", style.stage(SPINNER[i as usize % SPINNER.len()]));
            flush();
            pace.wait(80);
        }
        println!("\r  {} {label}", style.ok("✔"));
    } else {
        pace.wait(ms);
        println!("  ✔ {label}");
    }
}

/// Walks a progress bar over `items`, naming each.
fn progress(style: &Style, pace: &Pace, items: &[&str], ms_each: u64) {
    for (i, item) in items.iter().enumerate() {
        let line = format!("  {} {}", style.bar(i + 1, items.len()), style.dim(item));
        if style.live() {
            print!("\r\x1b[2K{line}");
            flush();
        } else {
            println!("{line}");
        }
        pace.wait(ms_each);
    }
    if style.live() {
        println!();
    }
}

const FILES: [&str; 12] = [
    "Cargo.toml",
    "src/main.rs",
    "src/cli.rs",
    "src/config.rs",
    "src/commands/mod.rs",
    "src/commands/run.rs",
    "src/output.rs",
    "tests/cli.rs",
    "tests/config.rs",
    "README.md",
    "CHANGELOG.md",
    ".github/workflows/ci.yml",
];

const TESTS: [&str; 8] = [
    "cli::parses_flags",
    "cli::rejects_unknown",
    "config::defaults",
    "config::env_overrides",
    "commands::run::dry_run",
    "commands::run::writes_output",
    "output::colours_off",
    "output::wraps_long_lines",
];

/// Runs one task through every stage.
pub(crate) fn run_task(style: &Style, pace: &Pace, task: &str) {
    let started = Instant::now();
    let task: String = task.chars().filter(|c| !c.is_control()).take(200).collect();
    println!();
    println!("{} {}", style.title("▶ Task:"), task);
    spin(style, pace, "Understanding the task", 600);

    println!("{}", style.stage("● Reading the repository"));
    progress(style, pace, &FILES, 90);
    println!("  {}", style.dim(&format!("{} files, 2,184 lines", FILES.len())));

    println!("{}", style.stage("● Planning"));
    let words: Vec<&str> = task.split_whitespace().filter(|w| w.len() > 3).take(3).collect();
    let subject = if words.is_empty() { "the change".to_owned() } else { words.join(" ") };
    for step in [
        format!("Find where {subject} belongs"),
        format!("Implement {subject} in src/cli.rs"),
        "Cover it with a test in tests/cli.rs".to_owned(),
        "Document it in README.md".to_owned(),
    ] {
        pace.wait(250);
        println!("  {} {step}", style.dim("•"));
    }

    println!("{}", style.stage("● Editing"));
    for (file, old, new) in [
        ("src/cli.rs", "    pub quiet: bool,", "    pub quiet: bool,\n    /// Added for: TASK\n    pub verbose: bool,"),
        ("tests/cli.rs", "", "#[test]\nfn handles_the_new_option() { /* TASK */ }"),
    ] {
        pace.wait(300);
        println!("  {}", style.dim(&format!("--- a/{file}  +++ b/{file}")));
        for line in old.lines() {
            println!("  {}", style.removed(&format!("- {line}")));
        }
        for line in new.replace("TASK", &task).lines() {
            println!("  {}", style.added(&format!("+ {line}")));
        }
    }

    println!("{}", style.stage("● Running tests"));
    for (i, name) in TESTS.iter().enumerate() {
        pace.wait(120);
        println!("  {} test {name} ... {}", style.dim(&format!("[{}/{}]", i + 1, TESTS.len())), style.ok("ok"));
    }
    println!("  {}", style.ok(&format!("test result: ok. {} passed; 0 failed", TESTS.len())));

    let secs = started.elapsed().as_secs_f64();
    println!("{} {}", style.title("✔ Done"), style.dim(&format!("in {secs:.1}s: 2 files changed, 4 insertions(+)")));
    println!();
}

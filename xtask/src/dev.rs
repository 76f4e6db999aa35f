//! `cargo xtask dev`: the whole stack on this machine from a fresh clone. Installs or checks what is
//! missing (`scripts/prerequisites.sh`: Rust targets, a C toolchain, PostgreSQL, Node.js; then the edge
//! tools: npm packages, wasm-bindgen-cli, worker-build), builds the control functions, the Worker, the
//! web client, the pool agent and the sample CLI, then becomes `edgeshell-dev`, which starts everything
//! and stops it all on Ctrl-C (see `crates/e2e/src/bin/edgeshell-dev.rs`).

use crate::edge;
use crate::run::{build_functions, cargo, functions_wasm_dir, root, Step};
use anyhow::{Context, Result};
use edgeshell_core::settings::{Program, Reader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// Builds what is missing and replaces this process with the dev stack.
pub(crate) fn run() -> Result<()> {
    // Before anything is built: a taken port would only be found after minutes of building.
    let env = |name: &str| std::env::var(name).ok();
    let port: u16 = Reader::new(Program::Dev, &env).number("EDGESHELL_DEV_PORT")?;
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        anyhow::bail!("port {port} is in use: stop what holds it, or set EDGESHELL_DEV_PORT to another port");
    }
    let mut prerequisites = Command::new("bash");
    prerequisites.arg(root().join("scripts/prerequisites.sh"));
    if Reader::new(Program::Dev, &env).text("DATABASE_URL")?.is_some() {
        prerequisites.arg("--no-postgres");
    }
    Step::new("prerequisites (rust targets, C toolchain, PostgreSQL, Node.js)", prerequisites).run()?;
    build_functions().run()?;
    let tools = edge::tools()?;
    edge::build(&tools)?;
    Step::new(
        "pool agent, sample CLI and the dev launcher",
        cargo(&[
            "build",
            "--locked",
            "-p",
            "edgeshell-pool-agent",
            "-p",
            "edgeshell-sample-cli",
            "-p",
            "edgeshell-e2e",
            "--bin",
            "edgeshell-dev",
        ]),
    )
    .run()?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let mut launcher = Command::new(target.join("debug/edgeshell-dev"));
    launcher.current_dir(root()).env("EDGESHELL_WASM_DIR", functions_wasm_dir());
    edge::test_env(&tools, &mut launcher);
    // exec: Ctrl-C reaches the launcher alone, which stops every piece before the shell prompt returns.
    let error = launcher.exec();
    Err(error).context("starting edgeshell-dev")
}

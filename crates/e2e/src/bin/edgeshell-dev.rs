//! `edgeshell-dev`: the whole stack on this machine, for a person at a browser (`cargo xtask dev` builds
//! everything, then runs this). Postgres (a private cluster unless `DATABASE_URL` is set), the control
//! functions in the wasmtime host signing at the token signer (as in production), the dev OIDC issuer,
//! two regions (`eu` and `us`, one pool agent each,
//! runners as local processes) and the edge gateway under `wrangler dev`. Ctrl-C stops all of it.
//!
//! Its settings (`EDGESHELL_DEV_PORT`, `EDGESHELL_DEV_REGIONS`, `EDGESHELL_SESSION_COMMAND`,
//! `DATABASE_URL`, `EDGESHELL_TEST_LOGS`) are the core's `DEV` catalogue, listed in docs/configuration.md.

// A command-line tool: printing its progress is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use edgeshell_core::settings::{Program, Reader};
use edgeshell_e2e::{Stack, StackOptions};
use std::time::Instant;

/// The default session program: an interactive shell, so the person gets their usual prompt. Not a
/// login shell: a login profile resets `PATH`, and the session's `PATH` is what puts this build's
/// `edgeshell-sample-cli` (and the other tools the README names) in reach by name.
fn session_command(settings: &Reader<'_>) -> anyhow::Result<String> {
    Ok(settings.text("EDGESHELL_SESSION_COMMAND")?.unwrap_or_else(|| {
        if std::path::Path::new("/bin/bash").exists() {
            "/bin/bash".into()
        } else {
            "/bin/sh".into()
        }
    }))
}

/// The whole stack on this machine, for a person at a browser: Postgres, the control functions, the
/// token signer, the dev OIDC issuer, two regions and the edge gateway (`cargo xtask dev` builds
/// everything first). Configured by `EDGESHELL_DEV_*`, `EDGESHELL_SESSION_COMMAND` and `DATABASE_URL`
/// (docs/configuration.md); takes no arguments. Ctrl-C stops all of it.
#[derive(clap::Parser)]
#[command(name = "edgeshell-dev", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    <Cli as clap::Parser>::parse();
    // The sessions' PATH includes this build's binaries: `edgeshell-sample-cli` runs in any session. Set
    // before any thread starts.
    if let Ok(bin) = edgeshell_stack::paths::workspace_bin("edgeshell-pool-agent") {
        if let Some(dir) = bin.parent() {
            std::env::set_var("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()));
        }
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let settings = Reader::new(Program::Dev, &env);
    let port: u16 = settings.number("EDGESHELL_DEV_PORT")?;
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        anyhow::bail!("port {port} is in use: stop what holds it or set EDGESHELL_DEV_PORT");
    }
    let regions = settings.list("EDGESHELL_DEV_REGIONS")?;
    let database_url = settings.text("DATABASE_URL")?;
    let started = Instant::now();
    eprintln!("==> generating this run's signing key");
    let key = edgeshell_keys::PrivateJwk::generate("dev-signing-key", 2048, &mut rand::rngs::OsRng)?;
    eprintln!(
        "==> starting {} (Postgres, functions host, dev OIDC issuer), wrangler dev on port {port}, pool agents for {}",
        if database_url.is_some() { "the control plane on DATABASE_URL" } else { "the control plane" },
        regions.join(", ")
    );
    let options = StackOptions {
        regions: regions.clone(),
        session_command: session_command(&settings)?,
        edge_port: Some(port),
        database_url,
        signing_key: Some(serde_json::to_string(&key)?.into()),
        signer: true,
        // The documented quotas (docs/configuration.md), as a person meets them in production.
        lift_quotas: false,
        ..StackOptions::default()
    };
    let stack = Stack::start(options).await?;
    println!(
        "\nedgeshell is up in {:.1} s\n\n  open      {}/\n  sign in   as any name (the local dev issuer)\n\n  control   {}\n  issuer    {}\n  database  {}",
        started.elapsed().as_secs_f64(),
        stack.edge.url,
        stack.control.url(),
        stack.control.issuer.issuer(),
        stack.control.db_url,
    );
    for (region, agent) in &stack.agents {
        println!("  pool {region:<4} {} (metrics {}/metrics)", agent.url, agent.url);
    }
    if let Some(signer) = &stack.control.signer {
        println!("  signer    http://{} (kid {})", signer.addr(), signer.kid());
    }
    println!("  health    {}/healthz\n\nCtrl-C stops everything.", stack.edge.url);
    tokio::signal::ctrl_c().await?;
    eprintln!("\n==> stopping");
    drop(stack);
    eprintln!("==> stopped");
    Ok(())
}

//! `edgeshell-signer`: the control plane's token signer (settings in [`edgeshell_signer::config`]).
//! Prints its address on stdout once it serves; stops on Ctrl-C or SIGTERM.

use anyhow::{Context, Result};
use clap::Parser;
use edgeshell_signer::{Signer, SignerConfig};
use std::io::Write;

/// The control plane's token signer: the only holder of the private signing keys; the control functions
/// ask it to sign. Configured by `EDGESHELL_SIGNER_*` variables (docs/configuration.md); takes no
/// arguments.
#[derive(Parser)]
#[command(name = "edgeshell-signer", version)]
struct Cli {}

#[tokio::main]
async fn main() -> Result<()> {
    Cli::parse();
    let config = SignerConfig::from_env().context("edgeshell-signer settings")?;
    let signer = Signer::start(config).await?;
    writeln!(std::io::stdout(), "{}", signer.addr())?;
    eprintln!("edgeshell-signer: serving on {} (kid {})", signer.addr(), signer.kid());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = signer.wait() => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    }
}

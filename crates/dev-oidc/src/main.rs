//! `edgeshell-dev-oidc`: the local OIDC issuer.
//!
//! ```text
//! edgeshell-dev-oidc [--listen 127.0.0.1:8790] [--client-id edgeshell-dev] [--id-token-secs 3600]
//! ```
//! Prints the issuer URL on stdout once it serves. Arguments are parsed by `clap` (`--help`).

use anyhow::{bail, Context, Result};
use edgeshell_dev_oidc::DevIssuer;
use std::io::Write;

/// The local OIDC issuer: signs anyone in, on loopback only.
#[derive(Debug, clap::Parser)]
#[command(name = "edgeshell-dev-oidc", version)]
struct Args {
    /// Where to listen (IP:PORT, loopback).
    #[arg(long, default_value = "127.0.0.1:8790")]
    listen: String,
    /// The client id tokens are issued for.
    #[arg(long, default_value = "edgeshell-dev")]
    client_id: String,
    /// How long ID tokens live, in seconds (short ones show the page renewing its sign-in).
    #[arg(long, default_value_t = edgeshell_dev_oidc::ID_TOKEN_SECS)]
    id_token_secs: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let Args { listen, client_id, id_token_secs } = <Args as clap::Parser>::parse();
    let ip: std::net::SocketAddr = listen.parse().context("--listen must be IP:PORT")?;
    if !ip.ip().is_loopback() {
        bail!("the dev issuer signs anyone in: it listens on loopback only");
    }
    let issuer = DevIssuer::start(&listen, &client_id).await?;
    issuer.set_id_token_secs(id_token_secs);
    writeln!(std::io::stdout(), "{}", issuer.issuer())?;
    eprintln!("edgeshell-dev-oidc: issuer {} (client id {client_id})", issuer.issuer());
    tokio::select! {
        r = issuer.wait() => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

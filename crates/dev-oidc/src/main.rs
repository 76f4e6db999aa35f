//! `edgeshell-dev-oidc`: the local OIDC issuer.
//!
//! ```text
//! edgeshell-dev-oidc [--listen 127.0.0.1:8790] [--client-id edgeshell-dev]
//! ```
//! Prints the issuer URL on stdout once it serves.

use anyhow::{bail, Context, Result};
use edgeshell_dev_oidc::DevIssuer;
use std::io::Write;

#[tokio::main]
async fn main() -> Result<()> {
    let (mut listen, mut client_id) = ("127.0.0.1:8790".to_owned(), "edgeshell-dev".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--client-id" => client_id = value()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let ip: std::net::SocketAddr = listen.parse().context("--listen must be IP:PORT")?;
    if !ip.ip().is_loopback() {
        bail!("the dev issuer signs anyone in: it listens on loopback only");
    }
    let issuer = DevIssuer::start(&listen, &client_id).await?;
    writeln!(std::io::stdout(), "{}", issuer.issuer())?;
    eprintln!("edgeshell-dev-oidc: issuer {} (client id {client_id})", issuer.issuer());
    tokio::select! {
        r = issuer.wait() => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

//! `cargo xtask deny`: cargo-deny's four checks (advisories, licenses, bans, sources) for the three
//! workspaces (this one, `functions/`, `edge-gateway/`) under the one policy in `deny.toml`.
//!
//! cargo-deny is installed into `$HOME/.cache/edgeshell/tools` when missing (`cargo install --locked`).
//! The RustSec advisory database is a Git repository on GitHub, and it is found in this order:
//!
//! 1. fetched by cargo-deny (`cargo deny fetch db`);
//! 2. where GitHub cannot be reached: `EDGESHELL_ADVISORY_DB`, a clone of `rustsec/advisory-db`,
//!    copied to where cargo-deny reads it;
//! 3. the copy cargo-deny already holds under `$CARGO_HOME/advisory-dbs`.
//!
//! The database's commit and date are printed. With none of the three the task fails, unless
//! `EDGESHELL_ADVISORIES=skip-unreachable` (what `.ci/run` sets, on machines that only reach package
//! registries): then the other three checks run and the task says loudly that advisories were not
//! checked. See docs/dependencies.md.

use crate::run::{root, Step};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo-deny release the policy is written for.
const VERSION: &str = "0.20.2";

/// Where cargo-deny keeps the default database (its directory name is derived from the database URL).
fn database_dir() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    cargo_home.join("advisory-dbs").join("advisory-db-3157b0e258782691")
}

fn tools_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/edgeshell/tools")
}

/// The cargo-deny binary, installed first if missing.
fn cargo_deny() -> Result<PathBuf> {
    let installed = tools_dir().join("bin/cargo-deny");
    let current = Command::new(&installed).arg("--version").output();
    if current.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(VERSION)) {
        return Ok(installed);
    }
    let mut install = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    install.args(["install", "--locked", "--quiet", "cargo-deny", "--version", VERSION, "--root"]).arg(tools_dir());
    Step::new("installing cargo-deny", install).run()?;
    Ok(installed)
}

/// The database's origin, commit and date, for the log.
fn describe(dir: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let origin = git(&["remote", "get-url", "origin"]).unwrap_or_else(|| "an unknown origin".into());
    let commit = git(&["log", "-1", "--format=%h of %cs"]).unwrap_or_else(|| "an unknown commit".into());
    format!("{origin} at {commit}")
}

/// Whether a usable database is in place, getting one if it can.
fn database(deny: &Path) -> Result<bool> {
    let dir = database_dir();
    let fetched = Command::new(deny).args(["deny", "fetch", "db"]).current_dir(root()).status();
    if fetched.is_ok_and(|s| s.success()) {
        eprintln!("==> advisory database fetched: {}", describe(&dir));
        return Ok(true);
    }
    if let Some(copy) = std::env::var_os("EDGESHELL_ADVISORY_DB") {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.parent().context("database directory")?)?;
        let cloned = Command::new("git").args(["clone", "--quiet"]).arg(&copy).arg(&dir).status()?;
        if !cloned.success() {
            bail!("cannot clone the advisory database from EDGESHELL_ADVISORY_DB={}", Path::new(&copy).display());
        }
        eprintln!("==> advisory database from {}: {}", Path::new(&copy).display(), describe(&dir));
        return Ok(true);
    }
    if dir.join(".git").exists() {
        eprintln!("==> advisory database cannot be fetched; using the copy at {}: {}", dir.display(), describe(&dir));
        return Ok(true);
    }
    Ok(false)
}

pub(crate) fn run() -> Result<()> {
    let deny = cargo_deny()?;
    let advisories = database(&deny)?;
    if !advisories {
        let why = "the RustSec advisory database (github.com/rustsec/advisory-db) cannot be fetched from this \
                   machine and no copy is at hand (EDGESHELL_ADVISORY_DB)";
        if std::env::var("EDGESHELL_ADVISORIES").as_deref() != Ok("skip-unreachable") {
            bail!("{why}; set EDGESHELL_ADVISORIES=skip-unreachable to run the other checks without it");
        }
        eprintln!("\n==> WARNING: advisories NOT checked: {why}\n");
    }
    let config = root().join("deny.toml");
    // The checks run offline (the database is in place): the crates must be at hand first.
    for dir in [root(), root().join("functions"), root().join("edge-gateway")] {
        let mut fetch = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        fetch.current_dir(dir).args(["fetch", "--locked", "--quiet"]);
        Step::new("cargo fetch", fetch).run()?;
    }
    // The policy's exceptions are written for all three workspaces: those only another one needs are
    // noise in each. The root workspace still reports an exception that has become unnecessary.
    let elsewhere = ["unmatched-skip", "unnecessary-skip", "license-not-encountered", "advisory-not-detected"];
    for (name, dir, allowed) in [
        ("cargo deny: the workspace", root(), &elsewhere[..1]),
        ("cargo deny: functions/", root().join("functions"), &elsewhere[..]),
        ("cargo deny: edge-gateway/", root().join("edge-gateway"), &elsewhere[..]),
    ] {
        let mut check = Command::new(&deny);
        check.current_dir(&dir).args(["deny", "--frozen", "--config"]).arg(&config).arg("check");
        for lint in allowed {
            check.args(["-A", lint]);
        }
        if advisories {
            check.arg("all");
        } else {
            check.args(["bans", "licenses", "sources"]);
        }
        Step::new(name, check).run()?;
    }
    Ok(())
}

//! The runner's command line, in the library so that other binaries can embed it (the pool agent's
//! `runner` subcommand runs local runners from one executable):
//!
//! ```text
//! edgeshell-runner [-- COMMAND [ARGS...]]        configuration from EDGESHELL_* (see settings)
//! edgeshell-runner install-bundle URL DEST      policy from EDGESHELL_BUNDLE_* variables
//! ```

use crate::{bundle, lease, relay, settings};
use anyhow::{bail, Context, Result};
use edgeshell_core::bundles::BundlePolicy;
use edgeshell_core::settings::{Program, Reader};
use edgeshell_platform::environment::Environment;

/// Runs the command line `args` (without the program name); returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    match real_main(args) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "runner failed");
            eprintln!("edgeshell-runner: {e:#}");
            2
        }
    }
}

fn real_main(args: Vec<String>) -> Result<i32> {
    init_logs();
    // No other process of this user (the session's program included) may read this one's memory or
    // /proc environment, where the join token and resume ticket live.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("making the runner non-dumpable")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.first().map(String::as_str) {
        Some("install-bundle") => runtime.block_on(install_bundle(&args[1..])),
        Some("--") | None => {
            let command = args.get(1..).unwrap_or_default();
            let config = settings::from_env(|k| std::env::var(k).ok(), command)?;
            tracing::info!(session = %config.session_id, url = %config.settings.join_url, "runner starting");
            let outcome = runtime.block_on(async {
                // SIGTERM (the pool agent stopping the session) ends the program's whole tree first;
                // so does a lapsed agent lease (a local agent gone for good).
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                let lease = config.agent_lease.clone();
                let stop = async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        () = lease::lapsed(lease) => {}
                    }
                };
                relay::run_until(config.settings, config.program, stop).await
            })?;
            tracing::info!(session = %config.session_id, ?outcome, "runner done");
            Ok(outcome.exit_code())
        }
        Some(other) => {
            bail!("unknown command {other:?}; usage: edgeshell-runner [install-bundle URL DEST | -- COMMAND...]")
        }
    }
}

async fn install_bundle(args: &[String]) -> Result<i32> {
    let [url, dest] = args else { bail!("usage: edgeshell-runner install-bundle URL DEST") };
    let env = Environment::read(Program::Runner)?;
    let lookup = env.lookup();
    let settings = Reader::new(Program::Runner, &lookup);
    let hosts = settings.list("EDGESHELL_BUNDLE_HOSTS")?;
    let allowlist = settings.list("EDGESHELL_BUNDLE_SHA256")?;
    if hosts.is_empty() || allowlist.is_empty() {
        bail!("EDGESHELL_BUNDLE_HOSTS and EDGESHELL_BUNDLE_SHA256 must name the allowed hosts and digests");
    }
    let mut policy = BundlePolicy::new(&hosts, &allowlist)?;
    policy.max_download_bytes = settings.number::<u64>("EDGESHELL_BUNDLE_MAX_MB")?.saturating_mul(1024 * 1024);
    let roots = match settings.text("EDGESHELL_BUNDLE_CA_FILE")? {
        Some(path) => std::fs::read(&path).with_context(|| format!("reading {path}"))?,
        None => Vec::new(),
    };
    let client = bundle::client(&policy, &roots)?;
    let installed = bundle::install(&client, &policy, url, std::path::Path::new(dest)).await?;
    tracing::info!(size = installed.size, sha256 = %installed.sha256, entries = installed.entries, dest, "bundle installed");
    Ok(0)
}

/// Structured logs on stderr: JSON unless `EDGESHELL_LOG_FORMAT=text`; level from `EDGESHELL_LOG`
/// (default `info`). The pool agent logs the same way.
pub fn init_logs() {
    // Embedded in another binary, logs may be set up already.
    let env = |name: &str| std::env::var(name).ok();
    let settings = Reader::new(Program::Runner, &env);
    let level = settings.required("EDGESHELL_LOG").unwrap_or_else(|_| "info".into());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if settings.choice("EDGESHELL_LOG_FORMAT", &["json", "text"]).is_ok_and(|i| i == 1) {
        builder.try_init()
    } else {
        builder.json().try_init()
    };
}

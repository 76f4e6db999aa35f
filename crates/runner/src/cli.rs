//! The runner's command line (`clap`), in the library so that other binaries can embed it (the pool
//! agent's `runner` subcommand runs local runners from one executable):
//!
//! ```text
//! edgeshell-runner [-- COMMAND [ARGS...]]        configuration from EDGESHELL_* (see settings)
//! edgeshell-runner install-bundle URL DEST      policy from EDGESHELL_BUNDLE_* variables
//! ```

use crate::{bundle, lease, relay, settings};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use edgeshell_core::bundles::BundlePolicy;
use edgeshell_core::settings::{Program, Reader};
use edgeshell_platform::environment::Environment;

/// One session's runner: joins its room at the edge and serves the session's program on a PTY.
/// Configured by `EDGESHELL_*` variables (docs/configuration.md).
#[derive(Parser, Debug)]
#[command(name = "edgeshell-runner", version)]
struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
    /// The session's program and its arguments, instead of the configured one.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Downloads a CLI bundle over HTTPS, checks its SHA-256 against `EDGESHELL_BUNDLE_SHA256` and
    /// unpacks it into DEST (policy from `EDGESHELL_BUNDLE_*`).
    InstallBundle {
        /// The bundle's URL (a host in `EDGESHELL_BUNDLE_HOSTS`).
        url: String,
        /// The directory to unpack into.
        dest: String,
    },
}

/// Runs the command line `args` (without the program name); returns the process exit code: 2 for a
/// command line that does not parse (with clap's message), 0 after `--help` or `--version`.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(std::iter::once("edgeshell-runner".to_owned()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "runner failed");
            eprintln!("edgeshell-runner: {e:#}");
            2
        }
    }
}

fn real_main(cli: Cli) -> Result<i32> {
    init_logs();
    // No other process of this user (the session's program included) may read this one's memory or
    // /proc environment, where the join token and resume ticket live.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("making the runner non-dumpable")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cli.task {
        Some(Task::InstallBundle { url, dest }) => runtime.block_on(install_bundle(&url, &dest)),
        None => {
            let config = settings::from_env(|k| std::env::var(k).ok(), &cli.command)?;
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
    }
}

async fn install_bundle(url: &str, dest: &str) -> Result<i32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("edgeshell-runner").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_parses_as_documented() {
        Cli::command().debug_assert();
        let cli = parse(&["--", "sh", "-c", "echo --help"]).unwrap();
        assert!(cli.task.is_none());
        assert_eq!(cli.command, ["sh", "-c", "echo --help"], "everything after -- is the program's");
        assert!(parse(&[]).unwrap().command.is_empty(), "no arguments: the configured program");
        let cli = parse(&["install-bundle", "https://b.test/x.tgz", "/opt/cli"]).unwrap();
        assert!(
            matches!(cli.task, Some(Task::InstallBundle { url, dest }) if url == "https://b.test/x.tgz" && dest == "/opt/cli")
        );
        for bad in [&["install-bundle", "only-url"][..], &["bogus"], &["sh"]] {
            let e = parse(bad).map(|_| ()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
        assert_eq!(main(vec!["--help".into()]), 0);
        assert_eq!(main(vec!["--no-such-flag".into()]), 2);
    }
}

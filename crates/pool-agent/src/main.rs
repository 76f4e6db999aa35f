//! `edgeshell-pool-agent`: a region's pool agent, configured from its environment (see README.md);
//! its command line is `clap`'s. `edgeshell-pool-agent runner ...` runs the embedded runner (for local
//! pools from one executable); `edgeshell-pool-agent network-policy` prints the runners'
//! NetworkPolicy for this configuration.

// Printing the policy is that subcommand's job.
#![allow(clippy::print_stdout)]

use clap::{Parser, Subcommand};

/// A region's pool agent: dials out to its pool room at the edge, starts one runner per session on
/// commands the control plane signed, and heartbeats. Configured by `EDGESHELL_POOL_*` and
/// `EDGESHELL_RUNNER_*` variables (README.md, docs/configuration.md).
#[derive(Parser)]
#[command(name = "edgeshell-pool-agent", version)]
struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Subcommand)]
enum Task {
    /// Runs the embedded runner with the arguments that follow (`runner --help` for its own).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Runner {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Prints the runners' NetworkPolicy for this configuration (needs EDGESHELL_POOL_BACKEND=kubernetes).
    NetworkPolicy,
}

fn main() {
    match Cli::parse().task {
        Some(Task::Runner { args }) => std::process::exit(edgeshell_runner::cli::main(args)),
        // The runners' NetworkPolicy for this configuration, for the operator to apply.
        Some(Task::NetworkPolicy) => return print_network_policy(),
        None => {}
    }
    edgeshell_runner::cli::init_logs();
    // The agent holds every session's join token on its way to a runner: no process of its user (a
    // local session's program included) may read its memory through /proc.
    if let Err(e) = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable) {
        eprintln!("edgeshell-pool-agent: making the agent non-dumpable: {e}");
        std::process::exit(1);
    }
    let config = match edgeshell_pool_agent::config::from_env(|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("edgeshell-pool-agent: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgeshell-pool-agent: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(edgeshell_pool_agent::run(config, shutdown_signal()));
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "pool agent failed");
        eprintln!("edgeshell-pool-agent: {e:#}");
        std::process::exit(1);
    }
}

fn print_network_policy() {
    use edgeshell_pool_agent::backend::kubernetes::objects::runner_network_policy;
    use edgeshell_pool_agent::config::{from_env, BackendConfig};
    match from_env(|k| std::env::var(k).ok()) {
        Ok(config) => match config.backend {
            BackendConfig::Kubernetes(options) => {
                let policy = serde_json::to_string_pretty(&runner_network_policy(&options)).unwrap_or_default();
                println!("{policy}");
            }
            BackendConfig::Local(_) => {
                eprintln!("edgeshell-pool-agent: network-policy needs EDGESHELL_POOL_BACKEND=kubernetes");
                std::process::exit(2);
            }
        },
        Err(e) => {
            eprintln!("edgeshell-pool-agent: {e}");
            std::process::exit(2);
        }
    }
}

/// SIGTERM (Kubernetes, systemd) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

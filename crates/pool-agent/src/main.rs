//! `edgeshell-pool-agent`: a region's pool agent, configured from its environment (see README.md).
//! `edgeshell-pool-agent runner ...` runs the embedded runner (for local pools from one executable);
//! `edgeshell-pool-agent network-policy` prints the runners' NetworkPolicy for this configuration.

// Printing the policy is that subcommand's job.
#![allow(clippy::print_stdout)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("runner") {
        std::process::exit(edgeshell_runner::cli::main(args[1..].to_vec()));
    }
    if args.first().map(String::as_str) == Some("network-policy") {
        // The runners' NetworkPolicy for this configuration, for the operator to apply.
        return print_network_policy();
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!("edgeshell-pool-agent: configured by EDGESHELL_POOL_* and EDGESHELL_RUNNER_* variables (README.md)");
        return;
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

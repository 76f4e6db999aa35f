//! What a local runner's environment carries of its session: the agent's own settings it passes on,
//! the pool's `EDGESHELL_PASS_ENV` variables, the user's variables and secrets (passed on to the
//! program by name), the repository to clone and its token (the runner's only), and the command.
//! The runner's environment is not readable by the program: another user, and not dumpable.

use super::LocalOptions;
use crate::backend::RunnerSpec;

/// The agent's settings its runners read too.
const PASSED_ON: [&str; 7] = [
    "LANG",
    "EDGESHELL_LOG",
    "EDGESHELL_LOG_FORMAT",
    "SHELL",
    "EDGESHELL_GIT_CA_FILE",
    "EDGESHELL_REPO_MAX_MB",
    "EDGESHELL_REPO_TIMEOUT_SECS",
];

/// Sets `spec`'s session environment on the runner's command; `var` reads the agent's environment.
pub(super) fn apply(
    cmd: &mut tokio::process::Command,
    spec: &RunnerSpec,
    o: &LocalOptions,
    var: impl Fn(&str) -> Option<String>,
) {
    for name in PASSED_ON {
        if let Some(value) = var(name) {
            cmd.env(name, value);
        }
    }
    let mut pass_env = Vec::new();
    for name in &o.pass_env {
        if let Some(value) = var(name) {
            cmd.env(name, value);
            pass_env.push(name.as_str());
        }
    }
    // The user's variables and secrets win over the pool's of the same name.
    let user = spec.program.env.iter().map(|(n, v)| (n, v.as_str()));
    for (name, value) in user.chain(spec.program.secrets.iter().map(|(n, v)| (n, v.expose()))) {
        cmd.env(name, value);
        if !pass_env.contains(&name.as_str()) {
            pass_env.push(name);
        }
    }
    cmd.env("EDGESHELL_PASS_ENV", pass_env.join(","));
    if let Some(repo) = &spec.program.repo {
        cmd.envs(repo.runner_env());
        if let Some(token) = &spec.program.repo_token {
            cmd.env("EDGESHELL_REPO_TOKEN", token.expose());
        }
    }
    if let Some(command) = spec.program.command.as_ref().or(o.session_command.as_ref()) {
        cmd.env("EDGESHELL_SESSION_COMMAND", command);
    }
}

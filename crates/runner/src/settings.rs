//! The runner's configuration, read from its environment (set by the pool agent, or by a Kubernetes
//! Job whose join token comes from a Secret), and the environment the session's program gets: a fixed,
//! small set plus the variables named in `EDGESHELL_PASS_ENV`. The join token is never passed on.

use crate::pty::Program;
use crate::relay::Settings;
use edgeshell_core::settings::{Program as SettingsOf, Reader, SettingsError};
use edgeshell_platform::environment::Environment;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why the runner cannot start: a setting is missing or unusable.
pub type ConfigError = SettingsError;

/// Everything the runner needs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// How to reach the room and how long to run.
    pub settings: Settings,
    /// What to run.
    pub program: Program,
    /// The session, for logs.
    pub session_id: String,
}

/// Reads the configuration through `var` (the process environment in production), with `args` (after
/// `--`) as the session command when given. The settings are the core's catalogue's (`RUNNER`); the
/// system's own variables (`PATH`, `SHELL`, `LANG`) and those named in `EDGESHELL_PASS_ENV` are
/// passed through `var` to the program.
pub fn from_env(var: impl Fn(&str) -> Option<String>, args: &[String]) -> Result<RunnerConfig, ConfigError> {
    let env = Environment::from_lookup(SettingsOf::Runner, &var)?;
    let lookup = env.lookup();
    let settings = Reader::new(SettingsOf::Runner, &lookup);
    let join_url = settings.required("EDGESHELL_JOIN_URL")?;
    if !(join_url.starts_with("wss://") || join_url.starts_with("ws://")) {
        return Err(settings.invalid("EDGESHELL_JOIN_URL", "must be a ws:// or wss:// URL"));
    }
    let join_token = settings.required("EDGESHELL_JOIN_TOKEN")?;
    let deadline = settings.parse::<u64>("EDGESHELL_DEADLINE")?.map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    if deadline.is_some_and(|d| d <= SystemTime::now()) {
        return Err(settings.invalid("EDGESHELL_DEADLINE", "already passed"));
    }
    let workdir = PathBuf::from(settings.required("EDGESHELL_WORKDIR")?);
    let session_id = settings.text("EDGESHELL_SESSION_ID")?.unwrap_or_default();
    let (command, command_args) = match args.split_first() {
        Some((command, rest)) => (command.clone(), rest.to_vec()),
        None => match settings.text("EDGESHELL_SESSION_COMMAND")? {
            Some(line) => ("/bin/sh".to_owned(), vec!["-c".to_owned(), format!("exec {line}")]),
            None => (var("SHELL").unwrap_or_else(|| "/bin/sh".into()), Vec::new()),
        },
    };
    let mut env = vec![
        ("PATH".to_owned(), var("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())),
        ("HOME".to_owned(), workdir.to_string_lossy().into_owned()),
        ("TERM".to_owned(), "xterm-256color".to_owned()),
        ("COLORTERM".to_owned(), "truecolor".to_owned()),
        ("LANG".to_owned(), var("LANG").unwrap_or_else(|| "C.UTF-8".into())),
        ("EDGESHELL_SESSION_ID".to_owned(), session_id.clone()),
    ];
    for name in settings.list("EDGESHELL_PASS_ENV")? {
        if name.starts_with("EDGESHELL_JOIN_TOKEN") {
            return Err(settings.invalid("EDGESHELL_PASS_ENV", "the join token is never passed on"));
        }
        if let Some(value) = var(&name) {
            env.push((name, value));
        }
    }
    Ok(RunnerConfig {
        settings: Settings {
            join_url,
            join_token,
            deadline,
            idle_timeout: settings.secs("EDGESHELL_IDLE_TIMEOUT_SECS")?,
            max_offline: settings.secs("EDGESHELL_MAX_OFFLINE_SECS")?,
            connect_timeout: Duration::from_secs(10),
            status_file: settings.text("EDGESHELL_STATUS_FILE")?.map(PathBuf::from),
        },
        program: Program {
            command,
            args: command_args,
            cwd: workdir,
            env,
            size: (80, 24),
            memory_limit: settings.parse::<u64>("EDGESHELL_MEMORY_LIMIT_MB")?.map(|mb| mb * 1024 * 1024),
            process_limit: settings.parse::<u64>("EDGESHELL_PROCESS_LIMIT")?,
        },
        session_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)], args: &[&str]) -> Result<RunnerConfig, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        from_env(|k| vars.get(k).cloned(), &args)
    }

    const BASE: [(&str, &str); 2] =
        [("EDGESHELL_JOIN_URL", "wss://edge.test/sessions/s_1/join"), ("EDGESHELL_JOIN_TOKEN", "t")];

    #[test]
    fn the_program_gets_a_clean_environment_and_never_the_token() {
        let mut vars = BASE.to_vec();
        vars.extend([
            ("EDGESHELL_PASS_ENV", "ANTHROPIC_API_KEY, MISSING"),
            ("ANTHROPIC_API_KEY", "k"),
            ("SECRET", "x"),
        ]);
        let c = config(&vars, &[]).unwrap();
        let names: Vec<&str> = c.program.env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"ANTHROPIC_API_KEY") && !names.contains(&"SECRET") && !names.contains(&"MISSING"));
        assert!(c.program.env.iter().all(|(_, v)| v != "t"), "token leaked");
        assert_eq!(c.program.command, "/bin/sh");
        vars.push(("EDGESHELL_PASS_ENV", "EDGESHELL_JOIN_TOKEN"));
        let bad = config(&[BASE[0], BASE[1], ("EDGESHELL_PASS_ENV", "EDGESHELL_JOIN_TOKEN")], &[]);
        assert!(matches!(bad, Err(ConfigError::Invalid { name: "EDGESHELL_PASS_ENV", .. })));
    }

    #[test]
    fn commands_limits_and_errors() {
        let c = config(&BASE, &["sample-cli", "--fast"]).unwrap();
        assert_eq!((c.program.command.as_str(), c.program.args.as_slice()), ("sample-cli", &["--fast".to_owned()][..]));
        let mut vars = BASE.to_vec();
        vars.extend([("EDGESHELL_SESSION_COMMAND", "claude --verbose"), ("EDGESHELL_MEMORY_LIMIT_MB", "512")]);
        let c = config(&vars, &[]).unwrap();
        assert_eq!(c.program.args, vec!["-c".to_owned(), "exec claude --verbose".to_owned()]);
        assert_eq!(c.program.memory_limit, Some(512 * 1024 * 1024));
        assert_eq!(config(&[BASE[1]], &[]).unwrap_err(), ConfigError::Missing("EDGESHELL_JOIN_URL"));
        assert!(matches!(
            config(&[("EDGESHELL_JOIN_URL", "http://x"), BASE[1]], &[]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(config(&[BASE[0]], &[]), Err(ConfigError::Missing(_))));
        let past = [BASE[0], BASE[1], ("EDGESHELL_DEADLINE", "1")];
        assert!(matches!(config(&past, &[]), Err(ConfigError::Invalid { name: "EDGESHELL_DEADLINE", .. })));
        let nan = [BASE[0], BASE[1], ("EDGESHELL_PROCESS_LIMIT", "many")];
        assert!(matches!(config(&nan, &[]), Err(ConfigError::Invalid { name: "EDGESHELL_PROCESS_LIMIT", .. })));
    }
}

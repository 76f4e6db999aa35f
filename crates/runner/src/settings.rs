//! The runner's configuration, read from its environment (set by the pool agent, or by a Kubernetes
//! Job whose join token comes from a Secret), and the environment the session's program gets: a fixed,
//! small set plus the variables named in `EDGESHELL_PASS_ENV`. The join token arrives in a file the
//! runner deletes or a descriptor it closes, never in the environment (any process of the same user
//! can read a dumpable process's `/proc/<pid>/environ`: tini's, as PID 1 of a runner pod, is), and is
//! never passed on.

use crate::files::FilesAccess;
use crate::pty::Program;
use crate::relay::Settings;
use crate::workspace::Workspace;
use edgeshell_core::files::RunnerTokens;
use edgeshell_core::ids::SessionId;
use edgeshell_core::secret::Secret;
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
    /// The local pool agent's lease file and window, when the runner must end without an agent.
    pub agent_lease: Option<(PathBuf, Duration)>,
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
    let tokens = take_tokens(&settings, &var)?;
    let deadline = settings.parse::<u64>("EDGESHELL_DEADLINE")?.map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    if deadline.is_some_and(|d| d <= SystemTime::now()) {
        return Err(settings.invalid("EDGESHELL_DEADLINE", "already passed"));
    }
    let workdir = PathBuf::from(settings.required("EDGESHELL_WORKDIR")?);
    let session_id = settings.text("EDGESHELL_SESSION_ID")?.unwrap_or_default();
    let files = match tokens.upload {
        Some(token) => Some(FilesAccess {
            session: SessionId::new(session_id.as_str())
                .map_err(|e| settings.invalid("EDGESHELL_SESSION_ID", format!("uploads need the session's id: {e}")))?,
            token,
        }),
        None => None,
    };
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
            join_token: tokens.join,
            files,
            deadline,
            max_offline: settings.secs("EDGESHELL_MAX_OFFLINE_SECS")?,
            connect_timeout: Duration::from_secs(10),
            status_file: settings.text("EDGESHELL_STATUS_FILE")?.map(PathBuf::from),
            screen: settings.choice("EDGESHELL_SCREEN", &["on", "off"])? == 0,
            workspace: workspace(&settings)?,
        },
        program: Program {
            command,
            args: command_args,
            cwd: workdir,
            env,
            size: (80, 24),
            memory_limit: settings.parse::<u64>("EDGESHELL_MEMORY_LIMIT_MB")?.map(|mb| mb * 1024 * 1024),
            process_limit: settings.parse::<u64>("EDGESHELL_PROCESS_LIMIT")?,
            user: run_as(&settings)?,
        },
        session_id,
        agent_lease: settings
            .text("EDGESHELL_AGENT_LEASE_FILE")?
            .map(|file| Ok::<_, ConfigError>((PathBuf::from(file), settings.secs("EDGESHELL_AGENT_LEASE_SECS")?)))
            .transpose()?,
    })
}

/// The repository to clone first, if the session has one. Its URL, ref and directory were checked by
/// the control plane and the agent; the directory is checked again here, as it names a path.
fn workspace(settings: &Reader<'_>) -> Result<Option<Workspace>, ConfigError> {
    let Some(url) = settings.text("EDGESHELL_REPO_URL")? else { return Ok(None) };
    let dir = settings.required("EDGESHELL_REPO_DIR")?;
    let plain = !dir.is_empty() && !dir.starts_with(['.', '-']) && !dir.contains('/') && dir != "..";
    if !plain {
        return Err(settings.invalid("EDGESHELL_REPO_DIR", "one plain directory name"));
    }
    if !url.starts_with("https://") {
        return Err(settings.invalid("EDGESHELL_REPO_URL", "an https:// URL"));
    }
    let git_ref = settings.text("EDGESHELL_REPO_REF")?;
    if let Some(r) = &git_ref {
        edgeshell_core::repo::check_ref(r).map_err(|why| settings.invalid("EDGESHELL_REPO_REF", why))?;
    }
    Ok(Some(Workspace {
        url,
        git_ref,
        dir,
        token: settings.text("EDGESHELL_REPO_TOKEN")?.map(Secret::new),
        limits: edgeshell_core::repo::CloneLimits {
            max_bytes: settings.number::<u64>("EDGESHELL_REPO_MAX_MB")?.saturating_mul(1024 * 1024),
            timeout: settings.secs("EDGESHELL_REPO_TIMEOUT_SECS")?,
        },
        ca_file: settings.text("EDGESHELL_GIT_CA_FILE")?.map(PathBuf::from),
    }))
}

/// The user the program runs as, when not the runner's: only a runner started as root can switch, and
/// never to root.
fn run_as(settings: &Reader<'_>) -> Result<Option<u32>, ConfigError> {
    let Some(uid) = settings.parse::<u32>("EDGESHELL_RUN_AS_UID")? else { return Ok(None) };
    if uid == 0 {
        return Err(settings.invalid("EDGESHELL_RUN_AS_UID", "0 is root: the program never runs as root this way"));
    }
    if !rustix::process::geteuid().is_root() {
        return Err(settings
            .invalid("EDGESHELL_RUN_AS_UID", "only a runner started as root can run its program as another user"));
    }
    Ok(Some(uid))
}

/// The join token and the upload token after it (`RunnerTokens`), taken so that nothing started later
/// can find them: read from `EDGESHELL_JOIN_TOKEN_FILE`, which is then deleted (a file that cannot be
/// deleted is refused), or from the descriptor `EDGESHELL_JOIN_TOKEN_FD`, which is then closed. A token
/// in the environment is refused.
fn take_tokens(settings: &Reader<'_>, var: &impl Fn(&str) -> Option<String>) -> Result<RunnerTokens, ConfigError> {
    if var("EDGESHELL_JOIN_TOKEN").is_some() {
        return Err(ConfigError::Invalid {
            name: "EDGESHELL_JOIN_TOKEN",
            why: "the join token is never taken from the environment, which other processes can read; \
                  use EDGESHELL_JOIN_TOKEN_FILE or EDGESHELL_JOIN_TOKEN_FD"
                .into(),
        });
    }
    let token = match (settings.text("EDGESHELL_JOIN_TOKEN_FILE")?, settings.parse::<i32>("EDGESHELL_JOIN_TOKEN_FD")?) {
        (Some(path), None) => {
            let why = |what: &str, e: std::io::Error| {
                settings.invalid("EDGESHELL_JOIN_TOKEN_FILE", format!("{what} {path}: {e}"))
            };
            let token = std::fs::read_to_string(&path).map_err(|e| why("reading", e))?;
            std::fs::remove_file(&path).map_err(|e| why("deleting (the session could read it)", e))?;
            token
        }
        (None, Some(fd)) => read_descriptor(fd).map_err(|why| settings.invalid("EDGESHELL_JOIN_TOKEN_FD", why))?,
        (None, None) => return Err(ConfigError::Missing("EDGESHELL_JOIN_TOKEN_FILE")),
        (Some(_), Some(_)) => {
            return Err(settings.invalid("EDGESHELL_JOIN_TOKEN_FD", "set only one of it and EDGESHELL_JOIN_TOKEN_FILE"))
        }
    };
    RunnerTokens::parse(&token).ok_or(ConfigError::Missing("EDGESHELL_JOIN_TOKEN_FILE"))
}

/// Reads an inherited descriptor to its end and closes it.
fn read_descriptor(fd: i32) -> Result<String, String> {
    use std::io::Read;
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
    if fd < 3 {
        return Err(format!("{fd} is a standard stream"));
    }
    #[allow(unsafe_code)]
    // SAFETY: the descriptor is only borrowed to ask the kernel whether it is open (F_GETFD fails on a
    // closed one without side effects).
    let open = rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).is_ok();
    if !open {
        return Err(format!("descriptor {fd} is not open"));
    }
    #[allow(unsafe_code)]
    // SAFETY: the descriptor is open (checked above), was handed to this process for this purpose only,
    // and nothing else in the runner uses or closes it: the file takes ownership and closes it.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut token = String::new();
    file.take(64 * 1024).read_to_string(&mut token).map_err(|e| format!("reading descriptor {fd}: {e}"))?;
    Ok(token)
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

    const URL: (&str, &str) = ("EDGESHELL_JOIN_URL", "wss://edge.test/sessions/s_1/join");

    /// A fresh file holding the token `t` (the runner deletes it), and its setting.
    fn token_file(dir: &tempfile::TempDir) -> (&'static str, String) {
        let path = dir.path().join(format!("token-{}", rand::random::<u64>()));
        std::fs::write(&path, "t\n").unwrap();
        ("EDGESHELL_JOIN_TOKEN_FILE", path.to_string_lossy().into_owned())
    }

    fn base(dir: &tempfile::TempDir) -> Vec<(&'static str, String)> {
        vec![(URL.0, URL.1.to_owned()), token_file(dir)]
    }

    fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn the_program_gets_a_clean_environment_and_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = base(&dir);
        vars.extend([
            ("EDGESHELL_PASS_ENV", "ANTHROPIC_API_KEY, MISSING".to_owned()),
            ("ANTHROPIC_API_KEY", "k".to_owned()),
            ("SECRET", "x".to_owned()),
        ]);
        let c = config(&borrowed(&vars), &[]).unwrap();
        assert_eq!(c.settings.join_token.expose(), "t");
        let names: Vec<&str> = c.program.env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"ANTHROPIC_API_KEY") && !names.contains(&"SECRET") && !names.contains(&"MISSING"));
        assert!(c.program.env.iter().all(|(_, v)| v != "t"), "token leaked");
        assert_eq!(c.program.command, "/bin/sh");
        let mut bad = base(&dir);
        bad.push(("EDGESHELL_PASS_ENV", "EDGESHELL_JOIN_TOKEN_FILE".to_owned()));
        let bad = config(&borrowed(&bad), &[]);
        assert!(matches!(bad, Err(ConfigError::Invalid { name: "EDGESHELL_PASS_ENV", .. })));
        assert!(c.settings.files.is_none(), "no upload token: no uploads");
    }

    #[test]
    fn an_upload_token_after_the_join_token_gives_uploads_and_stays_out_of_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "join.t\nupload.t\n").unwrap();
        let vars = vec![
            (URL.0, URL.1.to_owned()),
            ("EDGESHELL_JOIN_TOKEN_FILE", path.to_string_lossy().into_owned()),
            ("EDGESHELL_SESSION_ID", "s_1".to_owned()),
        ];
        let c = config(&borrowed(&vars), &[]).unwrap();
        assert_eq!(c.settings.join_token.expose(), "join.t");
        let files = c.settings.files.as_ref().expect("uploads");
        assert_eq!((files.session.as_str(), files.token.expose()), ("s_1", "upload.t"));
        assert!(c.program.env.iter().all(|(_, v)| !v.contains("upload.t")), "token leaked");
        assert!(!format!("{:?}", c.settings).contains("upload.t"));
    }

    #[test]
    fn the_token_file_is_deleted_and_the_environment_never_carries_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let (name, path) = token_file(&dir);
        config(&[URL, (name, &path)], &[]).unwrap();
        assert!(!std::path::Path::new(&path).exists(), "the token file outlived the runner's start");
        // Read twice: the second runner finds nothing.
        assert!(matches!(
            config(&[URL, (name, &path)], &[]),
            Err(ConfigError::Invalid { name: "EDGESHELL_JOIN_TOKEN_FILE", .. })
        ));
        // In the environment, even beside a file: refused, and the file is left alone.
        let (name, path) = token_file(&dir);
        let err = config(&[URL, (name, &path), ("EDGESHELL_JOIN_TOKEN", "t")], &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "EDGESHELL_JOIN_TOKEN", .. }), "{err}");
        // A file that cannot be deleted (its directory is read-only) is refused: the session could read it.
        if !rustix::process::geteuid().is_root() {
            let locked = tempfile::tempdir().unwrap();
            let file = locked.path().join("token");
            std::fs::write(&file, "t").unwrap();
            std::fs::set_permissions(locked.path(), std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
            let err = config(&[URL, (name, file.to_str().unwrap())], &[]).unwrap_err();
            std::fs::set_permissions(locked.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
            assert!(err.to_string().contains("deleting"), "{err}");
        }
        // Neither, both, empty, or a descriptor that is a standard stream or not open.
        assert_eq!(config(&[URL], &[]).unwrap_err(), ConfigError::Missing("EDGESHELL_JOIN_TOKEN_FILE"));
        let (name, path) = token_file(&dir);
        let both = config(&[URL, (name, &path), ("EDGESHELL_JOIN_TOKEN_FD", "3")], &[]);
        assert!(matches!(both, Err(ConfigError::Invalid { name: "EDGESHELL_JOIN_TOKEN_FD", .. })));
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(config(&[URL, (name, &path)], &[]).unwrap_err(), ConfigError::Missing("EDGESHELL_JOIN_TOKEN_FILE"));
        for fd in ["0", "2", "999", "x"] {
            let err = config(&[URL, ("EDGESHELL_JOIN_TOKEN_FD", fd)], &[]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name: "EDGESHELL_JOIN_TOKEN_FD", .. }), "{fd}: {err}");
        }
    }

    #[test]
    fn the_token_is_read_from_a_descriptor_which_is_then_closed() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (read, write) = rustix::pipe::pipe().unwrap();
        std::fs::File::from(write).write_all(b"from-a-pipe\n").unwrap();
        let fd = read.as_raw_fd();
        let link = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let pipe = link(fd).unwrap();
        std::mem::forget(read);
        let c = config(&[URL, ("EDGESHELL_JOIN_TOKEN_FD", &fd.to_string())], &[]).unwrap();
        assert_eq!(c.settings.join_token.expose(), "from-a-pipe");
        // Closed: the number is free, or (tests run in parallel) already names another file.
        assert_ne!(link(fd), Some(pipe), "the descriptor was left open");
    }

    #[test]
    fn commands_limits_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(&borrowed(&base(&dir)), &["sample-cli", "--fast"]).unwrap();
        assert_eq!((c.program.command.as_str(), c.program.args.as_slice()), ("sample-cli", &["--fast".to_owned()][..]));
        let mut vars = base(&dir);
        vars.extend([
            ("EDGESHELL_SESSION_COMMAND", "claude --verbose".to_owned()),
            ("EDGESHELL_MEMORY_LIMIT_MB", "512".to_owned()),
        ]);
        let c = config(&borrowed(&vars), &[]).unwrap();
        assert_eq!(c.program.args, vec!["-c".to_owned(), "exec claude --verbose".to_owned()]);
        assert_eq!(c.program.memory_limit, Some(512 * 1024 * 1024));
        let (name, path) = token_file(&dir);
        assert_eq!(config(&[(name, &path)], &[]).unwrap_err(), ConfigError::Missing("EDGESHELL_JOIN_URL"));
        let (name, path) = token_file(&dir);
        assert!(matches!(
            config(&[("EDGESHELL_JOIN_URL", "http://x"), (name, &path)], &[]),
            Err(ConfigError::Invalid { .. })
        ));
        for (extra, setting) in [
            (("EDGESHELL_DEADLINE", "1"), "EDGESHELL_DEADLINE"),
            (("EDGESHELL_PROCESS_LIMIT", "many"), "EDGESHELL_PROCESS_LIMIT"),
            (("EDGESHELL_RUN_AS_UID", "0"), "EDGESHELL_RUN_AS_UID"),
            (("EDGESHELL_RUN_AS_UID", "-5"), "EDGESHELL_RUN_AS_UID"),
        ] {
            let mut vars = borrowed(&base(&dir)).into_iter().map(|(k, v)| (k, v.to_owned())).collect::<Vec<_>>();
            vars.push((extra.0, extra.1.to_owned()));
            let err = config(&borrowed(&vars), &[]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name, .. } if name == setting), "{err}");
        }
    }
}

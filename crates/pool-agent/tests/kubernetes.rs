//! The Kubernetes backend's objects, checked as the API server would receive them (no cluster is
//! available here): the Job's isolation settings, deadline and cleanup, the join token kept in a Secret
//! and out of the Job, valid names and labels, and the network policy's default deny.

use edgeshell_core::ids::{RegionId, SessionId};
use edgeshell_core::templates::Catalogue;
use edgeshell_pool_agent::backend::kubernetes::objects::{
    extension_patch, job_name, runner_job, runner_network_policy, runner_secret, selector, KubernetesOptions,
    DEADLINE_ANNOTATION,
};
use edgeshell_pool_agent::backend::{ProgramSpec, RunnerLimits, RunnerSpec};
use serde_json::{json, Value};
use std::time::Duration;

const NOW: u64 = 1_800_000_000;

fn options() -> KubernetesOptions {
    KubernetesOptions {
        namespace: "edgeshell-eu".into(),
        region: RegionId::new("eu").unwrap(),
        agent: "edgeshell-pool-agent-0".into(),
        image: "registry.example.com/edgeshell/runner@sha256:0123".into(),
        session_command: None,
        limits: RunnerLimits {
            max_runtime: Duration::from_secs(3600),
            memory_mb: 768,
            process_limit: 128,
            cpu_millis: 500,
            screen: true,
        },
        egress_cidrs: vec!["198.51.100.0/24".into(), "0.0.0.0/0".into()],
    }
}

fn spec(deadline_in: u64) -> RunnerSpec {
    RunnerSpec {
        // Session ids may end in `_` or `-`, which names and label values may not.
        session_id: SessionId::new("s_AbC-dEf_123456789012-_").unwrap(),
        join_url: "wss://edge.example.com/sessions/s_AbC-dEf_123456789012-_/join".into(),
        join_token: "eyJhbGciOiJSUzI1NiJ9.secret-join-token.sig".into(),
        upload_token: Some("eyJhbGciOiJSUzI1NiJ9.secret-upload-token.sig".into()),
        deadline: NOW + deadline_in,
        program: ProgramSpec::new(&Catalogue::single(None).templates[0], Default::default(), &options().limits),
    }
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[test]
fn the_job_is_isolated_bounded_and_cleaned_up() {
    let job = serde_json::to_value(runner_job(&options(), &spec(900), NOW)).unwrap();
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(is_dns_label(name), "{name}");
    assert_eq!(name, job_name(&spec(0).session_id));
    for (k, v) in job["metadata"]["labels"].as_object().unwrap() {
        assert!(is_label_value(v.as_str().unwrap()), "label {k}={v}");
    }
    assert_eq!(job["metadata"]["annotations"]["edgeshell.dev/session"], "s_AbC-dEf_123456789012-_");
    assert_eq!(job["metadata"]["namespace"], "edgeshell-eu");

    let spec_ = &job["spec"];
    assert_eq!(spec_["activeDeadlineSeconds"], 900);
    assert_eq!(spec_["ttlSecondsAfterFinished"], 60);
    assert_eq!(spec_["backoffLimit"], 0);
    let pod = &spec_["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["enableServiceLinks"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"], "registry.example.com/edgeshell/runner@sha256:0123");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["resources"]["limits"]["memory"], "768Mi");
    assert_eq!(c["resources"]["limits"]["cpu"], "500m");
    assert_eq!(c["resources"]["requests"], c["resources"]["limits"], "Guaranteed QoS");
    // Writable places are the scratch volumes only, each bounded.
    let mounts: Vec<&str> =
        c["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    assert_eq!(mounts, ["/work", "/tmp", "/run/edgeshell"]);
    let volumes = pod["volumes"].as_array().unwrap();
    for v in volumes.iter().filter(|v| v["secret"].is_null()) {
        assert!(v["emptyDir"]["sizeLimit"].is_string(), "{v}");
    }
    // The join token in no environment (tini, PID 1, would show it in /proc/1/environ to the
    // session): the init container alone mounts the Secret and copies the token to a memory volume,
    // where the runner reads and deletes it before the program starts.
    let env = c["env"].as_array().unwrap();
    assert!(env.iter().all(|e| e["valueFrom"].is_null()), "nothing comes from a Secret into the environment");
    assert!(!job.to_string().contains("secret-join-token"), "the token leaked into the Job");
    assert!(!job.to_string().contains("secret-upload-token"), "the upload token leaked into the Job");
    let token_volume = volumes.iter().find(|v| v["name"] == "token").unwrap();
    assert_eq!(token_volume["emptyDir"]["medium"], "Memory");
    let secret = volumes.iter().find(|v| !v["secret"].is_null()).unwrap();
    assert_eq!(secret["secret"]["secretName"], name);
    assert_eq!(secret["secret"]["defaultMode"], 0o400);
    let secret_name = secret["name"].as_str().unwrap();
    let mounts_of = |c: &Value| -> Vec<String> {
        c["volumeMounts"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
    };
    assert!(!mounts_of(c).iter().any(|m| m == secret_name), "the runner container mounts the Secret");
    let inits = pod["initContainers"].as_array().unwrap();
    assert_eq!(inits.len(), 1);
    let init = &inits[0];
    assert!(mounts_of(init).iter().any(|m| m == secret_name) && mounts_of(init).iter().any(|m| m == "token"));
    assert_eq!(init["command"], json!(["/bin/cp", "/secret/join-token", "/run/edgeshell/join-token"]));
    assert_eq!(init["securityContext"], c["securityContext"], "the init container is as confined as the runner");
    assert_eq!(init["resources"]["requests"], init["resources"]["limits"]);
    let var = |n: &str| env.iter().find(|e| e["name"] == n).map(|e| e["value"].clone()).unwrap_or(Value::Null);
    assert_eq!(var("EDGESHELL_JOIN_URL"), "wss://edge.example.com/sessions/s_AbC-dEf_123456789012-_/join");
    assert_eq!(var("EDGESHELL_DEADLINE"), (NOW + 900).to_string());
    assert_eq!(var("EDGESHELL_WORKDIR"), "/work");
    assert_eq!(var("EDGESHELL_JOIN_TOKEN_FILE"), "/run/edgeshell/join-token");
}

#[test]
fn deadlines_are_clamped_to_the_pools_maximum_and_at_least_a_second() {
    let far = serde_json::to_value(runner_job(&options(), &spec(100_000), NOW)).unwrap();
    assert_eq!(far["spec"]["activeDeadlineSeconds"], 3600);
    let past = serde_json::to_value(runner_job(&options(), &spec(0), NOW)).unwrap();
    assert_eq!(past["spec"]["activeDeadlineSeconds"], 1);
}

#[test]
fn an_extension_moves_the_jobs_deadline_and_its_active_deadline_by_as_much() {
    let job = runner_job(&options(), &spec(900), NOW);
    let patch = extension_patch(&job, NOW + 900 + 1800).expect("a later deadline");
    assert_eq!(patch["spec"]["activeDeadlineSeconds"], json!(900 + 1800));
    assert_eq!(patch["metadata"]["annotations"][DEADLINE_ANNOTATION], json!((NOW + 2700).to_string()));
    assert_eq!(extension_patch(&job, NOW + 600), None, "never earlier");
}

#[test]
fn the_secret_holds_the_token_and_is_immutable() {
    let secret = serde_json::to_value(runner_secret(&options(), &spec(900))).unwrap();
    assert_eq!(secret["metadata"]["name"], job_name(&spec(0).session_id));
    assert_eq!(
        secret["stringData"]["join-token"],
        "eyJhbGciOiJSUzI1NiJ9.secret-join-token.sig\neyJhbGciOiJSUzI1NiJ9.secret-upload-token.sig\n",
        "the runner reads both tokens from the one file"
    );
    assert_eq!(secret["immutable"], true);
    assert_eq!(secret["type"], "Opaque");
}

#[test]
fn runners_accept_nothing_and_reach_only_dns_and_allowed_https() {
    let policy = serde_json::to_value(runner_network_policy(&options())).unwrap();
    let spec = &policy["spec"];
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(spec["ingress"], json!([]), "no ingress rule: all ingress denied");
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        json!({ "app.kubernetes.io/name": "edgeshell-runner", "edgeshell.dev/pool": "eu" })
    );
    let egress = spec["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 2);
    assert_eq!(egress[0]["ports"], json!([{ "port": 53, "protocol": "UDP" }, { "port": 53, "protocol": "TCP" }]));
    assert_eq!(egress[0]["to"][0]["podSelector"]["matchLabels"], json!({ "k8s-app": "kube-dns" }));
    assert_eq!(egress[1]["ports"], json!([{ "port": 443, "protocol": "TCP" }]));
    let blocks: Vec<&Value> = egress[1]["to"].as_array().unwrap().iter().map(|p| &p["ipBlock"]).collect();
    assert_eq!(blocks[0], &json!({ "cidr": "198.51.100.0/24" }));
    assert_eq!(blocks[1], &json!({ "cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"] }), "metadata server excluded");
    // Without allowed CIDRs, only DNS remains.
    let closed = runner_network_policy(&KubernetesOptions { egress_cidrs: vec![], ..options() });
    assert_eq!(serde_json::to_value(closed).unwrap()["spec"]["egress"].as_array().unwrap().len(), 1);
}

#[test]
fn names_are_stable_and_distinct_and_the_selector_matches_the_labels() {
    let a = job_name(&SessionId::new("s_a").unwrap());
    assert_eq!(a, job_name(&SessionId::new("s_a").unwrap()));
    assert_ne!(a, job_name(&SessionId::new("s_A").unwrap()), "ids differing only in case");
    assert_eq!(
        selector(&RegionId::new("eu").unwrap()),
        "app.kubernetes.io/name=edgeshell-runner,edgeshell.dev/pool=eu"
    );
}

#[test]
fn a_template_sets_the_image_command_bundle_limits_and_the_users_variables() {
    let catalogue = Catalogue::parse(
        r#"{"templates": [{"name": "claude-code", "title": "Claude Code", "command": "claude --verbose",
            "image": "registry.example.com/claude@sha256:abcd", "memory_mb": 2048, "cpu_millis": 2000,
            "bundle": {"url": "https://bundles.example.com/claude.tar.gz?v=1",
                       "sha256": "0000000000000000000000000000000000000000000000000000000000000001"},
            "env": ["ANTHROPIC_MODEL"]}]}"#,
    )
    .unwrap();
    let env = [("ANTHROPIC_MODEL".to_owned(), "opus".to_owned())].into();
    let claude = RunnerSpec { program: ProgramSpec::new(&catalogue.templates[0], env, &options().limits), ..spec(900) };
    let job = serde_json::to_value(runner_job(&options(), &claude, NOW)).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example.com/claude@sha256:abcd");
    assert_eq!(pod["initContainers"][0]["image"], c["image"], "the token copier comes from the same image");
    assert_eq!(
        (c["resources"]["limits"]["memory"].as_str(), c["resources"]["limits"]["cpu"].as_str()),
        (Some("2048Mi"), Some("2000m"))
    );
    let var = |name: &str| {
        c["env"].as_array().unwrap().iter().find(|e| e["name"] == name).map(|e| e["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(var("EDGESHELL_SESSION_COMMAND").as_deref(), Some("claude --verbose"));
    assert_eq!(var("EDGESHELL_BUNDLE_URL").as_deref(), Some("https://bundles.example.com/claude.tar.gz?v=1"));
    assert_eq!(var("EDGESHELL_BUNDLE_HOSTS").as_deref(), Some("bundles.example.com"));
    assert_eq!(var("EDGESHELL_PASS_ENV").as_deref(), Some("ANTHROPIC_MODEL"));
    assert_eq!(var("ANTHROPIC_MODEL").as_deref(), Some("opus"));
    // Without a template's own, the pool's.
    let plain = serde_json::to_value(runner_job(&options(), &spec(900), NOW)).unwrap();
    let c = &plain["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example.com/edgeshell/runner@sha256:0123");
    assert!(c["env"].as_array().unwrap().iter().all(|e| e["name"] != "EDGESHELL_PASS_ENV"));
}

#[test]
fn a_sessions_secrets_stay_in_the_secret_the_job_owns_and_are_referenced_by_name() {
    let mut with_secret = spec(900);
    with_secret.program.secrets = [("AGENT_TOKEN".to_owned(), "tok-value-never-in-the-job".into())].into();
    let job = serde_json::to_value(runner_job(&options(), &with_secret, NOW)).unwrap();
    assert!(!job.to_string().contains("tok-value-never-in-the-job"), "the Job object holds no value");
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let var = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "AGENT_TOKEN").unwrap();
    assert_eq!(var["valueFrom"]["secretKeyRef"]["name"], job_name(&with_secret.session_id));
    assert_eq!(var["valueFrom"]["secretKeyRef"]["key"], "env-AGENT_TOKEN");
    let pass = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "EDGESHELL_PASS_ENV").unwrap();
    assert_eq!(pass["value"], "AGENT_TOKEN");
    let secret = serde_json::to_value(runner_secret(&options(), &with_secret)).unwrap();
    assert_eq!(secret["stringData"]["env-AGENT_TOKEN"], "tok-value-never-in-the-job");
    // The init container mounts only the join token, never the session's secrets.
    let volumes = job["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let token = volumes.iter().find(|v| v["name"] == "join-token").unwrap();
    let items: Vec<_> = token["secret"]["items"].as_array().unwrap().iter().map(|i| i["key"].clone()).collect();
    assert_eq!(items.len(), 1);
    assert_ne!(items[0], "env-AGENT_TOKEN");
}

//! The real `spin.toml` and the real `jwks` component in the host: the published set verifies tokens
//! signed with the configured key, rotation publishes the next key too, bad requests get JSON errors, a
//! missing secret stops startup, and precompiled components are cached; the host answers Spin's own
//! `/.well-known/spin/health` and `info`.

use edgeshell_core::jwks::KeySet;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{sign, Claims, Expectation, Scope, ValidationOptions, Validator};
use edgeshell_keys::{now_or_never, RingVerifier, RsaSigner};
use edgeshell_spin_host::Host;
use support::{config, request, start, tempdir, vector_jwk};

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions: cargo xtask test"]
async fn jwks_publishes_current_and_next_keys() {
    let current = vector_jwk("pyjwt-rs256.json");
    let next = vector_jwk("rfc7515-a2.json");
    let host =
        start(&format!("SPIN_VARIABLE_SIGNING_KEY='{current}'\nSPIN_VARIABLE_NEXT_SIGNING_KEY='{next}'\n")).await;

    // What the host answers itself, as Spin does.
    let (status, _, body) = request(&host.url, "GET", "/.well-known/spin/health").await;
    assert_eq!((status, body.as_ref()), (200, b"OK".as_ref()));
    let (status, _, body) = request(&host.url, "GET", "/.well-known/spin/info").await;
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, info["name"].as_str()), (200, Some("edgeshell-control")), "{info}");
    assert_eq!(request(&host.url, "GET", "/.well-known/spin/nothing").await.0, 404);

    let (status, headers, body) = request(&host.url, "GET", "/.well-known/jwks.json").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/jwk-set+json");
    assert!(headers["cache-control"].to_str().unwrap().contains("max-age=300"));
    assert!(!String::from_utf8_lossy(&body).contains("\"d\""), "no private members published");
    let keys = KeySet::from_json(&body).expect("the published set parses");
    let kids: Vec<&str> = keys.keys().iter().map(|k| k.kid().as_str()).collect();
    assert_eq!(kids, ["pyjwt-1", "rfc7515-a2"]);

    // A token signed with the configured key verifies against what the function published.
    let signer = RsaSigner::from_secret(&current).unwrap();
    let claims: Claims = serde_json::from_value(serde_json::json!({
        "iss": "https://control.test", "aud": "edgeshell-edge", "sub": "alice", "sid": "s1", "region": "eu",
        "jti": "j1", "iat": 1_800_000_000u64, "nbf": 1_800_000_000u64, "exp": 1_800_000_600u64, "scope": "session:attach",
        "ses": { "ends": 1_800_003_600u64, "idle": null, "detached": null }
    }))
    .unwrap();
    let token = sign(&claims, &signer).unwrap();
    let validator = Validator::new(ValidationOptions::new("https://control.test", "edgeshell-edge"));
    let sid = claims.sid.clone();
    let expect = Expectation { scope: Scope::Attach, session: Some(&sid) };
    now_or_never(validator.verify(&token, &keys, &RingVerifier, expect, Timestamp::from_secs(1_800_000_010))).unwrap();

    let (status, _, body) = request(&host.url, "POST", "/.well-known/jwks.json").await;
    assert_eq!(status, 405);
    assert!(String::from_utf8_lossy(&body).contains("method_not_allowed"));
    let (status, _, body) = request(&host.url, "GET", "/nowhere").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("\"code\":\"not_found\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions: cargo xtask test"]
async fn only_the_current_key_when_no_next_and_unusable_keys_fail_cleanly() {
    let host = start(&format!("SPIN_VARIABLE_SIGNING_KEY='{}'\n", vector_jwk("pyjwt-rs256.json"))).await;
    let (status, _, body) = request(&host.url, "GET", "/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(KeySet::from_json(&body).unwrap().keys().len(), 1);

    let broken = start("SPIN_VARIABLE_SIGNING_KEY=not-a-key\n").await;
    let (status, _, body) = request(&broken.url, "GET", "/.well-known/jwks.json").await;
    assert_eq!(status, 500);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("signing_key_unusable") && !text.contains("not-a-key"), "{text}");
}

#[test]
#[ignore = "needs the built functions: cargo xtask test"]
fn a_missing_secret_stops_startup_and_components_are_cached() {
    let dir = tempdir::Dir::new("host-config");
    // A required secret (the internal key) left out: the host refuses to start and names it.
    let cfg = config(&dir, "");
    let env_file = cfg.env_file.clone().unwrap();
    let without = std::fs::read_to_string(&env_file).unwrap().replace("SPIN_VARIABLE_INTERNAL_API_KEY=", "# ");
    std::fs::write(&env_file, without).unwrap();
    let err = match Host::load(&cfg) {
        Ok(_) => panic!("loaded without the internal API key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("internal_api_key"), "{err}");
    let cfg = config(&dir, &format!("SPIN_VARIABLE_SIGNING_KEY='{}'\n", vector_jwk("pyjwt-rs256.json")));
    Host::load(&cfg).unwrap();
    let cached: Vec<_> = std::fs::read_dir(&cfg.cache_dir).unwrap().collect();
    let components = edgeshell_spin_host::manifest::Manifest::load(&cfg.manifest).unwrap().components.len();
    assert_eq!(cached.len(), components, "one precompiled file per component");
    Host::load(&cfg).expect("loads again from the cache");
}

/// The `jwks` function built for `wasm32-wasip1` by `cargo xtask test`: a core module, as `spin build`
/// made them for years.
fn jwks_core_module() -> std::path::PathBuf {
    let module = support::wasm_dir().join("../../wasm32-wasip1/release/edgeshell_jwks.wasm");
    assert!(module.exists(), "{} missing: `cargo xtask test` builds it", module.display());
    module
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions: cargo xtask test"]
async fn the_function_as_a_core_module_is_converted_on_load_and_answers_as_the_component() {
    let module = std::fs::read(jwks_core_module()).unwrap();
    assert_eq!(module[..8], *b"\0asm\x01\0\0\0", "a core module, not a component");
    // The same components, but `jwks` as the core module.
    let dir = tempdir::Dir::new("core-module");
    let wasm = dir.0.join("wasm");
    std::fs::create_dir_all(&wasm).unwrap();
    for entry in std::fs::read_dir(support::wasm_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(&path, wasm.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(wasm.join("edgeshell_jwks.wasm"), &module).unwrap();
    let keys = format!(
        "SPIN_VARIABLE_SIGNING_KEY='{}'\nSPIN_VARIABLE_NEXT_SIGNING_KEY='{}'\n",
        vector_jwk("pyjwt-rs256.json"),
        vector_jwk("rfc7515-a2.json")
    );
    let cfg = edgeshell_spin_host::HostConfig { wasm_dir: Some(wasm), ..config(&dir, &keys) };
    let host = std::sync::Arc::new(Host::load(&cfg).expect("the core module loads"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn(host.serve(listener));
    let component = start(&keys).await;
    for (method, path) in [("GET", "/.well-known/jwks.json"), ("POST", "/.well-known/jwks.json"), ("GET", "/nowhere")] {
        let (status, headers, body) = request(&url, method, path).await;
        let (want_status, want_headers, want_body) = request(&component.url, method, path).await;
        assert_eq!(
            (status, String::from_utf8_lossy(&body)),
            (want_status, String::from_utf8_lossy(&want_body)),
            "{method} {path}"
        );
        assert_eq!(headers.get("content-type"), want_headers.get("content-type"));
    }
    serving.abort();
}

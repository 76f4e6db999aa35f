//! The real `spin.toml` and the real `jwks` component in the host: the published set verifies tokens
//! signed with the configured key, rotation publishes the next key too, bad requests get JSON errors, a
//! missing secret stops startup, and precompiled components are cached.

use edgeshell_core::jwks::KeySet;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{sign, Claims, Expectation, Scope, ValidationOptions, Validator};
use edgeshell_keys::{now_or_never, RingRs256, RsaSigner};
use edgeshell_spin_host::{Host, HostConfig};
use http_body_util::{BodyExt, Empty};
use std::path::{Path, PathBuf};
use std::sync::Arc;
// Tokio streams as hyper I/O, with the adapter wasmtime-wasi-http already ships.
use wasmtime_wasi_http::io::TokioIo;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Where `cargo xtask test` (or `cargo build --target wasm32-wasip2 --release` in `functions/`) put the
/// components.
fn wasm_dir() -> PathBuf {
    let dir = match std::env::var_os("EDGESHELL_WASM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("functions/target/wasm32-wasip2/release"),
    };
    assert!(
        dir.join("edgeshell_jwks.wasm").exists(),
        "components not built in {}: run `cargo xtask test`, or build `functions/` for wasm32-wasip2",
        dir.display()
    );
    dir
}

fn vector_jwk(name: &str) -> String {
    let path = root().join("crates/keys/tests/vectors").join(name);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["jwk"].to_string()
}

struct TestHost {
    url: String,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempdir::Dir,
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

mod tempdir {
    //! A directory removed on drop.
    pub(crate) struct Dir(pub(crate) std::path::PathBuf);
    impl Dir {
        pub(crate) fn new(tag: &str) -> Dir {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let p = std::env::temp_dir().join(format!("edgeshell-{tag}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn config(dir: &tempdir::Dir, env: &str) -> HostConfig {
    let env_file = dir.0.join(".env");
    std::fs::write(&env_file, env).unwrap();
    HostConfig {
        manifest: root().join("spin.toml"),
        env_file: Some(env_file),
        cache_dir: dir.0.join("cwasm"),
        wasm_dir: Some(wasm_dir()),
    }
}

/// Serving tests share one compile cache in cargo's temporary directory for tests (writes are atomic), so
/// a component compiles once per change, like any build output.
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cwasm")
}

async fn start(env: &str) -> TestHost {
    let dir = tempdir::Dir::new("host");
    let mut cfg = config(&dir, env);
    cfg.cache_dir = shared_cache();
    let host = Arc::new(Host::load(&cfg).expect("host loads"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(host.serve(listener));
    TestHost { url, task, _dir: dir }
}

async fn request(url: &str, method: &str, path: &str) -> (u16, http::HeaderMap, Vec<u8>) {
    let authority = url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status.as_u16(), parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_publishes_current_and_next_keys() {
    let current = vector_jwk("pyjwt-rs256.json");
    let next = vector_jwk("rfc7515-a2.json");
    let host =
        start(&format!("SPIN_VARIABLE_SIGNING_KEY='{current}'\nSPIN_VARIABLE_NEXT_SIGNING_KEY='{next}'\n")).await;

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
        "jti": "j1", "iat": 1_800_000_000u64, "nbf": 1_800_000_000u64, "exp": 1_800_000_600u64, "scope": "session:attach"
    }))
    .unwrap();
    let token = sign(&claims, &signer).unwrap();
    let validator = Validator::new(ValidationOptions::new("https://control.test", "edgeshell-edge"));
    let sid = claims.sid.clone();
    let expect = Expectation { scope: Scope::Attach, session: Some(&sid) };
    now_or_never(validator.verify(&token, &keys, &RingRs256, expect, Timestamp::from_secs(1_800_000_010))).unwrap();

    let (status, _, body) = request(&host.url, "POST", "/.well-known/jwks.json").await;
    assert_eq!(status, 405);
    assert!(String::from_utf8_lossy(&body).contains("method_not_allowed"));
    let (status, _, body) = request(&host.url, "GET", "/nowhere").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("\"code\":\"not_found\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
fn a_missing_secret_stops_startup_and_components_are_cached() {
    let dir = tempdir::Dir::new("host-config");
    let err = match Host::load(&config(&dir, "# nothing\n")) {
        Ok(_) => panic!("loaded without a signing key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("signing_key"), "{err}");
    let cfg = config(&dir, &format!("SPIN_VARIABLE_SIGNING_KEY='{}'\n", vector_jwk("pyjwt-rs256.json")));
    Host::load(&cfg).unwrap();
    let cached: Vec<_> = std::fs::read_dir(&cfg.cache_dir).unwrap().collect();
    assert_eq!(cached.len(), 1, "one precompiled component cached");
    Host::load(&cfg).expect("loads again from the cache");
}

//! Shared by the host's integration tests: the repository's paths, the built components, test keys, a
//! host serving on a loopback port (stopped on drop), a small HTTP client on hyper, and a lean one that
//! writes prepared bytes ([`http1`]).
#![allow(dead_code, unreachable_pub)]

pub mod http1;
pub mod pool;
pub mod stack;

use edgeshell_spin_host::HostConfig;
use http_body_util::{BodyExt, Full};
use std::path::{Path, PathBuf};
// Tokio streams as hyper I/O, with the adapter wasmtime-wasi-http already ships.
use wasmtime_wasi_http::io::TokioIo;

/// Values for the manifest's other required variables; tests override them with later lines.
pub const BASE_ENV: &str = "SPIN_VARIABLE_DATABASE_URL=postgres://edgeshell@127.0.0.1:1/none
SPIN_VARIABLE_INTERNAL_API_KEY=test-internal-key-0123456789abcdef0123
SPIN_VARIABLE_EDGE_URL=ws://127.0.0.1:1
SPIN_VARIABLE_OIDC_ISSUER=http://127.0.0.1:1
SPIN_VARIABLE_OIDC_AUDIENCE=edgeshell-test
";

pub fn root() -> PathBuf {
    edgeshell_stack::paths::repo_root()
}

/// Where `cargo xtask test` put the components.
pub fn wasm_dir() -> PathBuf {
    edgeshell_stack::paths::wasm_dir().unwrap()
}

pub fn vector_jwk(name: &str) -> String {
    let path = root().join("crates/keys/tests/vectors").join(name);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["jwk"].to_string()
}

/// A host serving on a loopback port, stopped on drop.
pub type TestHost = edgeshell_stack::FunctionsHost;

pub mod tempdir {
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

/// A private Postgres with the control plane's schema: the cluster, the database URL, a client.
pub async fn migrated_postgres() -> (local_postgres::LocalPostgres, String, tokio_postgres::Client) {
    edgeshell_stack::postgres::migrated().await.expect("postgres starts")
}

pub fn config(dir: &tempdir::Dir, env: &str) -> HostConfig {
    let env_file = dir.0.join(".env");
    std::fs::write(&env_file, format!("{BASE_ENV}{env}")).unwrap();
    HostConfig {
        manifest: root().join("spin.toml"),
        env_file: Some(env_file),
        cache_dir: dir.0.join("cwasm"),
        wasm_dir: Some(wasm_dir()),
        max_instances: edgeshell_spin_host::server::DEFAULT_MAX_INSTANCES,
        limits: edgeshell_spin_host::server::GuestLimits::DEFAULT,
    }
}

/// Serving tests share one compile cache in cargo's temporary directory for tests (writes are atomic), so
/// a component compiles once per change, like any build output.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cwasm")
}

pub async fn start(env: &str) -> TestHost {
    start_limited(env, edgeshell_spin_host::server::DEFAULT_MAX_INSTANCES).await
}

/// A host that runs at most `max_instances` requests at once.
pub async fn start_limited(env: &str, max_instances: u32) -> TestHost {
    TestHost::start(&format!("{BASE_ENV}{env}"), &shared_cache(), max_instances, None).await.expect("host starts")
}

/// A host whose guests get `limits`.
pub async fn start_with_limits(env: &str, limits: edgeshell_spin_host::server::GuestLimits) -> TestHost {
    let max = edgeshell_spin_host::server::DEFAULT_MAX_INSTANCES;
    TestHost::start_with(&format!("{BASE_ENV}{env}"), &shared_cache(), max, limits, None).await.expect("host starts")
}

pub async fn request(url: &str, method: &str, path: &str) -> (u16, http::HeaderMap, Vec<u8>) {
    send(url, method, path, &[], Vec::new()).await
}

/// One HTTP/1.1 request with headers and a body.
pub async fn send(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Vec<u8>) {
    let authority = url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder().method(method).uri(path).header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(bytes::Bytes::from(body))).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let (status, body) = (parts.status.as_u16(), body.collect().await.unwrap().to_bytes().to_vec());
    assert_error_of_the_table(status, &parts.headers, &body);
    (status, parts.headers, body)
}

/// Every error any route answers is a row of the core's table: its JSON shape, its status, and
/// `Retry-After` exactly where the row allows a retry.
pub fn assert_error_of_the_table(status: u16, headers: &http::HeaderMap, body: &[u8]) {
    if status < 400 {
        return;
    }
    let text = String::from_utf8_lossy(body);
    let error = edgeshell_core::api_error::ApiError::from_body(body)
        .unwrap_or_else(|e| panic!("HTTP {status} answered with {text:?}: {e}"));
    assert_eq!(error.status(), status, "{text}");
    let retry = error.code.retry() != edgeshell_core::api_error::Retry::Never;
    assert_eq!(headers.contains_key("retry-after"), retry, "Retry-After of {}: {text}", error.code.name());
}

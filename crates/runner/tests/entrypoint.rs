//! The runner image's entrypoint (`runner-image/entrypoint.sh`) run as the image runs it, minus the
//! container: it installs a bundle over HTTPS, puts the bundle's `bin/` on the program's PATH, and
//! becomes the runner, which serves the bundle's CLI to a browser through the room. A bundle that fails
//! its checks stops the entrypoint before any runner starts.

mod support;

use edgeshell_core::protocol::{Credential, ExitStatus};
use edgeshell_core::room::RoomConfig;
use edgeshell_room_host::browser::Browser;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use support::bundles::{digest, gzip, Server, Tar};
use support::*;

fn entrypoint() -> std::path::PathBuf {
    edgeshell_runner_root().join("runner-image/entrypoint.sh")
}

fn edgeshell_runner_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn command(server: &Server, url_path: &str, allowed: &str, work: &Path) -> tokio::process::Command {
    let runner_dir = Path::new(env!("CARGO_BIN_EXE_edgeshell-runner")).parent().unwrap().to_owned();
    let ca = work.join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let mut c = tokio::process::Command::new("/bin/sh");
    c.arg(entrypoint())
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", runner_dir.display()))
        .env("EDGESHELL_BUNDLE_URL", format!("https://localhost:{}{url_path}", server.addr.port()))
        .env("EDGESHELL_BUNDLE_HOSTS", format!("localhost:{}", server.addr.port()))
        .env("EDGESHELL_BUNDLE_SHA256", allowed)
        .env("EDGESHELL_BUNDLE_CA_FILE", &ca)
        .env("EDGESHELL_WORKDIR", work)
        .env("EDGESHELL_SESSION_COMMAND", "hello-cli --greet")
        .env("EDGESHELL_LOG_FORMAT", "text")
        .kill_on_drop(true);
    c
}

fn bundle() -> Vec<u8> {
    let script = b"#!/bin/sh\necho \"bundle-cli-ok $1 in $(pwd)\"\nexit 0\n";
    gzip(
        &Tar::new()
            .entry(b"bin/", tar::EntryType::Directory, b"", b"", 0o755)
            .entry(b"bin/hello-cli", tar::EntryType::Regular, b"", script, 0o755)
            .finish(),
    )
}

#[tokio::test]
async fn the_entrypoint_installs_the_bundle_and_serves_its_cli() {
    let good = bundle();
    let server = Server::start(HashMap::from([("/cli.tgz".to_owned(), good.clone())])).await;
    let host = room_host(RoomConfig::default()).await;
    let sid = new_session();
    let work = tempfile::tempdir().unwrap();
    let mut c = command(&server, "/cli.tgz", &digest(&good), work.path());
    let token_file = work.path().join(".join-token");
    std::fs::write(&token_file, join_token(&sid)).unwrap();
    c.env("EDGESHELL_JOIN_URL", host.join_url(&sid)).env("EDGESHELL_JOIN_TOKEN_FILE", &token_file);
    let mut child = c.spawn().unwrap();
    let mut browser = Browser::attach(&host.attach_url(&sid), &Credential::Token(attach_token(&sid))).await.unwrap();
    browser
        .expect_from(0, &format!("bundle-cli-ok --greet in {}", work.path().display()), Duration::from_secs(20))
        .await;
    assert_eq!(browser.expect_exit(Duration::from_secs(10)).await, ExitStatus::Code(0));
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    assert!(work.path().join(".bundle/bin/hello-cli").exists());
    assert!(!token_file.exists(), "the runner deletes its token file");
}

#[tokio::test]
async fn a_bundle_failing_its_checks_never_runs() {
    let good = bundle();
    let server = Server::start(HashMap::from([("/cli.tgz".to_owned(), good)])).await;
    let work = tempfile::tempdir().unwrap();
    let mut c = command(&server, "/cli.tgz", &digest(b"another bundle"), work.path());
    // Nothing listens here: reaching the runner would show as a dial failure, not a digest refusal.
    let token_file = work.path().join(".join-token");
    std::fs::write(&token_file, "t").unwrap();
    c.env("EDGESHELL_JOIN_URL", "ws://127.0.0.1:9/sessions/s_x/join").env("EDGESHELL_JOIN_TOKEN_FILE", &token_file);
    let out = tokio::time::timeout(Duration::from_secs(20), c.output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not in the allowlist"), "{stderr}");
    assert!(!stderr.contains("runner starting"), "the runner started: {stderr}");
    assert!(!work.path().join(".bundle").exists());
}

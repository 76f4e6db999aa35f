//! Files out of a session, through the whole stack (control plane on Postgres, `wrangler dev` with its
//! local R2, a pool agent and a real runner): inside the session `edgeshell-files put` of 50 MB arrives
//! byte-identical while the runner's memory stays flat, a name already taken is refused unless
//! `--replace`, files written to `~/outbox` are uploaded by themselves (again when they change, and at
//! the program's exit before the session ends), and once the session has ended its upload token is of
//! no use. Downloads go through the owner's one-time links, as the page's drawer does.

use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::protocol::Credential;
use edgeshell_e2e::{Session, Stack, StackOptions};
use edgeshell_room_host::browser::Browser;
use sha2::{Digest, Sha256};
use std::time::Duration;

const USER: &str = "files-owner";
const WAIT: Duration = Duration::from_secs(30);
const BIG: u64 = 50 * 1024 * 1024;

#[path = "support/runners.rs"]
mod runners;
use runners::{peak_rss, runner_pid};

/// The text of the terminal from `from` on.
fn text(browser: &Browser, from: usize) -> String {
    String::from_utf8_lossy(&browser.output[from..]).into_owned()
}

/// Runs `command` in the session's shell and waits for its end marker; returns its output and exit
/// status.
async fn run(browser: &mut Browser, command: &str, within: Duration) -> (String, i32) {
    let from = browser.output.len();
    let tag = format!("{:x}", rand::random::<u32>());
    // The typed line is echoed as `END""-tag`; only the shell's own output reads `END-tag`.
    browser.input(format!("{command}; echo END\"\"-{tag}-$?-\n").as_bytes()).await;
    let marker = format!("END-{tag}-");
    // Where the marker ends.
    let at = browser.expect_from(from, &marker, within).await;
    let status = text(browser, at).split('-').next().unwrap_or_default().parse().unwrap_or(-1);
    (String::from_utf8_lossy(&browser.output[from..at - marker.len()]).into_owned(), status)
}

/// The session's artifacts as the owner lists them: path, size, SHA-256.
async fn artifacts(stack: &Stack, session: &Session) -> Vec<(String, u64, String)> {
    let path = format!("/api/artifacts?session={}", session.id);
    let list = loop {
        let (status, list) = stack.call(reqwest::Method::GET, &path, USER, serde_json::Value::Null).await.unwrap();
        // The listing is rate limited per user, as every user route is: wait as told.
        if status == 429 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        assert_eq!(status, 200, "{list}");
        break list;
    };
    list["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let field = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (field("path"), a["size"].as_u64().unwrap(), field("sha256"))
        })
        .collect()
}

/// Waits for an artifact at `path` whose SHA-256 is `sha256`, looking once a second as the page does.
async fn wait_for(stack: &Stack, session: &Session, path: &str, sha256: &str) -> bool {
    for _ in 0..WAIT.as_secs() {
        if artifacts(stack, session).await.iter().any(|(p, _, s)| p == path && s == sha256) {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

/// Downloads an artifact with a one-time link, hashing it as it streams.
async fn download_sha256(stack: &Stack, session: &Session, path: &str) -> (u64, String) {
    let body = serde_json::json!({ "session_id": session.id.as_str(), "path": path });
    let link = loop {
        let (status, link) =
            stack.call(reqwest::Method::POST, "/api/artifacts/links", USER, body.clone()).await.unwrap();
        if status == 429 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        assert_eq!(status, 201, "{link}");
        break link;
    };
    let url = link["url"].as_str().unwrap().replacen("wss://", "http://", 1).replacen("ws://", "http://", 1);
    let mut response =
        reqwest::Client::new().get(url).bearer_auth(link["token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (mut hash, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = response.chunk().await.unwrap() {
        size += chunk.len() as u64;
        hash.update(&chunk);
    }
    (size, edgeshell_core::bundles::hex(&hash.finalize()))
}

/// The SHA-256 `sha256sum` printed for `name`.
fn sha_of(output: &str, name: &str) -> String {
    let line = output.lines().find(|l| l.trim_end().ends_with(name) && l.len() > 64).expect("a sha256sum line");
    line.trim_start_matches(|c: char| !c.is_ascii_hexdigit())[..64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn files_leave_the_session_through_the_edge() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let session = stack.mint(USER).await.unwrap();
    let credential = Credential::Token(session.token.expose().to_owned());
    let mut browser = Browser::attach(&session.ws_url, &credential).await.unwrap();
    let runner = runner_pid(&session);

    // 50 MB out with `edgeshell-files put`: what the owner downloads is what the session wrote, and the
    // runner's peak memory barely moves while it streams.
    let (made, _) =
        run(&mut browser, &format!("head -c {BIG} /dev/urandom > big.bin && sha256sum big.bin"), WAIT).await;
    let sha = sha_of(&made, "big.bin");
    let before = peak_rss(runner);
    let (put, status) = run(&mut browser, "edgeshell-files put big.bin", Duration::from_secs(180)).await;
    assert!(put.contains(&format!("big.bin: {BIG} bytes, sha256 {sha}")) && status == 0, "{put}");
    let grown = peak_rss(runner).saturating_sub(before);
    eprintln!("runner peak memory: {} KiB before, {} KiB more during a 50 MB upload", before / 1024, grown / 1024);
    assert!(grown < 8 * 1024 * 1024, "the runner's peak memory grew {grown} bytes during a 50 MB upload");
    assert_eq!(download_sha256(&stack, &session, "big.bin").await, (BIG, sha.clone()));

    // A name already taken: refused unless --replace; a name that is no artifact path: refused here.
    let (again, status) = run(&mut browser, "echo v2 > big.bin && edgeshell-files put big.bin", WAIT).await;
    assert!(again.contains("(artifact_exists)") && status == 1, "{again}");
    let (replaced, _) = run(&mut browser, "edgeshell-files put --replace big.bin", WAIT).await;
    let v2 = edgeshell_core::bundles::hex(&Sha256::digest(b"v2\n"));
    assert!(replaced.contains(&format!("big.bin: 3 bytes, sha256 {v2}")), "{replaced}");
    let listed = artifacts(&stack, &session).await;
    assert_eq!(listed.iter().filter(|(p, _, _)| p == "big.bin").count(), 1, "one version listed: {listed:?}");
    assert_eq!(download_sha256(&stack, &session, "big.bin").await, (3, v2));
    let (bad, status) = run(&mut browser, "edgeshell-files put --as ../escape big.bin", WAIT).await;
    assert!(bad.contains("dot segment") && status == 1, "{bad}");

    // The outbox: a file written there is uploaded by itself, and again when it changes.
    run(&mut browser, "mkdir -p ~/outbox/run && printf 'first\\n' > ~/outbox/run/result.txt", WAIT).await;
    let first = edgeshell_core::bundles::hex(&Sha256::digest(b"first\n"));
    assert!(
        wait_for(&stack, &session, "outbox/run/result.txt", &first).await,
        "{:?}",
        artifacts(&stack, &session).await
    );
    run(&mut browser, "printf 'second\\n' > ~/outbox/run/result.txt", WAIT).await;
    let second = edgeshell_core::bundles::hex(&Sha256::digest(b"second\n"));
    assert!(
        wait_for(&stack, &session, "outbox/run/result.txt", &second).await,
        "{:?}",
        artifacts(&stack, &session).await
    );
    // A link out of the outbox is not followed.
    run(&mut browser, "echo private > ~/private.txt && ln -s ~/private.txt ~/outbox/link.txt", WAIT).await;

    // At the program's exit, what the outbox holds goes out before the session ends.
    let from = browser.output.len();
    browser.input(b"for i in $(seq 1000); do echo 'last words'; done > ~/outbox/last.txt; exit 3\n").await;
    let exit = browser.expect_exit(WAIT).await;
    assert_eq!(format!("{exit:?}"), "Code(3)");
    assert!(text(&browser, from).contains("uploaded from ~/outbox: outbox/last.txt"), "{}", text(&browser, from));
    let words = b"last words\n".repeat(1000);
    let last = edgeshell_core::bundles::hex(&Sha256::digest(&words));
    let listed = artifacts(&stack, &session).await;
    assert!(listed.iter().any(|(p, _, s)| p == "outbox/last.txt" && *s == last), "{listed:?}");
    assert_eq!(download_sha256(&stack, &session, "outbox/last.txt").await, (words.len() as u64, last));

    // The bucket holds ciphertext only: no stored object contains what was uploaded, and one has the
    // sealed size of the last file.
    let blobs = stack.edge.r2_files();
    let sealed = edgeshell_core::sealed_stream::sealed_len(words.len() as u64);
    let sizes: Vec<u64> = blobs.iter().filter_map(|b| std::fs::metadata(b).ok()).map(|m| m.len()).collect();
    assert!(sizes.contains(&sealed), "no object of {sealed} bytes among {sizes:?}");
    for blob in &blobs {
        let bytes = std::fs::read(blob).unwrap_or_default();
        assert!(!bytes.windows(22).any(|w| w == b"last words\nlast words\n"), "plaintext in {}", blob.display());
    }
    assert!(!listed.iter().any(|(p, _, _)| p.contains("link")), "a symbolic link was followed: {listed:?}");

    // The session has ended: its upload token is of no use any more.
    let ended = edgeshell_e2e::wait_until(WAIT, || async {
        let token = stack.artifact_put_token(&session.id, &session.region).unwrap();
        let url = format!("{}/artifacts/{}/late.txt", stack.edge.url, session.id);
        let answer = reqwest::Client::new().put(url).bearer_auth(token.expose()).body("late").send().await.unwrap();
        let body = answer.bytes().await.unwrap();
        ApiError::from_body(&body).is_ok_and(|e| e.code == ErrorCode::SessionEnded)
    })
    .await;
    assert!(ended, "an upload after the session ended was not refused with session_ended");
}

//! The real `artifacts` component: uploads are registered under the limits and completed with what was
//! streamed (a failed one releases its path and quota), links go to the owner only (for the whole
//! retention, after the session's row is gone), verify as `artifact:get` tokens bound to session, path
//! and method, work exactly once even when redeemed concurrently, and every link, upload and download
//! is in the audit log. A replacement keeps the stored version until it is stored itself, and an
//! ended session takes no uploads.

use edgeshell_core::artifacts::{check_link, ArtifactPath};
use edgeshell_core::ids::SessionId;
use edgeshell_core::issue::EDGE_AUDIENCE;
use edgeshell_core::jwks::KeySet;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{Expectation, Method, Scope, ValidationOptions, Validator};
use edgeshell_keys::RingVerifier;
use serde_json::json;
use support::pool::Mode;
use support::request;
use support::stack::{Stack, INTERNAL_KEY, TOKEN_ISSUER};

mod support;

async fn register(stack: &Stack, sid: &str, path: &str, size: u64) -> (u16, serde_json::Value) {
    let body = json!({ "session_id": sid, "path": path, "size": size, "sha256": "ab".repeat(32) });
    stack.call("POST", "/internal/artifacts", INTERNAL_KEY, body).await
}

async fn complete(stack: &Stack, sid: &str, path: &str, outcome: serde_json::Value) -> (u16, serde_json::Value) {
    let mut body = json!({ "session_id": sid, "path": path });
    body.as_object_mut().unwrap().extend(outcome.as_object().unwrap().clone());
    stack.call("POST", "/internal/artifacts/complete", INTERNAL_KEY, body).await
}

/// Registers and, when that succeeds, completes as stored with the size registered.
async fn upload(stack: &Stack, sid: &str, path: &str, size: u64) -> (u16, serde_json::Value) {
    let (status, created) = register(stack, sid, path, size).await;
    if status == 201 {
        let stored = json!({ "outcome": "stored", "size": size, "sha256": "cd".repeat(32) });
        let (done, body) = complete(stack, sid, path, stored).await;
        assert_eq!(done, 200, "{body}");
    }
    (status, created)
}

fn code(answer: &(u16, serde_json::Value)) -> (u16, &str) {
    (answer.0, answer.1["error"]["code"].as_str().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn failed_uploads_release_their_path_and_owners_keep_access_for_the_retention() {
    let stack = Stack::start("SPIN_VARIABLE_ARTIFACT_USER_BYTES=1500\n").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let (alice, bob) = (stack.id_token("alice"), stack.id_token("bob"));
    let (_, m) = stack.mint(&alice, json!({})).await;
    let sid = m["session_id"].as_str().unwrap().to_owned();
    let list_path = format!("/api/artifacts?session={sid}");
    let listed = |list: &serde_json::Value| list["artifacts"].as_array().map_or(usize::MAX, Vec::len);

    // A registered upload reserves its path and size, and is not listed or linked until stored.
    assert_eq!(register(&stack, &sid, "a.txt", 1000).await.0, 201);
    assert_eq!(listed(&stack.call("GET", &list_path, &alice, serde_json::Value::Null).await.1), 0);
    let ask = json!({ "session_id": sid, "path": "a.txt" });
    assert_eq!(
        code(&stack.call("POST", "/api/artifacts/links", &alice, ask.clone()).await),
        (404, "artifact_not_found")
    );
    assert_eq!(code(&register(&stack, &sid, "b.txt", 600).await), (413, "artifact_limit"));
    // It fails: the path and the quota are free again, at once.
    let failed = json!({ "outcome": "failed", "reason": "the stream broke" });
    assert_eq!(complete(&stack, &sid, "a.txt", failed.clone()).await.0, 200);
    assert_eq!(code(&complete(&stack, &sid, "a.txt", failed).await), (404, "artifact_not_found"));
    assert_eq!(register(&stack, &sid, "b.txt", 600).await.0, 201, "the quota was released");
    assert_eq!(register(&stack, &sid, "a.txt", 800).await.0, 201, "the path was released");
    // Stored: what was streamed is recorded, never more than was reserved.
    let sha = "ef".repeat(32);
    let more = json!({ "outcome": "stored", "size": 801, "sha256": sha });
    assert_eq!(code(&complete(&stack, &sid, "a.txt", more).await), (400, "content_mismatch"));
    let stored = json!({ "outcome": "stored", "size": 750, "sha256": sha });
    assert_eq!(complete(&stack, &sid, "a.txt", stored).await.0, 200);
    let (_, list) = stack.call("GET", &list_path, &alice, serde_json::Value::Null).await;
    assert_eq!(
        (list["artifacts"][0]["size"].as_i64(), list["artifacts"][0]["sha256"].as_str()),
        (Some(750), Some(sha.as_str()))
    );

    // A day after the session ended its row is deleted; its artifacts stay for their retention, and so
    // does their owner's access.
    stack.db.execute("DELETE FROM sessions WHERE id = $1", &[&sid]).await.unwrap();
    let (status, list) = stack.call("GET", &list_path, &alice, serde_json::Value::Null).await;
    assert_eq!((status, listed(&list)), (200, 1), "{list}");
    let (status, link) = stack.call("POST", "/api/artifacts/links", &alice, ask.clone()).await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(code(&stack.call("GET", &list_path, &bob, serde_json::Value::Null).await), (404, "session_not_found"));
    assert_eq!(code(&stack.call("POST", "/api/artifacts/links", &bob, ask).await), (404, "session_not_found"));
    let rows =
        stack.db.query("SELECT action FROM audit_log WHERE action LIKE 'artifact.upload%' ORDER BY id", &[]).await;
    let actions: Vec<String> = rows.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(actions, ["artifact.upload_failed", "artifact.upload"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn links_are_owner_only_single_use_and_audited() {
    let stack = std::sync::Arc::new(
        Stack::start("SPIN_VARIABLE_ARTIFACT_MAX_PER_SESSION=2\nSPIN_VARIABLE_ARTIFACT_MAX_BYTES=1000\nSPIN_VARIABLE_ARTIFACT_USER_BYTES=1500\n")
            .await,
    );
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let (alice, bob) = (stack.id_token("alice"), stack.id_token("bob"));
    let (_, m) = stack.mint(&alice, json!({})).await;
    let sid = m["session_id"].as_str().unwrap().to_owned();

    // Uploads: the internal key is required, and the limits hold.
    let (status, _) = stack.call("POST", "/internal/artifacts", "wrong", json!({})).await;
    assert_eq!(status, 401);
    let (status, created) = upload(&stack, &sid, "out/report.html", 800).await;
    assert_eq!(status, 201, "{created}");
    let key = created["object_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("sessions/{sid}/")) && key.ends_with("/out/report.html"), "{key}");
    assert_eq!(upload(&stack, &sid, "out/report.html", 10).await.0, 409, "no silent overwrite");
    let (status, e) = upload(&stack, &sid, "big.bin", 1001).await;
    assert_eq!((status, e["error"]["code"].as_str()), (413, Some("artifact_limit")), "{e}");
    let (status, e) = upload(&stack, &sid, "second.txt", 900).await;
    assert!(status == 413 && e["error"]["message"].as_str().unwrap().contains("storage per user"), "{e}");
    assert_eq!(upload(&stack, &sid, "second.txt", 100).await.0, 201);
    let (status, e) = upload(&stack, &sid, "third.txt", 1).await;
    assert!(status == 413 && e["error"]["message"].as_str().unwrap().contains("per session"), "{e}");
    let (status, e) = upload(&stack, &sid, "../etc/passwd", 1).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_path")), "{e}");

    // Listing and links: the owner only.
    let list_path = format!("/api/artifacts?session={sid}");
    let (status, list) = stack.call("GET", &list_path, &alice, serde_json::Value::Null).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["artifacts"].as_array().unwrap().len(), 2);
    assert_eq!(stack.call("GET", &list_path, &bob, serde_json::Value::Null).await.0, 404);
    let ask = json!({ "session_id": sid, "path": "out/report.html" });
    assert_eq!(stack.call("POST", "/api/artifacts/links", &bob, ask.clone()).await.0, 404);
    let missing = json!({ "session_id": sid, "path": "nope.txt" });
    assert_eq!(stack.call("POST", "/api/artifacts/links", &alice, missing).await.0, 404);
    let (status, link) = stack.call("POST", "/api/artifacts/links", &alice, ask).await;
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().unwrap();
    assert_eq!(url, format!("{}/artifacts/{sid}/out/report.html", stack.edge.url), "no token in the URL");
    let token = link["token"].as_str().unwrap();

    // The link is an artifact:get token for this session, path and method, as the edge will check it.
    let (_, _, jwks) = request(&stack.host.url, "GET", "/.well-known/jwks.json").await;
    let session = SessionId::new(sid.as_str()).unwrap();
    let validator = Validator::new(ValidationOptions::new(TOKEN_ISSUER, EDGE_AUDIENCE));
    let now =
        Timestamp::from_secs(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let expect = Expectation { scope: Scope::ArtifactGet, session: Some(&session) };
    let verified =
        validator.verify(token, &KeySet::from_json(&jwks).unwrap(), &RingVerifier, expect, now).await.unwrap();
    let path = ArtifactPath::new("out/report.html").unwrap();
    assert_eq!(check_link(&verified, &session, &path, Method::Get), Ok(()));
    assert!(check_link(&verified, &session, &ArtifactPath::new("second.txt").unwrap(), Method::Get).is_err());
    assert!(verified.claims().exp - verified.claims().iat <= 300);

    // 50 concurrent redemptions of the link: exactly one download.
    let redeem = json!({
        "jti": verified.claims().jti, "expires_at": verified.claims().exp, "session_id": sid,
        "path": "out/report.html", "owner": verified.claims().sub,
    });
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (stack, body) = (stack.clone(), redeem.clone());
            tokio::spawn(async move { stack.call("POST", "/internal/artifacts/redeem", INTERNAL_KEY, body).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => {
                ok += 1;
                assert_eq!(body["object_key"].as_str(), Some(key.as_str()));
                assert!(body["sealed"] == true && body["data_key"].is_string(), "the edge opens it: {body}");
            }
            409 => assert_eq!(body["error"]["code"], "replayed_token"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 1, "a link works once");
    let mut other_owner = redeem.clone();
    other_owner["jti"] = json!("another-jti");
    other_owner["owner"] = json!("dev:bob");
    assert_eq!(stack.call("POST", "/internal/artifacts/redeem", INTERNAL_KEY, other_owner).await.0, 404);

    let rows =
        stack.db.query("SELECT action, actor FROM audit_log WHERE action LIKE 'artifact.%' ORDER BY id", &[]).await;
    let audit: Vec<(String, String)> = rows.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["artifact.upload", "artifact.upload", "artifact.link", "artifact.download"]);
    assert_eq!(audit[2].1, "dev:alice");
}

async fn register_replacing(stack: &Stack, sid: &str, path: &str, size: u64) -> (u16, serde_json::Value) {
    let body = json!({ "session_id": sid, "path": path, "size": size, "replace": true });
    stack.call("POST", "/internal/artifacts", INTERNAL_KEY, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_replacement_keeps_the_stored_version_until_it_is_stored_and_ended_sessions_take_none() {
    let stack =
        Stack::start("SPIN_VARIABLE_ARTIFACT_MAX_PER_SESSION=2\nSPIN_VARIABLE_ARTIFACT_USER_BYTES=1500\n").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let (_, m) = stack.mint(&alice, json!({})).await;
    let sid = m["session_id"].as_str().unwrap().to_owned();
    let list_path = format!("/api/artifacts?session={sid}");
    let listed = || async {
        let (_, list) = stack.call("GET", &list_path, &alice, serde_json::Value::Null).await;
        list["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["path"].as_str().unwrap().to_owned(), a["size"].as_i64().unwrap()))
            .collect::<Vec<_>>()
    };
    let (_, first) = upload(&stack, &sid, "out.txt", 1000).await;
    let first_key = first["object_key"].as_str().unwrap().to_owned();
    // Replacing reserves only the difference the new version makes: 1,400 bytes fit beside nothing else.
    let (status, second) = register_replacing(&stack, &sid, "out.txt", 1400).await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["object_key"], first_key, "each version has its own object");
    // Sealed at rest: each registration answers the session's one data key and a fresh nonce prefix;
    // the database holds the key only wrapped.
    let key = first["data_key"].as_str().unwrap().to_owned();
    assert_eq!(second["data_key"].as_str(), Some(key.as_str()));
    assert_ne!(first["nonce_prefix"], second["nonce_prefix"]);
    let row = stack.db.query_one("SELECT wrapped FROM session_keys WHERE session_id = $1", &[&sid]).await.unwrap();
    let (wrapped, raw): (Vec<u8>, Vec<u8>) = (row.get(0), edgeshell_core::base64url::decode(&key).unwrap());
    assert!(raw.len() == 32 && !wrapped.windows(32).any(|w| w == raw.as_slice()), "a key stored in the clear");
    // While it streams the stored version is what is listed, and a third upload to the path waits.
    assert_eq!(listed().await, [("out.txt".to_owned(), 1000)]);
    assert_eq!(code(&register_replacing(&stack, &sid, "out.txt", 10).await), (409, "upload_in_progress"));
    // It fails: the stored version is as it was.
    let failed = json!({ "outcome": "failed", "reason": "the stream broke" });
    assert_eq!(complete(&stack, &sid, "out.txt", failed).await.0, 200);
    assert_eq!(listed().await, [("out.txt".to_owned(), 1000)]);
    // Stored: the old version goes, its object key answered for the edge to delete.
    assert_eq!(register_replacing(&stack, &sid, "out.txt", 1400).await.0, 201);
    let stored = json!({ "outcome": "stored", "size": 1300, "sha256": "cd".repeat(32) });
    let (status, done) = complete(&stack, &sid, "out.txt", stored).await;
    assert_eq!((status, done["superseded"].as_str()), (200, Some(first_key.as_str())), "{done}");
    assert_eq!(listed().await, [("out.txt".to_owned(), 1300)]);
    // A path counts once: one more path fits the limit of two, a third does not.
    assert_eq!(upload(&stack, &sid, "other.txt", 100).await.0, 201);
    assert_eq!(code(&upload(&stack, &sid, "third.txt", 1).await), (413, "artifact_limit"));
    let rows = stack
        .db
        .query("SELECT detail->>'replaced' FROM audit_log WHERE action = 'artifact.upload' ORDER BY id", &[])
        .await
        .unwrap();
    let replaced: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(replaced, ["false", "true", "false"]);

    // Twenty replacements at once: one is registered, the others are told another is under way.
    let attempts = (0..20).map(|_| register_replacing(&stack, &sid, "other.txt", 50));
    let answers = futures_util::future::join_all(attempts).await;
    assert_eq!(answers.iter().filter(|a| a.0 == 201).count(), 1, "{answers:?}");
    assert!(answers.iter().filter(|a| a.0 != 201).all(|a| code(a) == (409, "upload_in_progress")), "{answers:?}");

    // The session ends: its upload token is of no more use.
    stack.db.execute("UPDATE sessions SET state = 'ended', ended_at = now() WHERE id = $1", &[&sid]).await.unwrap();
    assert_eq!(code(&register(&stack, &sid, "late.txt", 1).await), (410, "session_ended"));
}

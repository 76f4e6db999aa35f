//! The real `artifacts` component: uploads are registered under the limits, links go to the owner only,
//! verify as `artifact:get` tokens bound to session, path and method, work exactly once even when
//! redeemed concurrently, and every link, upload and download is in the audit log.

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

async fn upload(stack: &Stack, sid: &str, path: &str, size: u64) -> (u16, serde_json::Value) {
    let body = json!({ "session_id": sid, "path": path, "size": size, "sha256": "ab".repeat(32) });
    stack.call("POST", "/internal/artifacts", INTERNAL_KEY, body).await
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
    assert_eq!(created["object_key"], format!("sessions/{sid}/out/report.html"));
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
    assert_eq!(url, format!("http://127.0.0.1:8787/artifacts/{sid}/out/report.html"), "no token in the URL");
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
                assert_eq!(body["object_key"], format!("sessions/{sid}/out/report.html"));
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

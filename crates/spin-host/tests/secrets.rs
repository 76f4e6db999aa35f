//! Users' secrets through the real `secrets` component, with a real Postgres: set once and never
//! answered again (names and times only), sealed in the database, owner only, handed only to the pool
//! of a live session's region and only the names asked for, every set, use and delete audited; a
//! first use from many requests at once keeps one data key; and a KEK rotation keeps every secret
//! readable, the rewrap moves every data key to the new KEK, after which the old one can go.

use serde_json::{json, Value};
use support::pool::Mode;
use support::stack::Stack;

mod support;

const VALUE: &str = "sk-ant-api03-the-value-that-must-not-leak";

async fn pool_fetch(stack: &Stack, key: &str, session: &str, names: &[&str]) -> (u16, Value) {
    stack.call("POST", "/api/pools/secrets", key, json!({ "session_id": session, "names": names })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn secrets_are_sealed_owner_only_and_reach_only_their_sessions_pool() {
    let mut stack = Stack::start("").await;
    let eu = stack.add_pool("eu", Mode::Accept).await;
    let us = stack.add_pool("us", Mode::Accept).await;
    let (alice, bob) = (stack.id_token("alice"), stack.id_token("bob"));

    // Set, then only the name and the time come back, to anyone.
    let (status, set) = stack.call("PUT", "/api/secrets/ANTHROPIC_API_KEY", &alice, json!({ "value": VALUE })).await;
    assert_eq!(status, 200, "{set}");
    assert!(!set.to_string().contains(VALUE));
    let (status, listed) = stack.call("GET", "/api/secrets", &alice, Value::Null).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["secrets"][0]["name"], "ANTHROPIC_API_KEY");
    assert!(listed["secrets"][0]["set_at"].is_i64() && !listed.to_string().contains(VALUE));
    let (_, theirs) = stack.call("GET", "/api/secrets", &bob, Value::Null).await;
    assert_eq!(theirs["secrets"], json!([]), "another user sees nothing");
    let (status, _) = stack.call("DELETE", "/api/secrets/ANTHROPIC_API_KEY", &bob, Value::Null).await;
    assert_eq!(status, 404, "nor deletes it");
    assert_eq!(stack.call("GET", "/api/secrets", "", Value::Null).await.0, 401);

    // Bad names and values: 400 naming the field; nothing stored.
    for (name, body, field) in [
        ("PATH", json!({ "value": "x" }), "name"),
        ("LD_PRELOAD", json!({ "value": "x" }), "name"),
        ("A-B", json!({ "value": "x" }), "name"),
        ("TOKEN", json!({ "value": "" }), "value"),
        ("TOKEN", json!({ "value": "a\u{0}b" }), "value"),
        ("TOKEN", json!({ "value": "x".repeat(8193) }), "value"),
        ("TOKEN", json!({ "secret": "x" }), "secret"),
    ] {
        let (status, e) = stack.call("PUT", &format!("/api/secrets/{name}"), &alice, body).await;
        assert_eq!(status, 400, "{name}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(field), "{e}");
    }

    // The database holds ciphertext and a wrapped key, never the value or the data key in clear.
    let rows = stack.db.query("SELECT sealed FROM user_secrets", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    let sealed: Vec<u8> = rows[0].get(0);
    assert!(!sealed.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()), "the value is stored sealed");
    let dump: String =
        stack.db.query_one("SELECT string_agg(t::text, ' ') FROM user_secrets t", &[]).await.unwrap().get(0);
    assert!(!dump.contains(VALUE) && !dump.contains(&hex(VALUE.as_bytes())));

    // Alice's session in eu: only eu's pool gets her secret, only the names asked, and no start carries it.
    let (status, minted) = stack.mint(&alice, json!({ "region_hint": "eu" })).await;
    assert_eq!((status, minted["region"].as_str()), (201, Some("eu")), "{minted}");
    let sid = minted["session_id"].as_str().unwrap().to_owned();
    let start = eu.pool.with_log(|l| serde_json::to_string(&l.starts[0]).unwrap());
    assert!(!start.contains(VALUE), "the start command never carries a secret");
    let (status, got) = pool_fetch(&stack, &eu.key, &sid, &["ANTHROPIC_API_KEY", "GIT_TOKEN"]).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["env"], json!({ "ANTHROPIC_API_KEY": VALUE }), "a name without a secret is left out");
    let (status, got) = pool_fetch(&stack, &eu.key, &sid, &["OTHER"]).await;
    assert_eq!((status, got["env"].clone()), (200, json!({})));
    let (status, _) = pool_fetch(&stack, &us.key, &sid, &["ANTHROPIC_API_KEY"]).await;
    assert_eq!(status, 404, "another region's pool learns nothing");
    assert_eq!(pool_fetch(&stack, "esp_x_0123456789012345678901234567890123456789012", &sid, &[]).await.0, 401);
    assert_eq!(pool_fetch(&stack, &alice, &sid, &[]).await.0, 401, "a user's token is not a pool key");
    // Bob's session gets none of Alice's.
    let (_, theirs) = stack.mint(&bob, json!({ "region_hint": "eu" })).await;
    let (status, got) =
        pool_fetch(&stack, &eu.key, theirs["session_id"].as_str().unwrap(), &["ANTHROPIC_API_KEY"]).await;
    assert_eq!((status, got["env"].clone()), (200, json!({})));
    // An ended session's pool gets nothing.
    assert_eq!(stack.call("DELETE", &format!("/api/sessions/{sid}"), &alice, Value::Null).await.0, 200);
    assert_eq!(pool_fetch(&stack, &eu.key, &sid, &["ANTHROPIC_API_KEY"]).await.0, 404);

    // Many first uses at once: one data key, every secret readable.
    let carol = stack.id_token("carol");
    let sets = (0..12).map(|i| {
        let (stack, carol) = (&stack, &carol);
        async move { stack.call("PUT", &format!("/api/secrets/S{i}"), carol, json!({ "value": format!("v{i}") })).await }
    });
    for (status, body) in futures_util::future::join_all(sets).await {
        assert_eq!(status, 200, "{body}");
    }
    let keys: i64 =
        stack.db.query_one("SELECT count(*) FROM user_keys WHERE owner = 'dev:carol'", &[]).await.unwrap().get(0);
    assert_eq!(keys, 1);
    let (_, carols) = stack.mint(&carol, json!({ "region_hint": "eu" })).await;
    let names: Vec<String> = (0..12).map(|i| format!("S{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_, got) = pool_fetch(&stack, &eu.key, carols["session_id"].as_str().unwrap(), &names).await;
    assert_eq!(got["env"].as_object().unwrap().len(), 12, "{got}");
    assert_eq!(got["env"]["S7"], "v7");

    // A session's artifact key, made on k1 by an upload's registration.
    let internal = stack.settings.internal_key.expose().to_owned();
    let upload = json!({ "session_id": carols["session_id"], "path": "out.txt", "size": 1 });
    let (status, registered) = stack.call("POST", "/internal/artifacts", &internal, upload).await;
    assert_eq!(status, 201, "{registered}");

    // KEK rotation: k2 current, k1 previous; everything still opens; the rewrap moves every key to k2.
    let old = stack.settings.secrets_kek.clone();
    stack
        .redeploy_with(|s| {
            s.secrets_kek = edgeshell_stack::control::new_secrets_kek("k2");
            s.extra = format!("{}\nSPIN_VARIABLE_PREVIOUS_SECRETS_KEK={}\n", s.extra, old.expose());
        })
        .await;
    let (_, got) = pool_fetch(&stack, &eu.key, carols["session_id"].as_str().unwrap(), &["S3"]).await;
    assert_eq!(got["env"]["S3"], "v3", "readable during the rotation (and carol's key now rewrapped)");
    let (status, rewrap) = stack.call("POST", "/internal/secrets/rewrap", &internal, Value::Null).await;
    assert_eq!(status, 200, "{rewrap}");
    assert_eq!((rewrap["kek"].as_str(), rewrap["remaining"].as_i64()), (Some("k2"), Some(0)), "{rewrap}");
    assert!(rewrap["rewrapped"].as_i64().unwrap() >= 1, "alice's key was still on k1: {rewrap}");
    let on_old: i64 =
        stack.db.query_one("SELECT count(*) FROM user_keys WHERE kek_id <> 'k2'", &[]).await.unwrap().get(0);
    assert_eq!(on_old, 0);
    let sessions_on_old: i64 =
        stack.db.query_one("SELECT count(*) FROM session_keys WHERE kek_id <> 'k2'", &[]).await.unwrap().get(0);
    assert_eq!(sessions_on_old, 0, "sessions' artifact keys are rewrapped too");
    // And the session's key is the same key: a second registration answers it unchanged.
    let again = json!({ "session_id": carols["session_id"], "path": "other.txt", "size": 1 });
    let (_, second) = stack.call("POST", "/internal/artifacts", &internal, again).await;
    assert_eq!(second["data_key"], registered["data_key"], "the rewrap kept the key itself");
    assert_eq!(stack.call("POST", "/internal/secrets/rewrap", "", Value::Null).await.0, 401);
    // The old KEK dropped: every secret still opens.
    stack
        .redeploy_with(|s| {
            s.extra = s.extra.replace(&format!("SPIN_VARIABLE_PREVIOUS_SECRETS_KEK={}", old.expose()), "")
        })
        .await;
    let (_, minted) = stack.mint(&alice, json!({ "region_hint": "eu" })).await;
    let (_, got) = pool_fetch(&stack, &eu.key, minted["session_id"].as_str().unwrap(), &["ANTHROPIC_API_KEY"]).await;
    assert_eq!(got["env"]["ANTHROPIC_API_KEY"], VALUE);

    // Deleting, and the audit trail: every set, use and delete, by name, never a value.
    assert_eq!(stack.call("DELETE", "/api/secrets/ANTHROPIC_API_KEY", &alice, Value::Null).await.0, 200);
    let (_, listed) = stack.call("GET", "/api/secrets", &alice, Value::Null).await;
    assert_eq!(listed["secrets"], json!([]));
    let audit = stack
        .db
        .query("SELECT action, detail::text FROM audit_log WHERE actor = 'dev:alice' AND action LIKE 'secret.%' ORDER BY id", &[])
        .await
        .unwrap();
    let actions: Vec<String> = audit.iter().map(|r| r.get(0)).collect();
    assert_eq!(actions, ["secret.set", "secret.use", "secret.use", "secret.use", "secret.delete"], "{actions:?}");
    assert!(audit.iter().all(|r| !r.get::<_, String>(1).contains(VALUE)));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

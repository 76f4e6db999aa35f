//! The real `pools` component: pool keys are checked by hash (401 unknown or revoked, 403 another
//! region's), for heartbeats and for the edge's check of a connecting agent; rotated keys live out
//! their grace; heartbeats are rate limited per agent (429 with Retry-After), agent names are
//! validated, a region's agents add up, stale pools drop out of placement, and the answer names runners
//! whose session is over (orphan reaping).

use edgeshell_control_db::pool_keys;
use serde_json::json;
use support::pool::Mode;
use support::stack::Stack;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn keys_rate_limits_and_agent_names() {
    let stack = Stack::start("").await;
    let eu = stack.add_pool("eu", Mode::Accept).await;
    let beat = |key: &str, body: serde_json::Value| {
        let key = key.to_owned();
        let stack = &stack;
        async move { stack.call("POST", "/api/pools/heartbeat", &key, body).await }
    };
    let body = |region: &str, agent: &str| json!({ "region": region, "agent": agent, "capacity": 4, "load": 1 });

    let (status, e) = beat("", body("eu", &eu.pool.agent)).await;
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("missing_api_key")), "{e}");
    let (status, e) = beat("esp_000000000000_wrong", body("eu", &eu.pool.agent)).await;
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("invalid_api_key")), "{e}");
    let (status, e) = beat(&eu.key, body("us", &eu.pool.agent)).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("wrong_region")), "{e}");
    for bad in ["", "Agent A", "a/b", "-a"] {
        let (status, e) = beat(&eu.key, body("eu", bad)).await;
        assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_request")), "{bad}: {e}");
    }
    let (status, e) = beat(&eu.key, json!({ "region": "eu" })).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_request")), "{e}");

    // Two heartbeats at once: the second is refused with Retry-After.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (first, second) =
        tokio::join!(beat(&eu.key, body("eu", &eu.pool.agent)), beat(&eu.key, body("eu", &eu.pool.agent)));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 429], "{first:?} {second:?}");
    let limited = if first.0 == 429 { first.1 } else { second.1 };
    assert_eq!(limited["error"]["code"], "rate_limited");
    // A sibling agent of the region is not limited by it, and the region's capacity is the sum.
    assert_eq!(beat(&eu.key, body("eu", "eu-b")).await.0, 200);
    let (_, regions) = stack.call("GET", "/api/regions", "", serde_json::Value::Null).await;
    assert_eq!(
        (regions["regions"][0]["capacity"].as_u64(), regions["regions"][0]["load"].as_u64()),
        (Some(8), Some(2))
    );

    // The registry holds only the hash of the key.
    let stored: Vec<u8> = stack.db.query_one("SELECT key_sha256 FROM pool_api_keys", &[]).await.unwrap().get(0);
    assert_eq!(stored, edgeshell_core::pool_api::api_key_hash(&eu.key));
    assert!(!String::from_utf8_lossy(&stored).contains(&eu.key));

    // The edge's check of a connecting agent's key: internal key only; the key's id, or 401/403.
    let check = |sha: String, region: &str, internal: &str| {
        let body = json!({ "key_sha256": sha, "region": region });
        let (internal, stack) = (internal.to_owned(), &stack);
        async move { stack.call("POST", "/internal/pools/keys/check", &internal, body).await }
    };
    let hash = |key: &str| edgeshell_core::bundles::hex(&edgeshell_core::pool_api::api_key_hash(key));
    let internal = support::stack::INTERNAL_KEY;
    let key_id: String = stack.db.query_one("SELECT key_id FROM pool_api_keys", &[]).await.unwrap().get(0);
    assert_eq!(check(hash(&eu.key), "eu", "wrong-internal-key-0123456789abcdef").await.0, 401);
    let (status, owner) = check(hash(&eu.key), "eu", internal).await;
    assert_eq!((status, owner["key_id"].as_str()), (200, Some(key_id.as_str())), "{owner}");
    let (status, e) = check(hash(&eu.key), "us", internal).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("wrong_region")), "{e}");
    let (status, e) = check("zz".into(), "eu", internal).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_sha256")), "{e}");

    // Rotation: a new key for the region at once, the old one valid through its grace, then not.
    let (region, new_id, new_key) = pool_keys::rotate(&stack.db, &key_id, 2).await.unwrap().unwrap();
    assert_eq!(region, "eu");
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(beat(&eu.key, body("eu", &eu.pool.agent)).await.0, 200, "the old key lives out its grace");
    assert_eq!(check(hash(&new_key), "eu", internal).await.1["key_id"].as_str(), Some(new_id.as_str()));
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    assert_eq!(beat(&eu.key, body("eu", &eu.pool.agent)).await.0, 401, "its grace is over");
    assert_eq!(check(hash(&eu.key), "eu", internal).await.0, 401);
    assert_eq!(beat(&new_key, body("eu", &eu.pool.agent)).await.0, 200);
    // Revocation is at once, for the edge's check as for heartbeats.
    assert!(pool_keys::revoke(&stack.db, &new_id).await.unwrap());
    assert_eq!(check(hash(&new_key), "eu", internal).await.0, 401);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(beat(&new_key, body("eu", &eu.pool.agent)).await.0, 401);
    assert!(pool_keys::rotate(&stack.db, &new_id, 60).await.unwrap().is_none(), "a revoked key is not rotated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn stale_pools_drop_out_and_orphans_are_named() {
    let stack = Stack::start("SPIN_VARIABLE_POOL_HEALTH_TTL_SECS=1\n").await;
    let eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let (status, m) = stack.mint(&alice, json!({})).await;
    assert_eq!(status, 201, "{m}");
    let live = m["session_id"].as_str().unwrap().to_owned();

    let (status, regions) = stack.call("GET", "/api/regions", "", serde_json::Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(regions["regions"][0]["region"], "eu");
    assert_eq!(regions["regions"][0]["available"], true);

    // The agent reports its runners: the live one stays, an unknown one and an ended one are to stop.
    let (status, m2) = stack.mint(&alice, json!({})).await;
    assert_eq!(status, 201);
    let ended = m2["session_id"].as_str().unwrap().to_owned();
    assert_eq!(stack.call("DELETE", &format!("/api/sessions/{ended}"), &alice, serde_json::Value::Null).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let body = json!({
        "region": "eu", "agent": eu.pool.agent, "capacity": 4, "load": 3,
        "runners": [live, ended, "s_unknownsession00000000"],
    });
    let (status, answer) = stack.call("POST", "/api/pools/heartbeat", &eu.key, body).await;
    assert_eq!(status, 200, "{answer}");
    let mut stop: Vec<&str> = answer["stop"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    stop.sort();
    let mut expected = vec![ended.as_str(), "s_unknownsession00000000"];
    expected.sort();
    assert_eq!(stop, expected);

    // Without heartbeats the pool drops out of placement after the health TTL.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (status, e) = stack.mint(&alice, json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (503, Some("no_region_available")), "{e}");
    let (_, regions) = stack.call("GET", "/api/regions", "", serde_json::Value::Null).await;
    assert_eq!(regions["regions"][0]["available"], false);
    // A draining pool takes nothing either, even while it heartbeats.
    let body = json!({ "region": "eu", "agent": eu.pool.agent, "capacity": 4, "load": 0, "draining": true });
    assert_eq!(stack.call("POST", "/api/pools/heartbeat", &eu.key, body).await.0, 200);
    assert_eq!(stack.mint(&alice, json!({})).await.0, 503);
    let (status, _) = stack.heartbeat(&eu, 4, 0).await;
    assert!(status == 200 || status == 429);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(stack.heartbeat(&eu, 4, 0).await.0, 200);
    assert_eq!(stack.mint(&alice, json!({})).await.0, 201, "back in placement");
}

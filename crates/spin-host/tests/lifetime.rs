//! Session lifetimes through the real `sessions` component on Postgres: the lifetime a mint asks for
//! (within the operator's longest), the one deadline every token and the start command carry, and
//! extensions (`POST /api/sessions/{id}/extend`): told to the pool, audited, refused past the longest
//! lifetime even when many arrive at once, and never for another user's or an ended session.

use edgeshell_core::ids::SessionId;
use edgeshell_core::lifetime::Terms;
use edgeshell_core::tokens::Scope;
use serde_json::{json, Value};
use support::pool::Mode;
use support::stack::{verify_at_edge, Stack};

mod support;

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The terms a token carries, once it verifies against the served keys.
async fn terms_of(url: &str, token: &str, scope: Scope, sid: &SessionId) -> Terms {
    verify_at_edge(url, token, scope, sid).await.claims().ses.expect("a session token carries its terms")
}

fn sid(v: &Value) -> SessionId {
    SessionId::new(v["session_id"].as_str().expect("session_id")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn every_tier_gets_the_one_deadline_and_an_extension_moves_it_within_the_longest() {
    let stack = Stack::start("").await;
    let eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");

    // The default: 8 hours, idle after an hour, running detached until the deadline.
    let (status, minted) = stack.mint(&alice, json!({})).await;
    assert_eq!(status, 201, "{minted}");
    let ends = minted["session_expires_at"].as_u64().unwrap();
    assert!(ends.abs_diff(now_secs() + 8 * 3600) <= 5, "{minted}");
    let sid_a = sid(&minted);
    let attach = terms_of(&stack.host.url, minted["token"].as_str().unwrap(), Scope::Attach, &sid_a).await;
    assert_eq!(attach, Terms { ends, idle: Some(3600), detached: None });
    let start = eu.pool.with_log(|l| l.starts[0].clone());
    assert_eq!(start.deadline, ends, "the pool and the runner get the same deadline");
    let join = terms_of(&stack.host.url, start.join_token.expose(), Scope::Join, &sid_a).await;
    assert_eq!(join, attach, "and so does the room, from the join token");

    // A lifetime asked for, within the longest; outside it, a clear 400 naming the field.
    let (status, short) = stack.mint(&alice, json!({ "lifetime_secs": 600 })).await;
    assert_eq!(status, 201, "{short}");
    assert!(short["session_expires_at"].as_u64().unwrap().abs_diff(now_secs() + 600) <= 5);
    for (asked, says) in
        [(86_401, "lifetime_secs: may be at most 86400 s"), (59, "lifetime_secs: must be at least 60 s")]
    {
        let (status, e) = stack.mint(&alice, json!({ "lifetime_secs": asked })).await;
        assert_eq!((status, e["error"]["message"].as_str()), (400, Some(says)), "{e}");
    }

    // An extension: the row, the pool, the audit log and later tokens all move to the new deadline.
    let sid_b = sid(&short);
    let path = format!("/api/sessions/{sid_b}");
    let before = short["session_expires_at"].as_u64().unwrap();
    let (status, extended) = stack.call("POST", &format!("{path}/extend"), &alice, json!({ "by_secs": 3600 })).await;
    assert_eq!(status, 200, "{extended}");
    assert_eq!(extended["expires_at"].as_u64(), Some(before + 3600));
    assert_eq!(extended["runner_extended"], true, "{extended}");
    assert_eq!(eu.pool.with_log(|l| l.extends.clone()), vec![(sid_b.clone(), before + 3600)]);
    let (_, view) = stack.call("GET", &path, &alice, Value::Null).await;
    assert_eq!(view["expires_at"].as_u64(), Some(before + 3600));
    let created = view["created_at"].as_u64().unwrap();
    assert_eq!(view["longest_expires_at"].as_u64(), Some(created + 86_400));
    let (_, refreshed) = stack.call("POST", &format!("{path}/token"), &alice, Value::Null).await;
    let later = terms_of(&stack.host.url, refreshed["token"].as_str().unwrap(), Scope::Attach, &sid_b).await;
    assert_eq!(later.ends, before + 3600, "a token signed after the extension carries it to the room");
    let audit = stack
        .db
        .query(
            "SELECT actor, (detail->>'from')::int8, (detail->>'to')::int8 FROM audit_log
             WHERE session_id = $1 AND action = 'session.extend'",
            &[&sid_b.as_str()],
        )
        .await
        .unwrap();
    let rows: Vec<(String, i64, i64)> = audit.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(rows, [("dev:alice".to_owned(), before as i64, (before + 3600) as i64)]);

    // Past the longest lifetime: refused with how much is left; bad bodies and other users refused.
    let (status, e) = stack.call("POST", &format!("{path}/extend"), &alice, json!({ "by_secs": 86_400 })).await;
    assert_eq!(status, 400, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("by_secs: a session lives at most 86400 s; this one may be extended by"), "{message}");
    for body in [json!({}), json!({ "by_secs": -5 }), json!({ "by_secs": 60, "forever": true })] {
        let (status, e) = stack.call("POST", &format!("{path}/extend"), &alice, body).await;
        assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_request")), "{e}");
    }
    let bob = stack.id_token("bob");
    let (status, _) = stack.call("POST", &format!("{path}/extend"), &bob, json!({ "by_secs": 60 })).await;
    assert_eq!(status, 404, "another user's session does not exist for them");
    assert_eq!(stack.call("DELETE", &path, &alice, Value::Null).await.0, 200);
    let (status, _) = stack.call("POST", &format!("{path}/extend"), &alice, json!({ "by_secs": 60 })).await;
    assert_eq!(status, 404, "an ended session cannot be extended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn concurrent_extensions_never_pass_the_longest_lifetime() {
    let stack = Stack::start("").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    // 20 hours: four one-hour extensions fit in the 24-hour longest lifetime, the fifth does not.
    let (status, minted) = stack.mint(&alice, json!({ "lifetime_secs": 20 * 3600 })).await;
    assert_eq!(status, 201, "{minted}");
    let ends = minted["session_expires_at"].as_u64().unwrap();
    let path = format!("/api/sessions/{}/extend", sid(&minted));
    let attempts = (0..16).map(|_| stack.call("POST", &path, &alice, json!({ "by_secs": 3600 })));
    let answers = futures_util::future::join_all(attempts).await;
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused = answers.iter().filter(|(status, _)| *status == 400).count();
    assert_eq!((ok, refused), (4, 12), "{answers:?}");
    // Each accepted extension moved the deadline an hour further than the one before: none was lost
    // to another running at the same time.
    let mut moved: Vec<u64> = answers.iter().filter_map(|(_, a)| a["expires_at"].as_u64()).collect();
    moved.sort_unstable();
    assert_eq!(moved, (1..=4).map(|k| ends + k * 3600).collect::<Vec<_>>(), "{answers:?}");
    let (_, view) = stack.call("GET", &format!("/api/sessions/{}", sid(&minted)), &alice, Value::Null).await;
    assert_eq!(view["expires_at"], view["longest_expires_at"], "{view}");
}

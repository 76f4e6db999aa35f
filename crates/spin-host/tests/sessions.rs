//! The real `sessions` and `pools` components in the host, with a real Postgres, the dev OIDC issuer and
//! pools that verify every command: the mint round trip (tokens verify against the served JWKS), the
//! session routes, quotas (also under concurrent mints), failover without leftovers, a stopped
//! database, and key rotation.

use edgeshell_core::ids::SessionId;
use edgeshell_core::issue::EDGE_AUDIENCE;
use edgeshell_core::time::Timestamp;
use edgeshell_core::tokens::{Expectation, Scope, ValidationOptions, Validator};
use edgeshell_keys::RingVerifier;
use support::pool::Mode;
use support::stack::{served_keys, verify_at_edge, Stack, TOKEN_ISSUER};
use support::{start, vector_jwk};

mod support;

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    )
}

fn sid(v: &serde_json::Value) -> SessionId {
    SessionId::new(v["session_id"].as_str().expect("session_id")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn mint_round_trip_and_session_routes() {
    let stack = Stack::start("").await;
    let eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");

    let auth = format!("Bearer {alice}");
    let (status, headers, body) =
        support::send(&stack.host.url, "POST", "/api/sessions", &[("authorization", &auth)], Vec::new()).await;
    let minted: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{minted}");
    // Where the time went, for devtools and the benchmarks.
    let timing = headers["server-timing"].to_str().unwrap();
    assert!(timing.contains("sign;dur=") && timing.contains("desc=\"4 RS256 signatures\""), "{timing}");
    let sid = sid(&minted);
    assert_eq!(minted["region"], "eu");
    assert_eq!(minted["ws_url"], format!("{}/sessions/{sid}/attach", stack.edge_url()));
    // The attach token verifies with the core against the JWKS the functions serve.
    let attach = verify_at_edge(&stack.host.url, minted["token"].as_str().unwrap(), Scope::Attach, &sid).await;
    assert_eq!(attach.claims().sub.as_str(), "dev:alice");
    assert_eq!(attach.claims().region.as_str(), "eu");
    assert_eq!(minted["expires_at"], attach.claims().exp);

    // The pool got a start with a join token for this session, which verifies too.
    let starts = eu.pool.with_log(|l| l.starts.clone());
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].join_url, format!("{}/sessions/{sid}/join", stack.edge_url()));
    let join = verify_at_edge(&stack.host.url, starts[0].join_token.expose(), Scope::Join, &sid).await;
    assert_eq!(join.claims().sub.as_str(), "pool:eu");
    assert!(eu.pool.with_log(|l| l.rejected.is_empty()), "every command verified");

    // Listing, showing, refreshing.
    let (status, list) = stack.call("GET", "/api/sessions", &alice, serde_json::Value::Null).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["sessions"][0]["session_id"], sid.as_str());
    assert_eq!(list["sessions"][0]["state"], "running");
    let path = format!("/api/sessions/{sid}");
    let (status, one) = stack.call("GET", &path, &alice, serde_json::Value::Null).await;
    assert_eq!((status, one["region"].as_str()), (200, Some("eu")), "{one}");
    let (status, refreshed) = stack.call("POST", &format!("{path}/token"), &alice, serde_json::Value::Null).await;
    assert_eq!(status, 200, "{refreshed}");
    let again = verify_at_edge(&stack.host.url, refreshed["token"].as_str().unwrap(), Scope::Attach, &sid).await;
    assert_ne!(again.claims().jti, attach.claims().jti, "a fresh one-time token");

    // Someone else's session does not exist for them.
    let bob = stack.id_token("bob");
    assert_eq!(stack.call("GET", &path, &bob, serde_json::Value::Null).await.0, 404);
    assert_eq!(stack.call("DELETE", &path, &bob, serde_json::Value::Null).await.0, 404);
    let (_, bobs) = stack.call("GET", "/api/sessions", &bob, serde_json::Value::Null).await;
    assert_eq!(bobs["sessions"], serde_json::json!([]));

    // Ending stops the runner; ending again is fine; the session cannot be refreshed any more.
    let (status, ended) = stack.call("DELETE", &path, &alice, serde_json::Value::Null).await;
    assert_eq!((status, ended["runner_stopped"].as_bool()), (200, Some(true)), "{ended}");
    assert_eq!(eu.pool.stopped(), vec![sid.clone()]);
    assert_eq!(stack.call("DELETE", &path, &alice, serde_json::Value::Null).await.0, 200);
    assert_eq!(stack.call("POST", &format!("{path}/token"), &alice, serde_json::Value::Null).await.0, 404);
    let audit = stack
        .db
        .query("SELECT action, detail->>'region' FROM audit_log WHERE session_id = $1 ORDER BY id", &[&sid.as_str()])
        .await;
    let actions: Vec<(String, Option<String>)> = audit.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(actions, [("session.start".into(), Some("eu".into())), ("session.end".into(), None)]);

    // Errors are JSON with stable codes.
    let (status, e) = stack.call("PUT", "/api/sessions", &alice, serde_json::Value::Null).await;
    assert_eq!((status, e["error"]["code"].as_str()), (405, Some("method_not_allowed")));
    let (status, e) = stack.mint(&alice, serde_json::json!({ "region_hint": "no such/region" })).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_request")), "{e}");
    let (status, e) = stack.mint(&alice, serde_json::json!({ "surprise": 1 })).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_request")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn placement_follows_the_hint_and_rtts() {
    let stack = Stack::start("").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let _us = stack.add_pool("us", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let (_, m) = stack.mint(&alice, serde_json::json!({ "rtts": { "eu": 120, "us": 20 } })).await;
    assert_eq!(m["region"], "us", "{m}");
    let (_, m) = stack.mint(&alice, serde_json::json!({ "region_hint": "eu", "rtts": { "eu": 120, "us": 20 } })).await;
    assert_eq!(m["region"], "eu", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn quotas_hold_under_concurrent_mints() {
    let stack = Stack::start("SPIN_VARIABLE_MAX_LIVE_SESSIONS=2\nSPIN_VARIABLE_MINTS_PER_MINUTE=4\n").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = std::sync::Arc::new(stack.id_token("alice"));
    let stack = std::sync::Arc::new(stack);
    // Four concurrent mints against a limit of two live sessions: exactly two succeed.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (stack, alice) = (stack.clone(), alice.clone());
            tokio::spawn(async move { stack.mint(&alice, serde_json::json!({})).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let ok: Vec<_> = results.iter().filter(|(s, _)| *s == 201).collect();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!((ok.len(), refused.len()), (2, 2), "{results:?}");
    assert!(refused.iter().all(|(_, e)| e["error"]["code"] == "quota_exceeded"), "{results:?}");

    // Other users are not affected.
    let bob = stack.id_token("bob");
    assert_eq!(stack.mint(&bob, serde_json::json!({})).await.0, 201);

    // Ending one frees a slot; then the rate limit (4 per minute, refused mints not counted) stops alice.
    let first = sid(&ok[0].1);
    assert_eq!(stack.call("DELETE", &format!("/api/sessions/{first}"), &alice, serde_json::Value::Null).await.0, 200);
    let (status, m) = stack.mint(&alice, serde_json::json!({})).await;
    assert_eq!(status, 201, "{m}");
    let second = sid(&ok[1].1);
    assert_eq!(stack.call("DELETE", &format!("/api/sessions/{second}"), &alice, serde_json::Value::Null).await.0, 200);
    let (status, m) = stack.mint(&alice, serde_json::json!({})).await;
    assert_eq!(status, 201, "{m}");
    let third = sid(&m);
    assert_eq!(stack.call("DELETE", &format!("/api/sessions/{third}"), &alice, serde_json::Value::Null).await.0, 200);
    let auth = format!("Bearer {alice}");
    let headers = [("authorization", auth.as_str())];
    let (status, headers, body) = support::send(&stack.host.url, "POST", "/api/sessions", &headers, Vec::new()).await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(String::from_utf8_lossy(&body).contains("too many new sessions"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_failing_region_fails_over_without_leftovers() {
    let stack = Stack::start("SPIN_VARIABLE_POOL_TIMEOUT_MS=500\n").await;
    let near = stack.add_pool("near", Mode::Refuse).await;
    let far = stack.add_pool("far", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let hint = serde_json::json!({ "region_hint": "near" });

    // A refusing region: the next one takes the session.
    let (status, m) = stack.mint(&alice, hint.clone()).await;
    assert_eq!((status, m["region"].as_str()), (201, Some("far")), "{m}");
    let s1 = sid(&m);
    assert_eq!(far.pool.started(), vec![s1.clone()]);
    // Each region tried gets its own session id: a late start elsewhere can never take this one over.
    let near_attempts = near.pool.started();
    assert_eq!(near_attempts.len(), 1);
    assert_ne!(near_attempts[0], s1, "the refused attempt had its own id");
    assert!(near.pool.stopped().is_empty(), "a refused start started nothing");

    // A hung region: it is told to stop the session before the next region is tried.
    near.pool.set_mode(Mode::Hang);
    let (status, m) = stack.mint(&alice, hint.clone()).await;
    assert_eq!((status, m["region"].as_str()), (201, Some("far")), "{m}");
    let s2 = sid(&m);
    let hung = near.pool.started().last().cloned().unwrap();
    assert_ne!(hung, s2, "the hung attempt had its own id");
    assert_eq!(near.pool.stopped(), vec![hung], "the timed-out region stops what it may have started");

    // Every region failing: 503, no session row, and nothing left running anywhere.
    far.pool.set_mode(Mode::Refuse);
    let (status, e) = stack.mint(&alice, hint).await;
    assert_eq!((status, e["error"]["code"].as_str()), (503, Some("no_region_available")), "{e}");
    let s3 = near.pool.started().last().cloned().unwrap();
    assert_eq!(near.pool.stopped().last(), Some(&s3));
    let rows = stack.sessions().await;
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, [s1.as_str(), s2.as_str()], "the failed mint left no session");
    assert!(rows.iter().all(|r| r.1 == "running" && r.2.as_deref() == Some("far")), "{rows:?}");
    assert!(near.pool.with_log(|l| l.rejected.is_empty()) && far.pool.with_log(|l| l.rejected.is_empty()));

    // No pool at all: 503 with Retry-After, not a hang.
    stack.db.execute("DELETE FROM pool_agents", &[]).await.unwrap();
    let (status, e) = stack.mint(&alice, serde_json::json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (503, Some("no_region_available")), "{e}");
}

/// A client that hangs up in the middle of a mint does not cut the mint off: the function runs to its
/// end (the host moves it off the closed connection), so the hung region is still told to stop and the
/// session lands whole in the next one, instead of a half-made session and a runner nobody stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_mint_whose_client_hangs_up_still_finishes() {
    use tokio::io::AsyncWriteExt;
    let stack = Stack::start("SPIN_VARIABLE_POOL_TIMEOUT_MS=500\n").await;
    let near = stack.add_pool("near", Mode::Hang).await;
    let far = stack.add_pool("far", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let body = r#"{"region_hint":"near"}"#;
    let mut client = tokio::net::TcpStream::connect(stack.host.addr).await.unwrap();
    client.write_all(support::http1::Request::new("POST", "/api/sessions", &alice, body).bytes()).await.unwrap();
    // Gone while the function waits for the hung region (it gives up on it after 500 ms).
    while near.pool.started().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(client);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while far.pool.started().is_empty() || stack.sessions().await.iter().any(|r| r.1 != "running") {
        assert!(std::time::Instant::now() < deadline, "the mint did not finish: {:?}", stack.sessions().await);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let hung = near.pool.started();
    assert_eq!(near.pool.stopped(), hung, "the hung region was told to stop its attempt");
    let rows = stack.sessions().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2.as_deref()), (far.pool.started()[0].as_str(), Some("far")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn stopped_database_gives_503_then_recovers() {
    let mut stack = Stack::start("").await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    assert_eq!(stack.mint(&alice, serde_json::json!({})).await.0, 201);
    stack.pg.as_mut().expect("a private cluster").stop().unwrap();
    let started = std::time::Instant::now();
    let (status, e) = stack.mint(&alice, serde_json::json!({})).await;
    eprintln!("503 after {:?}", started.elapsed());
    assert_eq!((status, e["error"]["code"].as_str()), (503, Some("database_unavailable")), "{e}");
    // A guard against hanging, not a performance figure: the connect timeout is one second.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    stack.pg.as_mut().expect("a private cluster").restart().unwrap();
    // The pool registry is durable; the pool heartbeats again after the outage.
    let (status, m) = stack.mint(&alice, serde_json::json!({})).await;
    assert!(status == 201 || m["error"]["code"] == "no_region_available", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn key_rotation_keeps_old_tokens_valid_until_they_expire() {
    let (a, b) = (vector_jwk("pyjwt-rs256.json"), vector_jwk("rfc7515-a2.json"));
    // Step 1: B is published as the next key while A signs.
    let stack = Stack::start(&format!("SPIN_VARIABLE_NEXT_SIGNING_KEY='{b}'\n")).await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let (_, m) = stack.mint(&alice, serde_json::json!({})).await;
    let (old_sid, old_token) = (sid(&m), m["token"].as_str().unwrap().to_owned());
    assert_eq!(verify_at_edge(&stack.host.url, &old_token, Scope::Attach, &old_sid).await.kid().as_str(), "pyjwt-1");

    // Step 2: B is promoted, A stays published as the previous key: old and new tokens both verify.
    let env = |extra: &str| {
        format!(
            "SPIN_VARIABLE_SIGNING_KEY='{b}'\nSPIN_VARIABLE_TOKEN_ISSUER={TOKEN_ISSUER}\n\
             SPIN_VARIABLE_DATABASE_URL={}\nSPIN_VARIABLE_DATABASE_HOST=127.0.0.1:{}\n{extra}",
            stack.db_url,
            stack.pg.as_ref().expect("a private cluster").port()
        )
    };
    let promoted = start(&env(&format!("SPIN_VARIABLE_PREVIOUS_SIGNING_KEY='{a}'\n"))).await;
    assert_eq!(verify_at_edge(&promoted.url, &old_token, Scope::Attach, &old_sid).await.kid().as_str(), "pyjwt-1");
    let keys = served_keys(&promoted.url).await;
    let kids: Vec<&str> = keys.keys().iter().map(|k| k.kid().as_str()).collect();
    assert_eq!(kids, ["rfc7515-a2", "pyjwt-1"]);

    // Step 3: after the old tokens' lifetime, A is removed, and tokens it signed stop verifying.
    let done = start(&env("")).await;
    let validator = Validator::new(ValidationOptions::new(TOKEN_ISSUER, EDGE_AUDIENCE));
    let expect = Expectation { scope: Scope::Attach, session: Some(&old_sid) };
    let result = validator.verify(&old_token, &served_keys(&done.url).await, &RingVerifier, expect, now()).await;
    assert!(result.is_err(), "a retired key verifies nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_full_host_answers_503_instead_of_queueing() {
    // Two instances at a time; mints waiting on a hung pool hold them.
    let stack = std::sync::Arc::new(Stack::start_limited("SPIN_VARIABLE_POOL_TIMEOUT_MS=3000\n", 2).await);
    let slow = stack.add_pool("slow", Mode::Accept).await;
    let alice = stack.id_token("alice");
    // A first mint lets the pool fetch and cache the control plane's keys.
    assert_eq!(stack.mint(&alice, serde_json::json!({})).await.0, 201);
    slow.pool.set_mode(Mode::Hang);
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (stack, alice) = (stack.clone(), alice.clone());
            tokio::spawn(async move { stack.mint(&alice, serde_json::json!({})).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(busy.iter().all(|b| !b.is_finished()), "both mints wait for the hung pool");
    let (status, headers, body) = support::send(&stack.host.url, "GET", "/api/regions", &[], Vec::new()).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("overloaded"));
    assert_eq!(headers["retry-after"], "1");
    for b in busy {
        assert_eq!(b.await.unwrap().0, 503, "a hung pool's mint fails over to nothing");
    }
    assert_eq!(support::request(&stack.host.url, "GET", "/api/regions").await.0, 200, "the slots are free again");
}

/// A session the edge ends while its runner is still starting stays ended: the mint answers 410, stops
/// the runner it started and leaves no session behind, and no start is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn a_session_ended_while_its_runner_starts_stays_ended() {
    let stack = Stack::start("SPIN_VARIABLE_POOL_TIMEOUT_MS=5000\n").await;
    let eu = stack.add_pool("eu", Mode::Slow(std::time::Duration::from_millis(500))).await;
    let alice = stack.id_token("alice");
    let end_it = async {
        while eu.pool.started().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let id = eu.pool.started()[0].clone();
        let lost = serde_json::json!({ "reason": "runner_lost" });
        let (status, ended) =
            stack.call("POST", &format!("/internal/sessions/{id}/ended"), support::stack::INTERNAL_KEY, lost).await;
        assert_eq!((status, ended["changed"].as_bool()), (200, Some(true)), "{ended}");
        id
    };
    let ((status, e), id) = tokio::join!(stack.mint(&alice, serde_json::json!({})), end_it);
    assert_eq!((status, e["error"]["code"].as_str()), (410, Some("session_ended")), "{e}");
    assert_eq!(eu.pool.stopped(), vec![id.clone()], "the runner it started is stopped");
    assert!(stack.sessions().await.is_empty(), "no session left: {:?}", stack.sessions().await);
    let sql = "SELECT action, detail->>'reason' FROM audit_log WHERE session_id = $1";
    let audit = stack.db.query(sql, &[&id.as_str()]).await.unwrap();
    let actions: Vec<(String, String)> = audit.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(actions, [("session.ended".into(), "runner_lost".into())], "the start is not audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn the_edge_reports_ended_sessions_once_and_only_with_the_internal_key() {
    let stack = Stack::start("").await;
    let _pool = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let (status, m) = stack.mint(&alice, serde_json::json!({})).await;
    assert_eq!(status, 201, "{m}");
    let id = sid(&m);
    let path = format!("/internal/sessions/{id}/ended");
    let lost = serde_json::json!({ "reason": "runner_lost" });

    // Not the edge: refused, and the session stays running.
    assert_eq!(stack.call("POST", &path, "", lost.clone()).await.0, 401);
    assert_eq!(stack.call("POST", &path, "not-the-key", lost.clone()).await.0, 401);
    assert_eq!(stack.call("POST", &path, &alice, lost.clone()).await.0, 401, "a user's ID token is not the key");
    let (_, shown) = stack.call("GET", &format!("/api/sessions/{id}"), &alice, serde_json::Value::Null).await;
    assert_eq!(shown["state"], "running");

    let key = support::stack::INTERNAL_KEY;
    let (status, e) = stack.call("POST", &path, key, serde_json::json!({ "reason": "bored" })).await;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_reason")), "{e}");
    let (status, e) = stack.call("POST", "/internal/sessions/no%2Fslash/ended", key, lost.clone()).await;
    assert!(status == 400 || status == 404, "a malformed id is refused: {status} {e}");

    let (status, first) = stack.call("POST", &path, key, lost.clone()).await;
    assert_eq!((status, first["changed"].as_bool()), (200, Some(true)), "{first}");
    let exited = serde_json::json!({ "reason": "exited", "detail": "status 0" });
    let (status, again) = stack.call("POST", &path, key, exited).await;
    assert_eq!((status, again["changed"].as_bool()), (200, Some(false)), "idempotent: {again}");
    let (_, shown) = stack.call("GET", &format!("/api/sessions/{id}"), &alice, serde_json::Value::Null).await;
    assert_eq!(
        (shown["state"].as_str(), shown["end_reason"].as_str()),
        (Some("ended"), Some("runner_lost")),
        "{shown}"
    );
}

/// Sleeps until the wall clock is `at_ms` milliseconds into a minute (the next time it is).
async fn until_in_the_minute(at_ms: u64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let wait = (at_ms + 60_000 - now % 60_000) % 60_000;
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn no_double_burst_across_a_minute_edge_and_every_user_route_is_limited() {
    let limits = "SPIN_VARIABLE_MAX_LIVE_SESSIONS=100\nSPIN_VARIABLE_MINTS_PER_MINUTE=2\n\
                  SPIN_VARIABLE_USER_BURST=3\nSPIN_VARIABLE_USER_PER_MINUTE=1\n\
                  SPIN_VARIABLE_POOL_HEALTH_TTL_SECS=600\n";
    let stack = Stack::start(limits).await;
    let _eu = stack.add_pool("eu", Mode::Accept).await;
    let alice = stack.id_token("alice");
    // (The pool's one heartbeat stays fresh through the wait for the minute's edge.)
    // Two mints just before a minute turns, one just after: a fixed window per minute would have let
    // it through (four in a second); the bucket has had 0.07 of a token back.
    until_in_the_minute(58_800).await;
    for _ in 0..2 {
        let (status, m) = stack.mint(&alice, serde_json::json!({})).await;
        assert_eq!(status, 201, "{m}");
    }
    until_in_the_minute(300).await;
    let (status, e) = stack.mint(&alice, serde_json::json!({})).await;
    assert_eq!((status, e["error"]["code"].as_str()), (429, Some("quota_exceeded")), "{e}");

    // Listing, refreshing, ending and the artifact routes each have a bucket per user: three at once.
    let null = serde_json::Value::Null;
    for _ in 0..3 {
        assert_eq!(stack.call("GET", "/api/sessions", &alice, null.clone()).await.0, 200);
    }
    let (status, e) = stack.call("GET", "/api/sessions", &alice, null.clone()).await;
    assert_eq!((status, e["error"]["code"].as_str()), (429, Some("rate_limited")), "{e}");
    let bob = stack.id_token("bob");
    assert_eq!(stack.call("GET", "/api/sessions", &bob, null.clone()).await.0, 200, "bob has his own");
}

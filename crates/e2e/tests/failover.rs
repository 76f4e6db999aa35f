//! Multi-region failover at the API level, with two real regions (a pool agent each, real runners), the
//! real control plane and the edge under `wrangler dev`:
//!
//! - region A stops (its agent and runners killed): its browsers hear "runner lost" after the grace
//!   period, and the control plane records the session as ended by it; new sessions land in B at once (the mint fails over) and A leaves placement within the
//!   health TTL; A restarted takes sessions again;
//! - A's agent loses its connection to the edge (its path down, heartbeats still fresh): the pool room
//!   refuses at once and the mint lands in B without waiting for a health TTL; the path back, A takes
//!   sessions again;
//! - A answers too slowly: the mint fails over to B, and no session or runner is left behind in A (the
//!   late start is followed by the stop the mint sent, on the same connection).
//!
//! The figures are printed; the assertions are about outcomes, not durations.

use edgeshell_core::protocol::{CloseCode, Credential};
use edgeshell_e2e::pool_proxy::{PathMode, PoolProxy};
use edgeshell_e2e::{wait_until, Session, Stack, StackOptions};
use edgeshell_room_host::browser::Browser;
use std::time::{Duration, Instant};

const USER: &str = "carol";
const WAIT: Duration = Duration::from_secs(20);

async fn mint_in(stack: &Stack, hint: &str) -> Session {
    stack.mint_with(USER, serde_json::json!({ "region_hint": hint })).await.expect("a mint succeeds")
}

async fn shell(session: &Session) -> Browser {
    let mut browser =
        Browser::attach(&session.ws_url, &Credential::Token(session.token.expose().to_owned())).await.unwrap();
    browser.input(b"echo alive-$((40+2))\n").await;
    browser.expect_from(0, "alive-42", WAIT).await;
    browser
}

async fn region_available(stack: &Stack, region: &str) -> bool {
    let (_, body) = stack.call(reqwest::Method::GET, "/api/regions", USER, serde_json::Value::Null).await.unwrap();
    body["regions"].as_array().unwrap().iter().any(|r| r["region"] == region && r["available"] == true)
}

/// Sessions of `region` the database still counts as live (sessions whose runner was lost end as their
/// rooms report it, so a later list may hold fewer).
async fn live_sessions_in(stack: &Stack, region: &str) -> Vec<String> {
    let rows = stack
        .control
        .db
        .query("SELECT id FROM sessions WHERE region = $1 AND state <> 'ended' ORDER BY id", &[&region])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn regions_fail_over_and_come_back() {
    let options = StackOptions { regions: vec!["eu".into(), "us".into()], ..StackOptions::default() };
    let mut stack = Stack::start(options).await.expect("the stack starts");

    // ---- A stops.
    let in_a = mint_in(&stack, "eu").await;
    assert_eq!(in_a.region, "eu", "the hint is honoured while eu is healthy");
    let mut browser = shell(&in_a).await;
    let stopped = Instant::now();
    stack.stop_region("eu").await.unwrap();
    let first_in_b = mint_in(&stack, "eu").await;
    let placed_in_b = stopped.elapsed();
    assert_eq!(first_in_b.region, "us", "the mint fails over to the healthy region");
    let closed = browser.expect_close(WAIT).await;
    let lost_after = stopped.elapsed();
    assert_eq!(closed.map(|(code, _)| code), Some(CloseCode::RunnerLost), "the browser hears runner lost");
    assert!(wait_until(WAIT, || async { !region_available(&stack, "eu").await }).await, "eu leaves placement");
    let unavailable_after = stopped.elapsed();
    let direct = Instant::now();
    let second_in_b = mint_in(&stack, "eu").await;
    assert_eq!(second_in_b.region, "us");
    let direct_mint = direct.elapsed();
    shell(&second_in_b).await;
    eprintln!(
        "figure: region stop -> new session placed in the other region: {:.0} ms (mint with a failed attempt)",
        placed_in_b.as_secs_f64() * 1000.0
    );
    eprintln!(
        "figure: region stop -> browser hears runner lost: {:.0} ms (grace 2 s)",
        lost_after.as_secs_f64() * 1000.0
    );
    eprintln!(
        "figure: region stop -> region out of placement: {:.0} ms (health TTL 5 s); a mint then takes {:.0} ms",
        unavailable_after.as_secs_f64() * 1000.0,
        direct_mint.as_secs_f64() * 1000.0
    );
    // The lost session's room told the control plane: no session of eu is live any more, and the lost
    // one says why.
    assert!(
        wait_until(WAIT, || async { live_sessions_in(&stack, "eu").await.is_empty() }).await,
        "sessions live in eu: {:?}",
        live_sessions_in(&stack, "eu").await
    );
    let row = stack
        .control
        .db
        .query_one("SELECT state, end_reason FROM sessions WHERE id = $1", &[&in_a.id.as_str()])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<String>>(1)),
        ("ended".into(), Some("runner_lost".into()))
    );

    // ---- A comes back.
    let restarted = Instant::now();
    stack.start_region("eu").await.unwrap();
    let mut back = None;
    for _ in 0..100 {
        let session = mint_in(&stack, "eu").await;
        if session.region == "eu" {
            back = Some(session);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = back.expect("eu takes sessions again");
    eprintln!("figure: region restart -> takes sessions again: {:.0} ms", restarted.elapsed().as_secs_f64() * 1000.0);
    shell(&back).await;

    // ---- A's path to the edge goes down: its agent still heartbeats (the registry calls eu healthy),
    // but the pool room knows no agent is connected and refuses at once: no health-TTL wait.
    let proxy = PoolProxy::start(&stack.edge.url).await.unwrap();
    stack.stop_region("eu").await.unwrap();
    stack.start_region_with("eu", &[("EDGESHELL_POOL_EDGE_URL", proxy.url.as_str())]).await.unwrap();
    let through_proxy = mint_in(&stack, "eu").await;
    assert_eq!(through_proxy.region, "eu", "eu serves through the proxy");
    let before = live_sessions_in(&stack, "eu").await;
    let runners_before = stack.agent("eu").unwrap().runners().await.unwrap().len();
    proxy.set_mode(PathMode::Down);
    let cut = Instant::now();
    let refused = mint_in(&stack, "eu").await;
    let placed_elsewhere = cut.elapsed();
    assert_eq!(refused.region, "us", "a region with no connected agent is skipped");
    shell(&refused).await;
    let after = live_sessions_in(&stack, "eu").await;
    assert!(after.iter().all(|s| before.contains(s)), "a session was left in the unreachable region: {after:?}");
    assert_eq!(stack.agent("eu").unwrap().runners().await.unwrap().len(), runners_before, "no runner started in eu");
    eprintln!(
        "figure: agent socket closed -> new session placed elsewhere: {:.0} ms (heartbeats still fresh)",
        placed_elsewhere.as_secs_f64() * 1000.0
    );

    // ---- A's path is back: the agent dials again and eu takes sessions.
    proxy.set_mode(PathMode::Pass);
    assert!(
        wait_until(WAIT, || async { mint_in(&stack, "eu").await.region == "eu" }).await,
        "eu takes sessions once its agent is connected again"
    );

    // ---- A answers too slowly (commands reach it after the control plane's 3 s pool timeout).
    proxy.set_mode(PathMode::Delay(Duration::from_millis(3500)));
    let slow_started = Instant::now();
    let slow = mint_in(&stack, "eu").await;
    let slow_mint = slow_started.elapsed();
    assert_eq!(slow.region, "us", "a slow region is given up on");
    let mut browser = shell(&slow).await;
    let before = live_sessions_in(&stack, "eu").await;
    assert!(before.iter().all(|s| *s != slow.id.as_str()), "the session is not eu's");
    // The late start reaches eu's agent after the mint gave up, and the stop the mint sent follows it
    // on the same connection: the runner it started is stopped, and never takes the session over.
    let eu = stack.agent("eu").unwrap();
    let reaped = wait_until(Duration::from_secs(15), || async {
        let runners = eu.runners().await.unwrap();
        !runners.iter().any(|r| r["session_id"] == slow.id.as_str())
    })
    .await;
    proxy.set_mode(PathMode::Pass);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runners = eu.runners().await.unwrap();
    assert!(
        reaped && !runners.iter().any(|r| r["session_id"] == slow.id.as_str()),
        "the late runner in eu is gone: {runners:?}"
    );
    browser.input(b"echo still-$((6*7))\n").await;
    let from = browser.output.len();
    browser.expect_from(from, "still-42", WAIT).await;
    eprintln!("figure: mint with a slow first region: {:.0} ms (pool timeout 3 s)", slow_mint.as_secs_f64() * 1000.0);
}

//! Pools dial out, with the real agents, the real control plane and the edge under `wrangler dev`
//! (its `PoolRoom` Durable Objects):
//!
//! - two agents share a region: one killed, new sessions land on its sibling at once (the room knows
//!   the socket closed; no health TTL), and the sibling's sessions carry on;
//! - an agent's socket cut and restored: a stop submitted while it is away waits in the room and is
//!   carried out once when it is back; a start submitted while it is away is refused at once and never
//!   carried out later;
//! - a captured start command, replayed after its agent restarted, is refused by the room's stored
//!   ledger (the restarted agent's own memory of used commands is empty);
//! - a revoked pool key: its agent's open socket is closed at the room's next key check, and it cannot
//!   connect again;
//! - the room's ledger, stored row by row in the object's SQLite, survives the edge's restart (a
//!   captured start is still refused), and a ledger an older room stored whole moves to rows on load,
//!   its token ids still refused.
//!
//! The figures are printed; the assertions are about outcomes, not durations.

use edgeshell_core::protocol::Credential;
use edgeshell_e2e::pool_proxy::{PathMode, PoolProxy};
use edgeshell_e2e::{wait_until, Session, Stack, StackOptions};
use edgeshell_room_host::browser::Browser;
use std::time::{Duration, Instant};

const USER: &str = "dana";
const WAIT: Duration = Duration::from_secs(20);

/// One local stack at a time: each starts its own `wrangler dev`.
static ONE_STACK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn shell(session: &Session) -> Browser {
    let mut browser =
        Browser::attach(&session.ws_url, &Credential::Token(session.token.expose().to_owned())).await.unwrap();
    browser.input(b"echo alive-$((40+2))\n").await;
    browser.expect_from(0, "alive-42", WAIT).await;
    browser
}

/// The name of the agent holding `session`'s runner.
async fn holder(stack: &Stack, session: &str) -> Option<String> {
    for (_, agent) in &stack.agents {
        if agent.runners().await.unwrap().iter().any(|r| r["session_id"] == session) {
            return Some(agent.name.clone());
        }
    }
    None
}

/// A counter of the agent's metrics.
async fn metric(url: &str, line_start: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn a_killed_agent_leaves_its_sibling_taking_sessions_at_once() {
    let _one = ONE_STACK.lock().await;
    let options = StackOptions { agents_per_region: 2, ..StackOptions::default() };
    let mut stack = Stack::start(options).await.expect("the stack starts");
    // Sessions spread over both agents (the least loaded first).
    let first = stack.mint(USER).await.unwrap();
    let second = stack.mint(USER).await.unwrap();
    let (a, b) = (holder(&stack, first.id.as_str()).await.unwrap(), holder(&stack, second.id.as_str()).await.unwrap());
    assert_ne!(a, b, "two agents, two sessions: one each");
    let mut survivor = shell(&second).await;

    let killed = Instant::now();
    stack.kill_agent(&a).await.unwrap();
    let next = stack.mint(USER).await.unwrap();
    let placed = killed.elapsed();
    assert_eq!(next.region, "eu");
    assert_eq!(holder(&stack, next.id.as_str()).await.as_deref(), Some(b.as_str()), "the sibling took it");
    shell(&next).await;
    // The sibling's own session carries on.
    survivor.input(b"echo still-$((6*7))\n").await;
    let from = survivor.output.len();
    survivor.expect_from(from, "still-42", WAIT).await;
    eprintln!("figure: agent killed -> new session started on its sibling: {:.0} ms", placed.as_secs_f64() * 1000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn a_cut_socket_loses_no_command_and_repeats_none() {
    let _one = ONE_STACK.lock().await;
    let mut stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
    let proxy = PoolProxy::start(&stack.edge.url).await.unwrap();
    stack.stop_region("eu").await.unwrap();
    stack.start_region_with("eu", &[("EDGESHELL_POOL_EDGE_URL", proxy.url.as_str())]).await.unwrap();
    let session = stack.mint(USER).await.unwrap();
    shell(&session).await;
    let agent_url = stack.agent("eu").unwrap().url.clone();
    let stops = "edgeshell_pool_commands_total{region=\"eu\",backend=\"local\",kind=\"stop\"}";
    let starts = "edgeshell_pool_commands_total{region=\"eu\",backend=\"local\",kind=\"start\"}";
    let starts_before = metric(&agent_url, starts).await;

    // The socket is cut and stays down.
    proxy.set_mode(PathMode::Down);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A stop while the agent is away waits in the room for the agent holding the session.
    let (token, body) = stack.stop_command("eu", &session.id).unwrap();
    let (status, answer) = stack.submit_command("eu", &token, &body, Duration::from_millis(500)).await.unwrap();
    assert_eq!((status, answer["queued"].as_bool()), (202, Some(true)), "{answer}");
    // A start while it is away is refused at once, never kept for later.
    let (_, start_token, start_body) = stack.start_command("eu").unwrap();
    let (status, answer) = stack.submit_command("eu", &start_token, &start_body, WAIT).await.unwrap();
    assert_eq!((status, answer["error"]["code"].as_str()), (503, Some("no_pool_agent")), "{answer}");
    assert_eq!(holder(&stack, session.id.as_str()).await.as_deref(), Some("eu-a"), "the runner lives on meanwhile");

    // The path is back: the agent dials again, and the stop is carried out, once.
    let restored = Instant::now();
    proxy.set_mode(PathMode::Pass);
    assert!(
        wait_until(WAIT, || async { holder(&stack, session.id.as_str()).await.is_none() }).await,
        "the queued stop reached the agent"
    );
    eprintln!(
        "figure: socket restored -> queued stop carried out: {:.0} ms",
        restored.elapsed().as_secs_f64() * 1000.0
    );
    // Long enough for a silent-edge check to have cut a healthy connection (it does not: pongs arrive).
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(metric(&agent_url, stops).await, 1, "the stop was carried out once");
    let connects = "edgeshell_pool_edge_connects_total{region=\"eu\",backend=\"local\"}";
    assert_eq!(metric(&agent_url, connects).await, 2, "connected once, and once again after the cut");
    assert_eq!(metric(&agent_url, starts).await, starts_before, "the refused start never reached the agent");
    // Sent again, the stop's token is refused by the room: one command, one use.
    let (status, answer) = stack.submit_command("eu", &token, &body, WAIT).await.unwrap();
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("replayed_token")), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn a_captured_start_replayed_after_the_agent_restarts_is_refused() {
    let _one = ONE_STACK.lock().await;
    let mut stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
    let (sid, token, body) = stack.start_command("eu").unwrap();
    let (status, answer) = stack.submit_command("eu", &token, &body, WAIT).await.unwrap();
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["session_id"], sid.as_str());

    // The agent restarts: it remembers no command it carried out.
    stack.kill_agent("eu-a").await.unwrap();
    stack.start_agent_with("eu-a", &[]).await.unwrap();
    let (status, answer) = stack.submit_command("eu", &token, &body, WAIT).await.unwrap();
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("replayed_token")), "{answer}");
    assert_eq!(holder(&stack, sid.as_str()).await, None, "nothing was started again");
    // A forged body under the captured token is refused before any agent sees it.
    let forged = body.replace("\"deadline\":", "\"deadline\":1");
    let (status, answer) = stack.submit_command("eu", &token, &forged, WAIT).await.unwrap();
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn a_revoked_key_is_cut_off_and_cannot_connect_again() {
    let _one = ONE_STACK.lock().await;
    let options = StackOptions { edge_vars: vec![("POOL_KEY_RECHECK_SECS", "1".into())], ..StackOptions::default() };
    let stack = Stack::start(options).await.expect("the stack starts");
    let session = stack.mint(USER).await.unwrap();
    shell(&session).await;
    let agent_url = stack.agent("eu").unwrap().url.clone();
    let connected = "edgeshell_pool_edge_connected{region=\"eu\",backend=\"local\"}";
    let connects = "edgeshell_pool_edge_connects_total{region=\"eu\",backend=\"local\"}";
    assert_eq!(metric(&agent_url, connected).await, 1);
    let revoked = Instant::now();
    stack.control.db.execute("UPDATE pool_api_keys SET revoked_at = now() WHERE region = 'eu'", &[]).await.unwrap();
    assert!(
        wait_until(WAIT, || async { metric(&agent_url, connected).await == 0 }).await,
        "the revoked key's socket was closed"
    );
    eprintln!(
        "figure: key revoked -> its agent's socket closed: {:.0} ms (recheck every 1 s)",
        revoked.elapsed().as_secs_f64() * 1000.0
    );
    let after = metric(&agent_url, connects).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(metric(&agent_url, connected).await, 0, "it cannot connect again");
    assert_eq!(metric(&agent_url, connects).await, after, "no connection was accepted since");
    // New sessions find no agent there.
    let (status, body) = stack.call(reqwest::Method::POST, "/api/sessions", USER, serde_json::json!({})).await.unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("no_region_available")), "{body}");
}

/// A token's id (`jti`), read from its claims.
fn jti_of(token: &edgeshell_core::secret::Secret) -> String {
    let claims = token.expose().split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&edgeshell_core::base64url::decode(claims).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// Waits until the agent at `url` has connected to the edge `times` times and is connected now.
async fn connected_again(url: &str, times: u64) {
    let connected = "edgeshell_pool_edge_connected{region=\"eu\",backend=\"local\"}";
    let connects = "edgeshell_pool_edge_connects_total{region=\"eu\",backend=\"local\"}";
    assert!(
        wait_until(WAIT, || async { metric(url, connected).await == 1 && metric(url, connects).await >= times }).await,
        "the agent did not connect again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn the_ledger_is_stored_by_rows_and_survives_the_edge_restarting() {
    use edgeshell_core::pool_ledger::{Holder, Kind, Ledger, Outcome, Payload};
    let _one = ONE_STACK.lock().await;
    let mut stack = Stack::start(StackOptions::default()).await.expect("the stack starts");
    let agent_url = stack.agent("eu").unwrap().url.clone();
    let (sid, token, body) = stack.start_command("eu").unwrap();
    let (status, answer) = stack.submit_command("eu", &token, &body, WAIT).await.unwrap();
    assert_eq!(status, 201, "{answer}");
    // Stored by rows: the token id, the command, where its session is.
    let rows = stack.edge.pool_ledger_rows().unwrap();
    assert!(rows.contains(&("used".to_owned(), jti_of(&token))), "{rows:?}");
    assert!(rows.contains(&("placed".to_owned(), sid.to_string())), "{rows:?}");
    assert!(rows.iter().any(|(kind, _)| kind == "command"), "{rows:?}");

    // The edge restarts (every object evicted): its agent dials again, and the captured start is
    // refused from what the room stored.
    stack.edge.restart().await.unwrap();
    connected_again(&agent_url, 2).await;
    let (status, answer) = stack.submit_command("eu", &token, &body, WAIT).await.unwrap();
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("replayed_token")), "{answer}");

    // An older room stored its ledger whole: one start it took, by its token id.
    let (old_sid, old_token, old_body) = stack.start_command("eu").unwrap();
    let now = edgeshell_platform::clock::now();
    let mut old = Ledger::new(Duration::from_secs(50), Duration::from_secs(120));
    let payload = Payload { token: old_token.clone(), body: old_body.clone() };
    let id = old
        .submit(Kind::Start, old_sid.clone(), &jti_of(&old_token), now + Duration::from_secs(600), payload, now)
        .unwrap();
    let holder_then = Holder { agent: "eu-a".into(), connection: 1 };
    old.hand(id, &holder_then, now).unwrap();
    old.answer(&holder_then, id, Outcome::Refused("at capacity".into()), now).unwrap();
    stack.edge.restart_with_whole_pool_ledger(&serde_json::to_string(&old).unwrap()).await.unwrap();
    connected_again(&agent_url, 3).await;
    let (status, answer) = stack.submit_command("eu", &old_token, &old_body, WAIT).await.unwrap();
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("replayed_token")), "{answer}");
    assert_eq!(holder(&stack, old_sid.as_str()).await, None, "nothing was started");
    // It moved to rows (each room as it loads): the old table is gone, its token id is a row.
    assert!(
        wait_until(WAIT, || async { !stack.edge.pool_room_tables().unwrap().iter().any(|t| t == "pool_ledger") }).await,
        "the whole ledger stayed"
    );
    let rows = stack.edge.pool_ledger_rows().unwrap();
    assert!(rows.contains(&("used".to_owned(), jti_of(&old_token))), "{rows:?}");
}

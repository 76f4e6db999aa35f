//! The agent binary with its local backend, started as a real process: a signed start runs a real
//! runner that joins its room and serves a terminal; stop kills the whole tree and removes the working
//! directory; every unsigned, forged, replayed or misbound command is refused; capacity, duplicates and
//! deadlines hold; an agent killed and restarted adopts its healthy runners (their sessions carry on)
//! and reaps what is left of the others; runners of an agent that never comes back end when its lease
//! lapses; the session's program cannot find its join token anywhere; and, the agent being root, each
//! session runs as a user of its own: a fork bomb exhausts only its own session, and a process it
//! detached dies with it, whether the session is stopped or its agent is gone for good.

mod support;

use edgeshell_core::api_error::ApiError;
use edgeshell_core::pool_api::PoolCommand;
use edgeshell_core::protocol::Credential;
use edgeshell_room_host::browser::Browser;
use edgeshell_runner::process_tree;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

async fn wait_gone(pid: i32) {
    let until = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < until {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("process {pid} is still alive");
}

/// The runner of `sid` as the agent lists it: its pid.
async fn runner_pid(fixture: &Fixture, agent: &AgentProcess, sid: &edgeshell_core::ids::SessionId) -> i32 {
    let runners = fixture.runners(agent).await;
    let runner = runners.iter().find(|r| r["session_id"] == sid.as_str()).expect("the session's runner is listed");
    runner["runner"].as_str().and_then(|r| r.strip_prefix("pid:")).and_then(|p| p.parse().ok()).unwrap()
}

/// Types a line into `browser` and waits for its answer: the session is served.
async fn still_served(browser: &mut Browser, word: &str) {
    let from = browser.output.len();
    let (head, tail) = word.split_at(word.len() / 2);
    browser.input(format!("echo {head}''{tail}\n").as_bytes()).await;
    browser.expect_from(from, word, WAIT).await;
}

/// A few lines of the agent's metrics.
async fn metrics(fixture: &Fixture, agent: &AgentProcess) -> String {
    fixture.http.get(format!("{}/metrics", agent.url)).send().await.unwrap().text().await.unwrap()
}

/// Attaches a browser, starts `sleep` in the background, and returns the sleeper's pid.
async fn background_sleeper(fixture: &Fixture, sid: &edgeshell_core::ids::SessionId) -> (Browser, i32) {
    let credential = Credential::Token(fixture.attach_token(sid));
    let mut browser = Browser::attach(&fixture.room.attach_url(sid), &credential).await.unwrap();
    browser.input(b"nohup sleep 1000 >/dev/null 2>&1 & echo pi''d=$!\n").await;
    let at = browser.expect_from(0, "pid=", WAIT).await;
    let end = browser.expect_from(at, "\r\n", WAIT).await;
    let pid: i32 = String::from_utf8_lossy(&browser.output[at..end - 2]).trim().parse().unwrap();
    assert!(alive(pid));
    (browser, pid)
}

fn signal(agent: &AgentProcess, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(agent.pid).unwrap(), signal).unwrap();
}

#[tokio::test]
async fn a_signed_start_serves_a_terminal_and_stop_removes_everything() {
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let agent = spawn_agent(&fixture, state.path(), &[]).await;
    let sid = new_session();
    let (status, body) = fixture.start_runner(&agent, &sid, 600).await;
    assert_eq!(status, 201, "{body}");
    let started: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(started["session_id"], sid.as_str());

    let (mut browser, sleeper) = background_sleeper(&fixture, &sid).await;
    browser.input(b"echo cwd=$(pwd) mem=$(ulimit -v)\n").await;
    let workdir = state.path().join("work").join(sid.as_str());
    browser.expect_from(0, &format!("cwd={}", workdir.display()), WAIT).await;
    browser.expect_from(0, &format!("mem={}", 1024 * 1024), WAIT).await;
    let listed = fixture.runners(&agent).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["session_id"], sid.as_str());

    let (status, body) = fixture.stop_runner(&agent, &sid).await;
    assert_eq!(status, 200, "{body}");
    wait_gone(sleeper).await;
    assert!(!workdir.exists(), "the working directory outlived the runner");
    fixture.wait_for_runners(&agent, 0).await;
    let files: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["agent.lease"], "only the agent's lease is left");
    // Stopping again is fine.
    assert_eq!(fixture.stop_runner(&agent, &sid).await.0, 200);
    let metrics = fixture.http.get(format!("{}/metrics", agent.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("edgeshell_pool_runner_starts_total{region=\"eu\",backend=\"local\",result=\"ok\"} 1"));
    assert!(metrics.contains("edgeshell_pool_runner_start_seconds_count{region=\"eu\",backend=\"local\"} 1"));
}

#[tokio::test]
async fn unsigned_forged_replayed_and_misbound_commands_are_refused() {
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let agent = spawn_agent(&fixture, state.path(), &[]).await;
    let sid = new_session();
    let body = fixture.start_body(&sid, 600);
    let check = |(status, text): (u16, String), expected: u16, code: &str| {
        assert_eq!(status, expected, "{text}");
        let error = ApiError::from_body(text.as_bytes()).expect("an error of the table");
        assert_eq!(error.code.name(), code, "{text}");
    };

    check(fixture.post(None, body.clone()).await, 401, "unauthorized");
    check(fixture.post(Some("not.a.token"), body.clone()).await, 401, "unauthorized");
    // Signed by another key under the same kid: the signature fails.
    let other = edgeshell_dev_oidc::DevIssuer::start("127.0.0.1:0", "x").await.unwrap();
    let mut claims = edgeshell_core::issue::Issuer::new(fixture.issuer.issuer()).pool_command(
        &sid,
        &region(),
        &body,
        rand::random(),
        now(),
    );
    let forged = {
        let mut header_kid = other.sign_claims(&serde_json::to_value(&claims).unwrap()).unwrap();
        // Re-head the forgery with the real issuer's kid.
        let real_header = fixture.command_token(&sid, &region(), &body);
        let (real_head, _) = real_header.split_once('.').unwrap();
        let (_, rest) = header_kid.split_once('.').unwrap();
        header_kid = format!("{real_head}.{rest}");
        header_kid
    };
    check(fixture.post(Some(&forged), body.clone()).await, 401, "unauthorized");
    // Another region's audience.
    let elsewhere = fixture.command_token(&sid, &edgeshell_core::ids::RegionId::new("us").unwrap(), &body);
    check(fixture.post(Some(&elsewhere), body.clone()).await, 401, "unauthorized");
    // Expired.
    claims.exp = now().as_secs() - 120;
    claims.iat = claims.exp - 60;
    claims.nbf = claims.iat;
    check(fixture.post(Some(&fixture.sign(&claims)), body.clone()).await, 401, "unauthorized");
    // Signed for another body (a stop) but sent with this one.
    let stop = Fixture::stop_body(&sid);
    let for_stop = fixture.command_token(&sid, &region(), &stop);
    check(fixture.post(Some(&for_stop), body.clone()).await, 403, "forbidden");
    // Signed for another session.
    let other_sid = new_session();
    let other_body = fixture.start_body(&other_sid, 600);
    let for_other = fixture.command_token(&other_sid, &region(), &other_body);
    check(fixture.post(Some(&for_other), body.clone()).await, 403, "forbidden");
    // Garbage, properly signed, is a bad command.
    let garbage = b"{\"action\":\"explode\"}".to_vec();
    let garbage_token = fixture.command_token(&sid, &region(), &garbage);
    check(fixture.post(Some(&garbage_token), garbage).await, 400, "bad_command");
    fixture.wait_for_runners(&agent, 0).await;

    // The genuine command works once; the same token again is a replay.
    let token = fixture.command_token(&sid, &region(), &body);
    let (status, text) = fixture.post(Some(&token), body.clone()).await;
    assert_eq!(status, 201, "{text}");
    check(fixture.post(Some(&token), body.clone()).await, 401, "unauthorized");
    // Through the room as the control plane submits: the room refuses the replay itself.
    let token = fixture.command_token(&sid, &region(), &body);
    let (status, text) = fixture.submit(&token, body.clone()).await;
    assert_eq!(status, 409, "the agent's own replay check or the session's runner: {text}");
    check(fixture.submit(&token, body.clone()).await, 409, "replayed_token");
    // A fresh token for the same session: one runner per session.
    check(fixture.start_runner(&agent, &sid, 600).await, 409, "already_running");
    // Operator routes want the API key.
    let response = fixture.http.get(format!("{}/v1/runners", agent.url)).bearer_auth("esp_nope").send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(fixture.runners(&agent).await.len(), 1);
}

#[tokio::test]
async fn concurrent_replays_of_one_command_start_one_runner() {
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    // Room for all twenty in the pool room's count: every copy reaches the agent, which alone decides.
    let agent = spawn_agent(&fixture, state.path(), &[("EDGESHELL_POOL_CAPACITY", "32")]).await;
    let sid = new_session();
    let body = fixture.start_body(&sid, 600);
    let token = fixture.command_token(&sid, &region(), &body);
    let attempts = (0..20).map(|_| fixture.post(Some(&token), body.clone()));
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{results:?}");
    assert!(results.iter().all(|(s, _)| *s == 201 || *s == 401), "{results:?}");
    assert_eq!(fixture.runners(&agent).await.len(), 1);
}

#[tokio::test]
async fn capacity_and_deadlines_are_enforced() {
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let agent = spawn_agent(&fixture, state.path(), &[("EDGESHELL_POOL_CAPACITY", "1")]).await;
    let first = new_session();
    let (status, body) = fixture.start_runner(&agent, &first, 2).await;
    assert_eq!(status, 201, "{body}");
    // Refused: by the pool room, which counts the agent full, or by the agent itself.
    let (status, body) = fixture.start_runner(&agent, &new_session(), 600).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no_pool_agent") || body.contains("at_capacity"), "{body}");
    let (status, body) = fixture.post(Some("any"), fixture.start_body(&new_session(), 600)).await;
    assert_eq!(status, 503, "{body}");
    // The first runner's deadline is 2 s away: the runner stops itself and the slot frees.
    fixture.wait_for_runners(&agent, 0).await;
    let (status, body) = fixture.start_runner(&agent, &new_session(), 600).await;
    assert_eq!(status, 201, "{body}");
    // A deadline in the past is refused.
    let sid = new_session();
    let mut command: PoolCommand = serde_json::from_slice(&fixture.start_body(&sid, 600)).unwrap();
    if let PoolCommand::Start(s) = &mut command {
        s.deadline = now().as_secs() - 1;
    }
    let body = serde_json::to_vec(&command).unwrap();
    let token = fixture.command_token(&sid, &region(), &body);
    let (status, text) = fixture.post(Some(&token), body).await;
    assert!(status == 400 || status == 503, "{text}");
}

#[tokio::test]
async fn an_agent_killed_and_restarted_adopts_healthy_runners_and_reaps_the_rest() {
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let window = [("EDGESHELL_POOL_ADOPT_WITHIN_SECS", "30")];
    let mut agent = spawn_agent(&fixture, state.path(), &window).await;
    let (healthy, broken) = (new_session(), new_session());
    for sid in [&healthy, &broken] {
        assert_eq!(fixture.start_runner(&agent, sid, 600).await.0, 201);
    }
    let (mut browser, healthy_sleeper) = background_sleeper(&fixture, &healthy).await;
    let (_broken_browser, orphan) = background_sleeper(&fixture, &broken).await;
    let (healthy_runner, broken_runner) =
        (runner_pid(&fixture, &agent, &healthy).await, runner_pid(&fixture, &agent, &broken).await);
    let orphan_session = process_tree::stat(orphan).unwrap().session;
    let workdir = |sid: &edgeshell_core::ids::SessionId| state.path().join("work").join(sid.as_str());

    // A crash: no draining, no cleanup. The runners live on without their agent...
    signal(&agent, rustix::process::Signal::KILL);
    let _ = agent.child.wait().await;
    still_served(&mut browser, "alone-without-an-agent").await;
    // ...and one of them is lost as well, leaving its program's nohup'd child behind.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(broken_runner).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    wait_gone(broken_runner).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(orphan), "the orphan should outlive its runner until the restart reaps it");
    assert!(workdir(&broken).exists());

    let restarted = spawn_agent(&fixture, state.path(), &window).await;
    // The lost one's remains are removed...
    wait_gone(orphan).await;
    assert!(process_tree::members(&[orphan_session]).iter().all(|p| !alive(p.pid)));
    assert!(!workdir(&broken).exists(), "the lost runner's working directory was not removed");
    // ...the healthy one is held again, its session never interrupted.
    let listed = fixture.runners(&restarted).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["session_id"], healthy.as_str());
    assert_eq!(listed[0]["runner"], format!("pid:{healthy_runner}"));
    let text = metrics(&fixture, &restarted).await;
    assert!(text.contains("edgeshell_pool_reaped_total{region=\"eu\",backend=\"local\"} 1"), "{text}");
    assert!(text.contains("edgeshell_pool_adopted_total{region=\"eu\",backend=\"local\"} 1"), "{text}");
    assert!(alive(healthy_sleeper) && workdir(&healthy).exists());
    still_served(&mut browser, "adopted-and-served").await;
    // The new agent holds the lease: the runner outlives the first agent's window...
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(alive(healthy_runner));
    // ...and stops like its own: the whole session ends and its files go.
    assert_eq!(fixture.stop_runner(&restarted, &healthy).await.0, 200);
    wait_gone(healthy_sleeper).await;
    wait_gone(healthy_runner).await;
    assert!(!workdir(&healthy).exists(), "the adopted runner's working directory was not removed");
    fixture.wait_for_runners(&restarted, 0).await;
}

#[tokio::test]
async fn runners_of_an_agent_gone_for_good_end_when_its_lease_lapses() {
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let window = [("EDGESHELL_POOL_ADOPT_WITHIN_SECS", "3")];
    let mut agent = spawn_agent(&fixture, state.path(), &window).await;
    let sid = new_session();
    assert_eq!(fixture.start_runner(&agent, &sid, 600).await.0, 201);
    let (mut browser, sleeper) = background_sleeper(&fixture, &sid).await;
    let runner = runner_pid(&fixture, &agent, &sid).await;
    // SIGTERM drains: the agent leaves, its runner keeps serving the session for the next agent.
    signal(&agent, rustix::process::Signal::TERM);
    let status = tokio::time::timeout(WAIT, agent.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    still_served(&mut browser, "waiting-for-an-agent").await;
    // None comes: the runner ends the session, background jobs and all, by itself.
    wait_gone(runner).await;
    wait_gone(sleeper).await;
    // The next agent on this state directory finds nothing to adopt and removes the rest.
    let next = spawn_agent(&fixture, state.path(), &window).await;
    assert!(fixture.runners(&next).await.is_empty());
    assert!(!state.path().join("work").join(sid.as_str()).exists());
    let text = metrics(&fixture, &next).await;
    assert!(text.contains("edgeshell_pool_reaped_total{region=\"eu\",backend=\"local\"} 1"), "{text}");
    assert!(text.contains("edgeshell_pool_adopted_total{region=\"eu\",backend=\"local\"} 0"), "{text}");
}

#[tokio::test]
async fn the_session_program_cannot_find_its_join_token() {
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let _agent = spawn_agent(&fixture, state.path(), &[]).await;
    let sid = new_session();
    let join = fixture.join_token(&sid);
    let body = fixture.start_body_with(&sid, join.clone(), 600);
    let command = fixture.command_token(&sid, &region(), &body);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 5;
    let (status, text) = fixture.submit(&command, body).await;
    assert_eq!(status, 201, "{text}");
    let credential = Credential::Token(fixture.attach_token(&sid));
    let mut browser = Browser::attach(&fixture.room.attach_url(&sid), &credential).await.unwrap();
    // The program looks where a token could be: every process's environment and command line, and
    // every file written since the session was started (outside /proc and /sys). The token is typed
    // in two halves joined only in each search's own arguments, so a search never finds itself in
    // the shell; "FOU""ND" and "sea""rch" keep the echoed command line from matching.
    let (a, b) = join.split_at(join.len() / 2);
    let search = format!(
        "A='{a}'; B='{b}'; \
         for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do grep -qsF -e \"$A$B\" \"$f\" && echo \"FOU\"\"ND:$f\"; done; \
         find / \\( -path /proc -o -path /sys \\) -prune -o -type f -newermt @{since} -size -4M -print0 2>/dev/null \
         | xargs -0 -r grep -lsF -e \"$A$B\" | sed 's/^/FOU''ND:/'; echo \"sea\"\"rch-done\"\n"
    );
    browser.input(search.as_bytes()).await;
    let done = browser.expect_from(0, "search-done", Duration::from_secs(120)).await;
    let output = String::from_utf8_lossy(&browser.output[..done]);
    assert!(!output.contains("FOUND:"), "the session's program found its join token:\n{output}");
    // And the search works: a file holding the token where any user can read it is found.
    let planted = tempfile::Builder::new().prefix("edgeshell-planted-").tempfile().unwrap();
    std::fs::write(planted.path(), &join).unwrap();
    std::fs::set_permissions(planted.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    browser.input(search.as_bytes()).await;
    let again = browser.expect_from(done, "search-done", Duration::from_secs(120)).await;
    let output = String::from_utf8_lossy(&browser.output[done..again]);
    assert!(output.contains(&format!("FOUND:{}", planted.path().display())), "{output}");
}

/// Attaches a browser to a started session; returns it and the uid its program runs as.
async fn attach_and_ask_uid(fixture: &Fixture, sid: &edgeshell_core::ids::SessionId) -> (Browser, u32) {
    let credential = Credential::Token(fixture.attach_token(sid));
    let mut browser = Browser::attach(&fixture.room.attach_url(sid), &credential).await.unwrap();
    browser.input(b"echo u''id=$(id -u).\n").await;
    let at = browser.expect_from(0, "uid=", WAIT).await;
    let end = browser.expect_from(at, ".", WAIT).await;
    let uid = String::from_utf8_lossy(&browser.output[at..end - 1]).parse().unwrap();
    (browser, uid)
}

fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[tokio::test]
async fn a_fork_bomb_in_one_session_leaves_another_able_to_start_processes() {
    if !as_root() {
        eprintln!("skipped: sessions get users of their own only when the agent is root");
        return;
    }
    const LIMIT: usize = 24;
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let agent = spawn_agent(&fixture, state.path(), &[("EDGESHELL_RUNNER_PROCESS_LIMIT", "24")]).await;
    let (bomber, other) = (new_session(), new_session());
    for sid in [&bomber, &other] {
        assert_eq!(fixture.start_runner(&agent, sid, 600).await.0, 201);
    }
    let (mut bombing, bomber_uid) = attach_and_ask_uid(&fixture, &bomber).await;
    let (mut calm, other_uid) = attach_and_ask_uid(&fixture, &other).await;
    assert!(bomber_uid != 0 && other_uid != 0 && bomber_uid != other_uid, "{bomber_uid} {other_uid}");
    // Ten times the limit of processes that stay: a bomb that would go on if nothing stopped it.
    let from = bombing.output.len();
    bombing.input(b"i=0; while [ $i -lt 240 ]; do sleep 600 & i=$((i+1)); done\n").await;
    bombing.expect_from(from, "fork", WAIT).await;
    let held = process_tree::user_processes(bomber_uid).len();
    assert!((LIMIT - 2..=LIMIT).contains(&held), "the bombing session holds {held} processes, limit {LIMIT}");
    // The other session still starts processes.
    let from = calm.output.len();
    calm.input(b"sh -c true && echo sta''rted-fine\n").await;
    calm.expect_from(from, "started-fine", WAIT).await;
    // Ending the bombing session ends all of it.
    assert_eq!(fixture.stop_runner(&agent, &bomber).await.0, 200);
    assert_eq!(process_tree::user_processes(bomber_uid), Vec::<i32>::new());
    assert!(!process_tree::user_processes(other_uid).is_empty(), "the other session was touched");
}

#[tokio::test]
async fn a_detached_process_dies_with_its_session_and_when_its_agent_is_gone_for_good() {
    if !as_root() {
        eprintln!("skipped: detached processes are found by the session's own user, given when the agent is root");
        return;
    }
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut agent = spawn_agent(&fixture, state.path(), &[("EDGESHELL_POOL_ADOPT_WITHIN_SECS", "3")]).await;
    let detach = |browser: &mut Browser| {
        let from = browser.output.len();
        let line = b"setsid sh -c 'echo deta''ched=$$.; exec sleep 1000' </dev/null 2>&1 &\n".to_vec();
        (from, line)
    };
    let mut detached = Vec::new();
    let sessions = [new_session(), new_session()];
    for sid in &sessions {
        assert_eq!(fixture.start_runner(&agent, sid, 600).await.0, 201);
        let (mut browser, _) = attach_and_ask_uid(&fixture, sid).await;
        let (from, line) = detach(&mut browser);
        browser.input(&line).await;
        let at = browser.expect_from(from, "detached=", WAIT).await;
        let end = browser.expect_from(at, ".", WAIT).await;
        let pid: i32 = String::from_utf8_lossy(&browser.output[at..end - 1]).parse().unwrap();
        let stat = process_tree::stat(pid).unwrap();
        assert_eq!(stat.session, pid, "the process left its session");
        detached.push((browser, pid));
    }
    // Stopping the first session ("End session") ends its detached process.
    assert_eq!(fixture.stop_runner(&agent, &sessions[0]).await.0, 200);
    wait_gone(detached[0].1).await;
    assert!(alive(detached[1].1));
    // Interrupting the agent (Ctrl-C on the dev stack) with no agent after it ends the other's: its
    // runner, once the lease lapses, kills every process of the session's user.
    signal(&agent, rustix::process::Signal::INT);
    let status = tokio::time::timeout(WAIT, agent.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    assert!(alive(detached[1].1), "the session waits for the next agent");
    wait_gone(detached[1].1).await;
}

#[tokio::test]
async fn two_agents_on_one_host_never_share_a_session_user() {
    if !as_root() {
        eprintln!("skipped: sessions get users of their own only when the agent is root");
        return;
    }
    // The dev stack runs an agent per region on one machine: their sessions' users must differ, or
    // ending one session would kill the other's.
    let fixture = Fixture::start().await;
    let (first_state, second_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = spawn_agent(&fixture, first_state.path(), &[]).await;
    let second = spawn_agent(&fixture, second_state.path(), &[]).await;
    let (a, b) = (new_session(), new_session());
    let (started_a, started_b) =
        tokio::join!(fixture.start_runner(&first, &a, 600), fixture.start_runner(&second, &b, 600));
    assert_eq!((started_a.0, started_b.0), (201, 201));
    let (_browser_a, uid_a) = attach_and_ask_uid(&fixture, &a).await;
    let (mut browser_b, uid_b) = attach_and_ask_uid(&fixture, &b).await;
    assert_ne!(uid_a, uid_b, "two agents gave one user to two sessions");
    assert_eq!(fixture.stop_runner(&first, &a).await.0, 200);
    let from = browser_b.output.len();
    browser_b.input(b"echo sti''ll-here\n").await;
    browser_b.expect_from(from, "still-here", WAIT).await;
}

/// Answers every request with a redirect to `to`; the URL to ask.
async fn redirecting_to(to: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let head =
                format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
        }
    });
    url
}

#[tokio::test]
async fn a_redirected_jwks_is_never_followed() {
    // The agent's key URL redirects to an attacker's key set: a command the attacker signs under the
    // real issuer's name must not start anything (following the redirect would have verified it).
    let fixture = Fixture::start().await;
    let attacker = edgeshell_dev_oidc::DevIssuer::start("127.0.0.1:0", "attacker").await.unwrap();
    let mut upstream = fixture.upstream();
    upstream.jwks_url = redirecting_to(attacker.jwks_url()).await;
    let state = tempfile::tempdir().unwrap();
    let agent = support::spawn_agent_for(&upstream, state.path(), &[]).await;
    let sid = new_session();
    let body = fixture.start_body(&sid, 600);
    let claims = edgeshell_core::issue::Issuer::new(fixture.issuer.issuer()).pool_command(
        &sid,
        &region(),
        &body,
        rand::random(),
        now(),
    );
    let forged = attacker.sign_claims(&serde_json::to_value(&claims).unwrap()).unwrap();
    let (status, text) = fixture.post(Some(&forged), body).await;
    assert!(status == 401 || status == 503, "a command signed with the keys behind the redirect: {status} {text}");
    assert!(fixture.runners(&agent).await.is_empty());
}

#[tokio::test]
async fn forged_records_make_the_agent_kill_nothing_that_is_not_a_session() {
    // Someone who can write the agent's state (a misconfigured directory, or the same user without
    // root) forges a runner record and a program status naming a process of theirs to have killed: a
    // restarted agent reaps only what carries a session's mark.
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut agent = spawn_agent(&fixture, state.path(), &[]).await;
    signal(&agent, rustix::process::Signal::KILL);
    let _ = agent.child.wait().await;
    use std::os::unix::process::CommandExt;
    let mut victim = std::process::Command::new("sleep").arg("300").process_group(0).spawn().unwrap();
    let pid = victim.id() as i32;
    let start_time = process_tree::stat(pid).unwrap().start_time;
    let sid = new_session();
    let record = serde_json::json!({
        "session_id": sid.as_str(), "pid": pid, "start_time": start_time,
        "workdir": state.path().join("work").join(sid.as_str()),
    });
    std::fs::write(state.path().join(format!("{sid}.json")), record.to_string()).unwrap();
    std::fs::write(state.path().join(format!("{sid}.program")), format!("{{\"program_pid\":{pid}}}")).unwrap();

    let restarted = spawn_agent(&fixture, state.path(), &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alive(pid), "the agent killed a process a forged record named");
    assert!(!state.path().join(format!("{sid}.json")).exists(), "the forged record was not cleared");
    drop(restarted);
    let _ = victim.kill();
    let _ = victim.wait();
}

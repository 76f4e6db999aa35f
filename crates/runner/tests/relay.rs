//! The runner against a real room (the core's `Room` in the native host) and a browser client speaking
//! the real protocol: a session round trip, exact resume across network drops, refusals, the room ending
//! the session, and the deadline. The program always ends with the session.

mod support;

use edgeshell_core::protocol::{CloseCode, Credential, ExitStatus, Frame, Role, Signal};
use edgeshell_core::room::{EndReason, RoomConfig};
use edgeshell_room_host::browser::Browser;
use edgeshell_runner::process_tree;
use edgeshell_runner::relay::{run, Outcome, Settings};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_session_round_trip() {
    let host = room_host(RoomConfig::default()).await;
    let sid = new_session();
    let dir = tempfile::tempdir().unwrap();
    let runner = tokio::spawn(run(settings(&host, &sid), shell(dir.path(), &[])));
    let mut browser = Browser::attach(&host.attach_url(&sid), &Credential::Token(attach_token(&sid))).await.unwrap();

    browser.input(b"echo hel''lo\n").await;
    let at = browser.expect_from(0, "hello", WAIT).await;
    browser.resize(100, 30).await;
    browser.input(b"stty size\n").await;
    let at = browser.expect_from(at, "30 100", WAIT).await;
    browser.input(b"sleep 60; echo not-interrupted\n").await;
    let at = browser.expect_from(at, "not-interrupted", WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    browser.signal(Signal::Interrupt).await;
    browser.input(b"echo back-$((20+1))\n").await;
    let at = browser.expect_from(at, "back-21", WAIT).await;
    browser.input(b"printf 'bye'; exit 3\n").await;
    browser.expect_from(at, "bye", WAIT).await;
    assert_eq!(browser.expect_exit(WAIT).await, ExitStatus::Code(3));
    let outcome = tokio::time::timeout(WAIT, runner).await.unwrap().unwrap().unwrap();
    assert_eq!(outcome, Outcome::Exited(ExitStatus::Code(3)));
    assert_eq!(outcome.exit_code(), 0);
    assert!(!String::from_utf8_lossy(&browser.output).contains("\nnot-interrupted"));
}

#[tokio::test]
async fn output_survives_runner_connection_drops_exactly_once() {
    // A small room buffer keeps the runner on a short leash, so the drops land mid-stream.
    let config = RoomConfig { buffer_capacity: 64 * 1024, browser_window: 32 * 1024, ..RoomConfig::default() };
    let host = room_host(config).await;
    let sid = new_session();
    let dir = tempfile::tempdir().unwrap();
    let program = shell(dir.path(), &["-c", "sleep 0.3; seq 1 150000; exit 0"]);
    let runner = tokio::spawn(run(settings(&host, &sid), program));
    let mut browser = Browser::attach(&host.attach_url(&sid), &Credential::Token(attach_token(&sid))).await.unwrap();
    browser.ack_every = 8 * 1024;
    let mut cuts = 0;
    let mut next_cut = 100_000;
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        while browser.exit.is_none() {
            assert!(browser.step().await, "browser connection closed: {:?}", browser.closed);
            if browser.output.len() >= next_cut && cuts < 5 {
                cuts += host.cut(&sid, Role::Runner);
                next_cut += 150_000;
            }
        }
    })
    .await;
    assert!(done.is_ok(), "no exit; {} bytes so far", browser.output.len());
    assert!(cuts >= 3, "only {cuts} cuts happened");
    let expected: String = (1..=150000).map(|i| format!("{i}\r\n")).collect();
    assert_eq!(browser.output.len(), expected.len(), "every byte exactly once");
    assert!(browser.output == expected.as_bytes(), "output differs from seq");
    assert!(browser.events.contains(&Frame::RunnerAway) && browser.events.contains(&Frame::RunnerBack));
    let outcome = tokio::time::timeout(WAIT, runner).await.unwrap().unwrap().unwrap();
    assert_eq!(outcome, Outcome::Exited(ExitStatus::Code(0)));
}

#[tokio::test]
async fn a_forged_or_reused_join_token_is_refused_and_the_program_never_runs() {
    let host = room_host(RoomConfig::default()).await;
    let sid = new_session();
    let dir = tempfile::tempdir().unwrap();
    // The program leaves a mark when it starts: a refused join must leave none.
    let marker = dir.path().join("started");
    let program = || shell(dir.path(), &["-c", "touch started; sleep 1000"]);
    // Signed by a key the room does not trust.
    let forger = edgeshell_keys::RsaSigner::generate(
        edgeshell_core::ids::Kid::new("test-key").unwrap(),
        2048,
        &mut rand::thread_rng(),
    )
    .unwrap();
    let claims = edgeshell_core::issue::Issuer::new(ISSUER).join(
        (&sid, &region()),
        edgeshell_core::lifetime::Terms::lasting(now(), 3600),
        rand::random(),
        now(),
    );
    let mut forged = settings(&host, &sid);
    forged.join_token = edgeshell_core::tokens::sign(&claims, &forger).unwrap().into();
    let outcome = run(forged, program()).await.unwrap();
    assert!(matches!(&outcome, Outcome::Refused(why) if why.contains("401")), "{outcome:?}");
    assert_eq!(outcome.exit_code(), 4);
    assert!(!marker.exists(), "the program ran before the join was accepted");

    // A token for another session.
    let mut other = settings(&host, &sid);
    other.join_token = join_token(&new_session()).into();
    let outcome = run(other, program()).await.unwrap();
    assert!(matches!(&outcome, Outcome::Refused(why) if why.contains("403")), "{outcome:?}");
    assert!(!marker.exists(), "the program ran before the join was accepted");

    // The first use of a join token wins and starts the program; a second runner with the same token
    // is turned away and starts nothing.
    let first = settings(&host, &sid);
    let mut second = first.clone();
    second.max_offline = Duration::from_secs(2);
    let first = tokio::spawn(run(first, program()));
    for _ in 0..250 {
        if marker.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(marker.exists(), "the joined runner's program did not start");
    std::fs::remove_file(&marker).unwrap();
    let outcome = run(second, program()).await.unwrap();
    assert!(!matches!(outcome, Outcome::Exited(_)), "{outcome:?}");
    assert!(!marker.exists(), "a refused runner started its program");
    first.abort();
}

#[tokio::test]
async fn the_room_ending_the_session_stops_the_program() {
    let host = room_host(RoomConfig::default()).await;
    let sid = new_session();
    let dir = tempfile::tempdir().unwrap();
    let runner = tokio::spawn(run(settings(&host, &sid), shell(dir.path(), &[])));
    let mut browser = Browser::attach(&host.attach_url(&sid), &Credential::Token(attach_token(&sid))).await.unwrap();
    browser.input(b"sleep 1000 & echo pi''d=$!\n").await;
    let at = browser.expect_from(0, "pid=", WAIT).await;
    let end = browser.expect_from(at, "\r\n", WAIT).await;
    let sleeper: i32 = String::from_utf8_lossy(&browser.output[at..end - 2]).trim().parse().unwrap();
    assert!(process_tree::stat(sleeper).is_some());
    host.end(&sid);
    let outcome = tokio::time::timeout(WAIT, runner).await.unwrap().unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Ended(CloseCode::SessionEnded, _)), "{outcome:?}");
    let gone = process_tree::stat(sleeper).is_none_or(|s| {
        let state = std::fs::read_to_string(format!("/proc/{}/stat", s.pid)).unwrap_or_default();
        state.contains(") Z ")
    });
    assert!(gone, "the program's background job survived the session");
    assert_eq!(browser.expect_close(WAIT).await.map(|c| c.0), Some(CloseCode::SessionEnded));
    assert!(host.ended().iter().any(|(s, r)| s == &sid && *r == EndReason::Ended));
}

#[tokio::test]
async fn the_room_ends_the_session_at_its_deadline_and_the_runner_stops_the_program() {
    let host = room_host(RoomConfig::default()).await;
    let sid = new_session();
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&host, &sid);
    // The one deadline, as the control plane gives it: in the start command and the join token.
    let ends = std::time::SystemTime::now() + Duration::from_secs(2);
    let secs = ends.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    s.deadline = Some(std::time::UNIX_EPOCH + Duration::from_secs(secs));
    s.join_token = join_token_with(&sid, Terms { ends: secs, ..terms() }).into();
    let outcome = tokio::time::timeout(WAIT, run(s, shell(dir.path(), &["-c", "sleep 1000"]))).await.unwrap().unwrap();
    let why = "the session reached its time limit".to_owned();
    assert_eq!(outcome, Outcome::Ended(CloseCode::SessionEnded, why), "ended by the room, with its reason");
    assert!(host.ended().iter().any(|(id, r)| id == &sid && *r == EndReason::Deadline));
}

/// Runner settings whose room is a port nobody listens on, given up on after `max_offline`.
async fn cut_off(max_offline: Duration) -> Settings {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/sessions/s_x/join", listener.local_addr().unwrap());
    drop(listener);
    let host = room_host(RoomConfig::default()).await;
    Settings { join_url: url, max_offline, ..settings(&host, &new_session()) }
}

#[tokio::test]
async fn a_runner_cut_off_from_its_room_stops_the_program_a_backstop_after_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // The room cannot end the session.
    let mut s = cut_off(Duration::from_secs(60)).await;
    s.deadline = Some(std::time::SystemTime::now() + Duration::from_secs(1));
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(WAIT, run(s, shell(dir.path(), &["-c", "sleep 1000"]))).await.unwrap().unwrap();
    assert_eq!(outcome, Outcome::DeadlinePassed);
    assert!(started.elapsed() >= edgeshell_core::lifetime::BACKSTOP, "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_unreachable_edge_is_given_up_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = cut_off(Duration::from_secs(1)).await;
    let outcome = tokio::time::timeout(WAIT, run(s, shell(dir.path(), &["-c", "sleep 1000"]))).await.unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Unreachable(_)), "{outcome:?}");
}

#[tokio::test]
async fn an_idle_session_is_ended_by_its_room_with_the_reason() {
    let host = room_host(RoomConfig::default()).await;
    let sid = new_session();
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&host, &sid);
    s.join_token = join_token_with(&sid, Terms { idle: Some(1), ..terms() }).into();
    // The program prints once, then nothing happens: the room's idle rule (from the join token's
    // terms) ends the session, and the runner stops the program.
    let outcome =
        tokio::time::timeout(WAIT, run(s, shell(dir.path(), &["-c", "echo hi; sleep 1000"]))).await.unwrap().unwrap();
    let why = "the session had neither input nor output for too long".to_owned();
    assert_eq!(outcome, Outcome::Ended(CloseCode::SessionEnded, why));
}

//! Durable Object storage under `wrangler dev`, read from the SQLite files it persists (tables and
//! alarms): a thousand resumes with junk tickets for a thousand random sessions leave none behind, and
//! an ended session's room deletes all of its storage once its tombstone expires (shortened here to
//! 3 s).

use edgeshell_core::issue::session_id;
use edgeshell_core::protocol::{CloseCode, Credential};
use edgeshell_e2e::{Stack, StackOptions};
use edgeshell_room_host::browser::{AttachError, Browser};
use edgeshell_stack::edge::StoredRooms;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const USER: &str = "storage-tester";

async fn junk_resume(stack: &Stack) -> CloseCode {
    let sid = session_id(rand::random());
    let ticket = edgeshell_core::base64url::encode(&rand::random::<[u8; 32]>());
    let url = format!("{}/sessions/{sid}/attach?offset=0", stack.edge_ws());
    match Browser::attach(&url, &Credential::Resume(ticket)).await {
        Err(AttachError::Closed(code, _)) => code,
        other => panic!("a junk resume was not refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn junk_leaves_no_storage_and_ended_rooms_delete_theirs() {
    let options = StackOptions { edge_vars: vec![("ROOM_TOMBSTONE_SECS", "3".to_owned())], ..StackOptions::default() };
    let stack = Stack::start(options).await.unwrap();
    let empty = StoredRooms::default();
    assert_eq!(stack.edge.stored_rooms().unwrap(), empty);

    // A thousand junk resumes, ten at a time: each is refused, and none writes anything.
    for _ in 0..100 {
        let codes = futures_util::future::join_all((0..10).map(|_| junk_resume(&stack))).await;
        assert!(codes.iter().all(|c| *c == CloseCode::SessionNotFound), "{codes:?}");
    }
    assert_eq!(stack.edge.stored_rooms().unwrap(), empty, "junk resumes left storage behind");

    // A real session has storage while it lives...
    let session = stack.mint(USER).await.unwrap();
    let mut browser =
        Browser::attach(&session.ws_url, &Credential::Token(session.token.expose().to_owned())).await.unwrap();
    browser.input(b"echo here\n").await;
    browser.expect_from(0, "here", WAIT).await;
    let live = stack.edge.stored_rooms().unwrap();
    assert_eq!(live, StoredRooms { objects: 1, alarms: 1 }, "the room stores its state and its alarm");
    // ...and none once it has ended and its tombstone has expired.
    browser.input(b"exit 0\n").await;
    browser.expect_exit(WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while stack.edge.stored_rooms().unwrap() != empty && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stack.edge.stored_rooms().unwrap(), empty, "the ended room's storage was not deleted");
    // And a junk resume for that session, after it was forgotten, stores nothing again.
    let url = format!("{}?offset=0", session.ws_url);
    let ticket = browser.welcome.resume_ticket.expose().to_owned();
    let refused = Browser::attach(&url, &Credential::Resume(ticket)).await;
    assert!(matches!(refused, Err(AttachError::Closed(CloseCode::SessionNotFound, _))), "{:?}", refused.map(|_| ()));
    assert_eq!(stack.edge.stored_rooms().unwrap(), empty);
}

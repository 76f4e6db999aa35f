//! Room tests, on the harness in `tests/harness.rs`, which plays browser and runner by the protocol
//! (decoding every frame the room sends), so the assertions are about what peers would see.

mod exact_resume;
mod harness;
mod input_credit;
mod lifetime;
mod quiet_traffic;
mod screen;

use super::*;
use crate::protocol::{CloseCode, ExitStatus, Frame, Role};
use crate::tokens::Scope;

use harness::*;

#[test]
fn attach_and_echo() {
    let mut h = live();
    let w = welcome(&h.attach(10, "a1"));
    assert_eq!((w.role, w.offset, w.expires_at), (Role::Browser, 0, T0 + 600));
    h.send(10, Frame::Input { data: b"echo hi\r".to_vec() });
    h.send(10, Frame::Resize { cols: 120, rows: 40 });
    assert_eq!(h.take(1), vec![Frame::Input { data: b"echo hi\r".to_vec() }, Frame::Resize { cols: 120, rows: 40 }]);
    h.send(1, Frame::Output { offset: 0, data: b"hi\r\n".to_vec() });
    assert_eq!(h.take(10), vec![Frame::Output { offset: 0, data: b"hi\r\n".to_vec() }]);
    assert_eq!(h.take(1), vec![], "a few bytes earn no credit message: the runner's credit reaches far ahead");
    h.send(10, Frame::Ping { nonce: 9 });
    assert_eq!(h.take(10), vec![Frame::Pong { nonce: 9 }]);
}

#[test]
fn attach_tokens_work_once_even_under_a_flood() {
    let mut h = live();
    let mut welcomes = 0;
    for conn in 100..200 {
        let frames = h.attach(conn, "same-jti");
        if matches!(frames.first(), Some(Frame::Welcome(_))) {
            welcomes += 1;
        } else {
            assert_eq!(h.closed(conn), Some(CloseCode::Replayed), "conn {conn}");
        }
    }
    assert_eq!(welcomes, 1);
}

#[test]
fn tokens_for_other_sessions_or_kinds_are_forbidden() {
    let mut h = live();
    let e = h.entropy();
    h.event(Event::BrowserAttach { conn: ConnId(10), token: token(Scope::Attach, "x", "other", 600), entropy: e });
    assert_eq!(h.closed(10), Some(CloseCode::Forbidden));
    h.event(Event::BrowserAttach { conn: ConnId(11), token: token(Scope::Join, "y", "s1", 600), entropy: e });
    assert_eq!(h.closed(11), Some(CloseCode::Forbidden));
    h.event(Event::RunnerJoin { conn: ConnId(12), token: token(Scope::Join, "z", "s1", 600), entropy: e });
    assert_eq!(h.closed(12), Some(CloseCode::Forbidden), "second runner join");
}

#[test]
fn runner_lost_after_grace_and_back_within_it() {
    let mut h = live();
    h.attach(10, "a1");
    h.event(Event::Disconnected { conn: ConnId(1) });
    assert_eq!(h.take(10), vec![Frame::RunnerAway]);
    h.advance_to(at(1999));
    assert!(h.ended.is_empty());
    h.advance_to(at(2000));
    assert_eq!(h.ended, vec![EndReason::RunnerLost]);
    let frames = h.take(10);
    assert_eq!(frames[0], Frame::RunnerLost);
    assert_eq!(h.closed(10), Some(CloseCode::RunnerLost));
    // The tombstone refuses late attaches.
    h.attach(11, "a2");
    assert_eq!(h.closed(11), Some(CloseCode::RunnerLost));
}

#[test]
fn runner_resumes_and_resends_without_duplicates() {
    let mut h = Harness::new(RoomConfig::default());
    let w = h.join_runner(1);
    h.attach(10, "a1");
    h.send(1, Frame::Output { offset: 0, data: b"abc".to_vec() });
    h.event(Event::Disconnected { conn: ConnId(1) });
    h.now = at(1500);
    let e = h.entropy();
    h.event(Event::RunnerResume { conn: ConnId(2), ticket: w.resume_ticket.clone(), entropy: e });
    let w2 = welcome(&h.take(2));
    assert_eq!(w2.offset, 3, "room tells the runner where to continue");
    // The runner resends from its last credit ack (0): the overlap is dropped.
    h.send(2, Frame::Output { offset: 0, data: b"abcdef".to_vec() });
    assert_eq!(output(&h.take(10)), b"abcdef");
    // The old ticket is spent.
    let e = h.entropy();
    h.event(Event::RunnerResume { conn: ConnId(3), ticket: w.resume_ticket, entropy: e });
    assert_eq!(h.closed(3), Some(CloseCode::Unauthorized));
}

#[test]
fn browser_resumes_at_the_exact_byte() {
    let mut h = live();
    let w = welcome(&h.attach(10, "a1"));
    let stream: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    for (i, chunk) in stream.chunks(10_000).enumerate() {
        h.send(1, Frame::Output { offset: (i * 10_000) as u64, data: chunk.to_vec() });
    }
    let mut got = output(&h.take(10));
    got.truncate(42_123); // the network dropped the rest
    h.event(Event::Disconnected { conn: ConnId(10) });
    let frames = h.resume(11, &w.resume_ticket, got.len() as u64);
    assert_eq!(welcome(&frames).offset, 42_123);
    got.extend(output(&frames));
    assert_eq!(got, stream);
    // The spent ticket cannot be replayed.
    h.resume(12, &w.resume_ticket, 0);
    assert_eq!(h.closed(12), Some(CloseCode::Unauthorized));
}

#[test]
fn resume_outside_the_held_range_fails_cleanly() {
    let mut h = live();
    let w = welcome(&h.attach(10, "a1"));
    h.send(1, Frame::Output { offset: 0, data: vec![b'x'; 100] });
    h.take(10);
    h.event(Event::Disconnected { conn: ConnId(10) });
    // Ahead of the room by more than the runner could ever have been allowed to send.
    let beyond = 100 + u64::from(RoomConfig::default().buffer_capacity) + 1;
    h.resume(11, &w.resume_ticket, beyond);
    assert_eq!(h.closed(11), Some(CloseCode::ResumeFailed));
    h.resume(12, &"1.not-a-ticket".into(), 0);
    assert_eq!(h.closed(12), Some(CloseCode::Unauthorized));
}

#[test]
fn backpressure_instead_of_loss() {
    let config = RoomConfig { buffer_capacity: 1000, history_bytes: 100, browser_window: 400, ..RoomConfig::default() };
    let mut h = Harness::new(config);
    assert_eq!(h.join_runner(1).window, 1000);
    h.attach(10, "a1");
    h.send(1, Frame::Output { offset: 0, data: vec![1; 1000] });
    assert_eq!(output(&h.take(10)).len(), 400, "browser window");
    assert_eq!(h.take(1), vec![Frame::Credit { acked: 1000, limit: 1000 }], "runner is out of credit");
    h.send(1, Frame::Output { offset: 1000, data: vec![1] });
    assert_eq!(h.closed(1), Some(CloseCode::ProtocolError), "overrun is a protocol error");
}

#[test]
fn acks_release_credit_and_more_output() {
    let config = RoomConfig { buffer_capacity: 1000, history_bytes: 0, browser_window: 400, ..RoomConfig::default() };
    let mut h = Harness::new(config);
    h.join_runner(1);
    h.attach(10, "a1");
    h.send(1, Frame::Output { offset: 0, data: vec![1; 1000] });
    h.take(10);
    h.take(1);
    h.send(10, Frame::Ack { offset: 400 });
    assert_eq!(output(&h.take(10)).len(), 400);
    assert_eq!(h.take(1), vec![Frame::Credit { acked: 1000, limit: 1400 }]);
    h.send(10, Frame::Ack { offset: 900 });
    assert_eq!(h.closed(10), Some(CloseCode::ProtocolError), "ack beyond what was sent");
}

#[test]
fn history_as_large_as_the_buffer_does_not_stall_the_runner() {
    let config =
        RoomConfig { buffer_capacity: 1000, history_bytes: 1000, browser_window: 400, ..RoomConfig::default() };
    let mut h = Harness::new(config);
    h.join_runner(1);
    h.attach(10, "a1");
    h.send(1, Frame::Output { offset: 0, data: vec![1; 1000] });
    h.take(10);
    h.take(1);
    h.send(10, Frame::Ack { offset: 400 });
    assert_eq!(h.take(1), vec![Frame::Credit { acked: 1000, limit: 1400 }], "acked bytes free credit");
    h.send(1, Frame::Output { offset: 1000, data: vec![2; 400] });
    assert_eq!(h.closed(1), None);
}

#[test]
fn credit_granted_before_a_browser_attached_is_not_taken_back() {
    let config = RoomConfig { buffer_capacity: 1000, history_bytes: 100, browser_window: 400, ..RoomConfig::default() };
    let mut h = Harness::new(config);
    h.join_runner(1);
    // A banner before any browser: with nobody to wait for, the runner may send up to 100 + 1000.
    h.send(1, Frame::Output { offset: 0, data: vec![b'$'; 100] });
    assert_eq!(h.take(1).last(), Some(&Frame::Credit { acked: 100, limit: 1100 }));
    // A browser attaches and needs the output from byte 0; the runner uses all it was granted.
    h.attach(10, "a1");
    h.send(1, Frame::Output { offset: 100, data: vec![7; 998] });
    h.send(1, Frame::Output { offset: 1098, data: b"ok".to_vec() });
    assert_eq!(h.closed(1), None, "output within granted credit is accepted");
    assert_eq!(h.room.output_end(), 1100);
}

#[test]
fn refresh_in_band() {
    let mut h = live();
    h.attach(10, "a1");
    h.advance_alive(at(540_000), &[1, 10]);
    assert_eq!(h.take(10), vec![Frame::RefreshNeeded { expires_at: T0 + 600 }]);
    h.send(10, Frame::Refresh { token: "jws".into() });
    assert_eq!(h.refreshes, vec![(ConnId(10), "jws".into())]);
    let fresh = token(Scope::Attach, "a2", "s1", 1200);
    h.event(Event::RefreshVerified { conn: ConnId(10), token: fresh.clone() });
    assert_eq!(h.take(10), vec![Frame::RefreshAccepted { expires_at: T0 + 1200 }]);
    // The same refresh token again is a replay.
    h.event(Event::RefreshVerified { conn: ConnId(10), token: fresh });
    assert_eq!(h.closed(10), Some(CloseCode::Replayed));
}

#[test]
fn unrefreshed_authorization_expires() {
    let mut h = live();
    h.attach(10, "a1");
    h.advance_alive(at(600_000 + 29_999), &[1, 10]);
    assert_eq!(h.closed(10), None, "within the leeway");
    h.advance_alive(at(600_000 + 30_000), &[1, 10]);
    assert_eq!(h.closed(10), Some(CloseCode::TokenExpired));
}

#[test]
fn rejected_refresh_closes_with_its_code() {
    let mut h = live();
    h.attach(10, "a1");
    h.event(Event::RefreshRejected { conn: ConnId(10), error: crate::tokens::TokenError::BadSignature });
    assert_eq!(h.closed(10), Some(CloseCode::Unauthorized));
}

#[test]
fn protocol_violations() {
    let mut h = live();
    h.attach(10, "a1");
    h.send(10, Frame::Output { offset: 0, data: vec![1] });
    assert_eq!(h.closed(10), Some(CloseCode::ProtocolError));
    h.attach(11, "a2");
    h.event(Event::Message { conn: ConnId(11), data: vec![9, 9, 9] });
    assert_eq!(h.closed(11), Some(CloseCode::ProtocolError));
    h.send(1, Frame::Output { offset: 5, data: vec![1] });
    assert_eq!(h.closed(1), Some(CloseCode::ProtocolError), "gap in runner output");
}

#[test]
fn exit_is_delivered_after_the_last_byte() {
    let config = RoomConfig { browser_window: 4, ..RoomConfig::default() };
    let mut h = Harness::new(config);
    h.join_runner(1);
    h.attach(10, "a1");
    h.send(1, Frame::Output { offset: 0, data: b"bye!!".to_vec() });
    h.send(1, Frame::Exited { status: ExitStatus::Code(3) });
    assert_eq!(h.closed(1), Some(CloseCode::Normal));
    let frames = h.take(10);
    assert_eq!(output(&frames), b"bye!");
    assert!(!frames.iter().any(|f| matches!(f, Frame::Exited { .. })));
    h.send(10, Frame::Ack { offset: 4 });
    assert_eq!(
        h.take(10),
        vec![Frame::Output { offset: 4, data: b"!".to_vec() }, Frame::Exited { status: ExitStatus::Code(3) }]
    );
    h.send(10, Frame::Ack { offset: 5 });
    assert_eq!(h.ended, vec![EndReason::Exited(ExitStatus::Code(3))]);
    assert_eq!(h.closed(10), Some(CloseCode::SessionEnded));
}

#[test]
fn timers_end_unattended_and_silent_sessions() {
    let mut h = Harness::new(RoomConfig::default());
    h.advance_to(at(60_000));
    assert_eq!(h.ended, vec![EndReason::RunnerLost], "runner never joined");

    let mut h = live();
    h.attach(10, "a1");
    h.advance_to(at(100_000));
    assert_eq!(h.closed(10), Some(CloseCode::HeartbeatTimeout));
    assert_eq!(h.closed(1), Some(CloseCode::HeartbeatTimeout));
    h.advance_to(at(102_000));
    assert_eq!(h.ended, vec![EndReason::RunnerLost]);

    let mut h = live();
    h.event(Event::HeartbeatSeen { conn: ConnId(1), at: at(90_000) });
    h.advance_to(at(5 * 60_000));
    assert_eq!(h.ended, vec![EndReason::Unattended], "the test terms: 5 minutes without a browser");
}

#[test]
fn heartbeats_seen_by_the_platform_keep_connections() {
    let mut h = live();
    h.attach(10, "a1");
    for t in (30_000..200_000).step_by(30_000) {
        h.event(Event::HeartbeatSeen { conn: ConnId(10), at: at(t) });
        h.event(Event::HeartbeatSeen { conn: ConnId(1), at: at(t) });
        h.advance_to(at(t));
    }
    assert_eq!(h.closed(10), None);
    assert_eq!(h.closed(1), None);
}

#[test]
fn end_and_state_round_trip() {
    let mut h = live();
    let w = welcome(&h.attach(10, "a1"));
    h.send(1, Frame::Output { offset: 0, data: b"state".to_vec() });
    let bytes = h.room.to_bytes();
    let restored = Room::from_bytes(&bytes).unwrap();
    assert_eq!(restored, h.room);
    assert!(matches!(Room::from_bytes(&[9]), Err(RestoreError::Version { found: 9 })));
    assert!(matches!(Room::from_bytes(&[STATE_VERSION, 0xff]), Err(RestoreError::Corrupt(_))));
    h.room = restored;
    h.event(Event::Disconnected { conn: ConnId(10) });
    assert_eq!(output(&h.resume(11, &w.resume_ticket, 2)), b"ate");
    h.event(Event::End);
    assert_eq!(h.ended, vec![EndReason::Ended]);
    assert_eq!(h.closed(11), Some(CloseCode::SessionEnded));
    assert_eq!(h.closed(1), Some(CloseCode::SessionEnded));
}

#[test]
fn input_waits_for_a_late_runner() {
    let mut h = Harness::new(RoomConfig::default());
    h.attach(10, "a1");
    h.send(10, Frame::Input { data: b"ls\r".to_vec() });
    h.send(10, Frame::Resize { cols: 100, rows: 30 });
    let e = h.entropy();
    h.event(Event::RunnerJoin { conn: ConnId(1), token: token(Scope::Join, "j", "s1", 600), entropy: e });
    let frames = h.take(1);
    assert!(matches!(frames[0], Frame::Welcome(_)));
    let deadline = Frame::Deadline { ends_at: TERMS.ends };
    assert_eq!(frames[1..], [deadline, Frame::Resize { cols: 100, rows: 30 }, Frame::Input { data: b"ls\r".to_vec() }]);
}

#[test]
fn an_ended_room_is_a_tombstone_until_no_token_can_verify() {
    let mut h = live();
    h.attach(10, "a1");
    h.advance_to(at(5_000));
    h.event(Event::End);
    let tombstone = RoomConfig::default().tombstone;
    assert!(h.alarm.is_some_and(|a| a <= at(5_000) + tombstone), "an alarm no later than the tombstone's expiry");
    // A late attach with a fresh token finds the tombstone, not a new session.
    h.attach(11, "a2");
    assert_eq!(h.closed(11), Some(CloseCode::SessionEnded));
    assert!(!h.forgotten);
    // An earlier alarm (set for a deadline that has gone) fires harmlessly and re-arms for the expiry.
    let just_before = at(5_000) + tombstone - core::time::Duration::from_millis(1);
    h.advance_to(just_before);
    assert!(!h.forgotten);
    assert_eq!(h.alarm, Some(at(5_000) + tombstone), "the alarm is the tombstone's expiry");
    h.advance_to(at(5_000) + tombstone);
    assert!(h.forgotten, "then the host may forget the room");
    assert_eq!(h.alarm, None);
    h.advance_to(at(5_000) + tombstone + core::time::Duration::from_secs(60));
    assert_eq!(h.ended, vec![EndReason::Ended], "ended and forgotten once");
}

#[test]
fn only_tokens_bring_a_room_into_being() {
    let e = [1u8; 32];
    let attach = Event::BrowserAttach { conn: ConnId(1), token: token(Scope::Attach, "a", "s1", 600), entropy: e };
    let join = Event::RunnerJoin { conn: ConnId(2), token: token(Scope::Join, "j", "s1", 600), entropy: e };
    let resume = Event::BrowserResume { conn: ConnId(3), ticket: "1.AAAA".into(), offset: 0, entropy: e };
    let runner_resume = Event::RunnerResume { conn: ConnId(4), ticket: "r.AAAA".into(), entropy: e };
    assert!(attach.may_create_room() && join.may_create_room());
    assert!(!resume.may_create_room() && !runner_resume.may_create_room());
    assert!(!Event::Disconnected { conn: ConnId(1) }.may_create_room());
}

#[test]
fn end_reasons_have_distinct_listed_names() {
    let reasons = [
        EndReason::Exited(ExitStatus::Code(3)),
        EndReason::RunnerLost,
        EndReason::Idle,
        EndReason::Unattended,
        EndReason::Deadline,
        EndReason::Ended,
    ];
    let names: Vec<&str> = reasons.iter().map(|r| r.name()).collect();
    assert_eq!(names, EndReason::NAMES, "NAMES lists every reason, in order");
    assert_eq!(EndReason::Exited(ExitStatus::Code(3)).detail(), "status 3");
    assert_eq!(EndReason::Exited(ExitStatus::Signaled(9)).detail(), "signal 9");
    assert_eq!(EndReason::Idle.detail(), "");
}

/// The input bytes among `frames`.
fn input_bytes(frames: &[Frame]) -> usize {
    frames.iter().map(|f| if let Frame::Input { data } = f { data.len() } else { 0 }).sum()
}

#[test]
fn input_to_a_program_that_reads_nothing_is_bounded_and_the_paster_is_told() {
    let mut h = live();
    welcome(&h.attach(10, "a1"));
    // A 100 MB paste, in the largest frames the protocol allows; the runner acknowledges nothing.
    let chunk = vec![b'x'; crate::protocol::MAX_DATA_BYTES];
    let mut sent = 0;
    while sent < 100 * 1024 * 1024 && h.closed(10).is_none() {
        h.send(10, Frame::Input { data: chunk.clone() });
        sent += chunk.len();
    }
    assert_eq!(h.closed(10), Some(CloseCode::InputOverflow), "the paster is refused once the room is full");
    let delivered = input_bytes(&h.take(1));
    assert_eq!(delivered as u64, INPUT_WINDOW, "the runner got exactly its window");
    assert!(h.room.pending_input.len() <= h.room.config.max_pending_input as usize);
    assert!(sent <= INPUT_WINDOW as usize + 2 * h.room.config.max_pending_input as usize + chunk.len(), "{sent}");
    // What waited in the room flows once the program reads; the refused frame never arrives.
    let waiting = h.room.pending_input.len();
    assert_eq!(delivered + waiting + chunk.len(), sent, "every byte is delivered, waiting or refused");
    h.send(1, Frame::Ack { offset: INPUT_WINDOW });
    assert_eq!(input_bytes(&h.take(1)), waiting);
    assert_eq!(h.room.pending_input.len(), 0);
}

#[test]
fn input_flows_without_limit_while_the_program_reads() {
    let mut h = live();
    welcome(&h.attach(10, "a1"));
    let chunk = vec![b'y'; 32 * 1024];
    let mut delivered = 0u64;
    for _ in 0..320 {
        h.send(10, Frame::Input { data: chunk.clone() });
        delivered += input_bytes(&h.take(1)) as u64;
        // The runner writes what it got and says so.
        h.send(1, Frame::Ack { offset: delivered });
    }
    assert_eq!(delivered, 320 * 32 * 1024, "10 MB in order, nothing refused");
    assert_eq!(h.closed(10), None);
    // An ack beyond what was sent (a runner counting from before the room woke) counts as all of it.
    h.send(1, Frame::Ack { offset: u64::MAX });
    assert_eq!(h.closed(1), None);
}

#[test]
fn reloads_never_lock_a_user_out_and_attached_browsers_are_still_capped() {
    let mut h = live();
    let max = RoomConfig::default().max_browsers as u64;
    // Tab after tab reloads: each leaves a seat held for a resume it will never make.
    let mut tickets = Vec::new();
    for conn in 10..10 + 3 * max {
        let w = welcome(&h.attach(conn, &format!("a{conn}")));
        assert_eq!(h.closed(conn), None, "reload {} was locked out", conn - 10);
        tickets.push(w.resume_ticket);
        h.event(Event::Disconnected { conn: ConnId(conn) });
    }
    // The seats given away took their tickets with them; the latest still resumes.
    h.resume(100, &tickets[0], 0);
    assert_eq!(h.closed(100), Some(CloseCode::Unauthorized));
    h.resume(101, tickets.last().unwrap(), 0);
    assert_eq!(h.closed(101), None);
    // Browsers attached at once are still capped.
    for conn in 200..200 + max - 1 {
        h.attach(conn, &format!("b{conn}"));
        assert_eq!(h.closed(conn), None);
    }
    h.attach(300, "c");
    assert_eq!(h.closed(300), Some(CloseCode::Overloaded));
}

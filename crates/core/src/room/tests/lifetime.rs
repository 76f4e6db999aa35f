//! The session's terms in the room: the deadline from the tokens, extensions, the idle and detached
//! rules, and the true reason each end is reported with.

use super::*;
use crate::dangerous::assume_verified;
use crate::ids::Kid;
use crate::lifetime::Terms;

/// A token issued at `now` (10 minutes) carrying `terms`.
fn with_terms(scope: Scope, jti: &str, terms: Terms, now: Timestamp) -> Verified {
    let mut claims = token(scope, jti, "s1", 600).into_claims();
    let shift = now.as_secs() - T0;
    (claims.iat, claims.nbf, claims.exp) = (claims.iat + shift, claims.nbf + shift, claims.exp + shift);
    claims.ses = Some(terms);
    assume_verified(claims, Kid::new("k1").unwrap())
}

/// A room whose runner joined with `terms`.
fn room(terms: Terms) -> Harness {
    let mut h = Harness::new(RoomConfig::default());
    let entropy = h.entropy();
    h.event(Event::RunnerJoin { conn: ConnId(1), token: with_terms(Scope::Join, "j", terms, h.now), entropy });
    let frames = h.take(1);
    assert!(matches!(frames[0], Frame::Welcome(_)));
    assert!(frames.contains(&Frame::Deadline { ends_at: terms.ends }), "the runner is told the deadline: {frames:?}");
    h
}

/// Attaches browser `conn` now (its token lives 10 minutes, so long tests attach late), with `terms`.
fn attach(h: &mut Harness, conn: u64, terms: Terms) {
    let entropy = h.entropy();
    let token = with_terms(Scope::Attach, &format!("a{conn}-{}", h.now.as_millis()), terms, h.now);
    h.event(Event::BrowserAttach { conn: ConnId(conn), token, entropy });
    let frames = h.take(conn);
    assert!(matches!(frames[0], Frame::Welcome(_)));
    assert_eq!(frames[1], Frame::Deadline { ends_at: h.room.deadline().unwrap() }, "the page is told the deadline");
}

fn secs(s: u64) -> Timestamp {
    at(s * 1000)
}

fn closing(frames: &[Frame]) -> Option<(CloseCode, String)> {
    frames.iter().find_map(|f| match f {
        Frame::Closing { code, reason } => Some((*code, reason.clone())),
        _ => None,
    })
}

#[test]
fn the_deadline_from_the_tokens_ends_the_session_on_time_with_its_reason() {
    let terms = Terms { ends: T0 + 8 * 3600, idle: None, detached: None };
    let mut h = room(terms);
    h.advance_alive(secs(8 * 3600 - 300), &[1]);
    attach(&mut h, 10, terms);
    h.advance_alive(secs(8 * 3600 - 1), &[1, 10]);
    assert!(h.ended.is_empty(), "eight hours, no idle rule: still running");
    h.advance_alive(secs(8 * 3600), &[1, 10]);
    assert_eq!(h.ended, vec![EndReason::Deadline], "at the deadline, not a second later");
    let (code, reason) = closing(&h.take(10)).expect("the browser is told why");
    assert_eq!((code, reason.as_str()), (CloseCode::SessionEnded, "the session reached its time limit"));
    assert_eq!(closing(&h.take(1)).map(|(c, _)| c), Some(CloseCode::SessionEnded), "and the runner");
}

#[test]
fn an_extension_moves_the_deadline_for_every_peer_and_never_back() {
    let terms = Terms { ends: T0 + 600, idle: None, detached: None };
    let mut h = room(terms);
    attach(&mut h, 10, terms);
    h.advance_alive(secs(300), &[1, 10]);
    h.take(1);
    h.event(Event::Extend { ends: T0 + 3600 });
    let told = Frame::Deadline { ends_at: T0 + 3600 };
    assert!(h.take(10).contains(&told), "the page counts down to the new deadline");
    assert!(h.take(1).contains(&told), "the runner moves its backstop");
    h.event(Event::Extend { ends: T0 + 900 });
    assert!(h.take(10).is_empty(), "an earlier deadline changes nothing");
    assert_eq!(h.room.deadline(), Some(T0 + 3600));
    h.event(Event::Disconnected { conn: ConnId(10) });
    h.advance_alive(secs(3300), &[1]);
    attach(&mut h, 11, terms);
    h.advance_alive(secs(3599), &[1, 11]);
    assert!(h.ended.is_empty(), "the old deadline passed unnoticed");
    // A token signed after an extension this room missed carries the later deadline too.
    let later = Terms { ends: T0 + 7200, ..terms };
    attach(&mut h, 12, later);
    assert!(h.take(11).contains(&Frame::Deadline { ends_at: T0 + 7200 }), "told to the other browsers too");
    h.event(Event::Disconnected { conn: ConnId(11) });
    h.event(Event::Disconnected { conn: ConnId(12) });
    h.advance_alive(secs(7200), &[1]);
    assert_eq!(h.ended, vec![EndReason::Deadline]);
    assert_eq!(h.room.deadline(), Some(T0 + 7200));
}

#[test]
fn the_idle_rule_counts_input_and_output_not_attached_browsers() {
    let terms = Terms { ends: T0 + 24 * 3600, idle: Some(3600), detached: None };
    let mut h = room(terms);
    h.advance_alive(secs(3000), &[1]);
    h.send(1, Frame::Output { offset: 0, data: b"agent still working".to_vec() });
    h.advance_alive(secs(5900), &[1]);
    attach(&mut h, 10, terms);
    h.send(10, Frame::Input { data: b"y".to_vec() });
    h.event(Event::Disconnected { conn: ConnId(10) });
    h.advance_alive(secs(5900 + 3300), &[1]);
    attach(&mut h, 11, terms);
    h.advance_alive(secs(5900 + 3599), &[1, 11]);
    assert!(h.ended.is_empty(), "output and input each restart the idle clock");
    h.advance_alive(secs(5900 + 3600), &[1, 11]);
    assert_eq!(h.ended, vec![EndReason::Idle], "attached but silent for an hour");
    assert_eq!(
        closing(&h.take(11)).map(|(_, r)| r).as_deref(),
        Some("the session had neither input nor output for too long")
    );
}

#[test]
fn with_no_detached_rule_a_session_runs_unattended_until_its_deadline() {
    let terms = Terms { ends: T0 + 6 * 3600, idle: None, detached: None };
    let mut h = room(terms);
    attach(&mut h, 10, terms);
    h.event(Event::Disconnected { conn: ConnId(10) });
    h.advance_alive(secs(6 * 3600 - 1), &[1]);
    assert!(h.ended.is_empty(), "the laptop closed for six hours: the agent kept working");
    h.advance_alive(secs(6 * 3600), &[1]);
    assert_eq!(h.ended, vec![EndReason::Deadline]);

    let mut h = room(Terms { detached: Some(1800), ..terms });
    attach(&mut h, 10, terms);
    h.event(Event::Disconnected { conn: ConnId(10) });
    h.advance_alive(secs(1799), &[1]);
    assert!(h.ended.is_empty());
    h.advance_alive(secs(1800), &[1]);
    assert_eq!(h.ended, vec![EndReason::Unattended], "an operator's detached rule, reported as such");
}

#[test]
fn a_deadline_already_past_in_the_first_token_ends_the_room_at_once() {
    let terms = Terms { ends: T0 + 1, idle: None, detached: None };
    let mut h = Harness::new(RoomConfig::default());
    let entropy = h.entropy();
    h.event(Event::RunnerJoin { conn: ConnId(1), token: with_terms(Scope::Join, "j", terms, h.now), entropy });
    h.advance_to(at(1000));
    assert_eq!(h.ended, vec![EndReason::Deadline]);
}

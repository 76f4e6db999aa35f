//! The browser link against hand-built frames: credentials and paths, exactly-once output across resumes
//! (a property test over random cuts and resume points), acks, heartbeats, close codes and backoff.

use super::*;
use crate::protocol::Welcome;
use proptest::prelude::*;

fn welcome(offset: u64, ticket: &str) -> Vec<u8> {
    Frame::Welcome(Welcome {
        role: Role::Browser,
        session: "s1".into(),
        offset,
        resume_ticket: ticket.into(),
        window: 1024,
        expires_at: 2_000_000_000,
        heartbeat_ms: 3000,
    })
    .encode()
}

fn output(offset: u64, data: &[u8]) -> Vec<u8> {
    Frame::Output { offset, data: data.to_vec() }.encode()
}

fn shown(updates: &[Update]) -> Vec<u8> {
    updates.iter().filter_map(|u| if let Update::Output(d) = u { Some(d.clone()) } else { None }).flatten().collect()
}

#[test]
fn first_attach_uses_the_token_then_resumes_with_the_ticket_at_the_next_byte() {
    let mut link = BrowserLink::new("s1", "tok");
    assert_eq!(link.credential(), Credential::Token("tok".into()));
    assert_eq!(link.path(), "/sessions/s1/attach");
    link.opened(0);
    let updates = link.on_binary(&welcome(0, "t1"), 1).unwrap();
    assert_eq!(updates, vec![Update::Status(Status::Live)]);
    link.on_binary(&output(0, b"hello"), 2).unwrap();
    assert_eq!(link.credential(), Credential::Resume("t1".into()));
    assert_eq!(link.path(), "/sessions/s1/attach?offset=5");
}

#[test]
fn overlap_after_a_resume_is_shown_once_and_a_gap_is_reported() {
    let mut link = BrowserLink::new("s1", "tok");
    link.on_binary(&welcome(0, "t1"), 0).unwrap();
    assert_eq!(shown(&link.on_binary(&output(0, b"abcdef"), 0).unwrap()), b"abcdef");
    // The room resent from an earlier offset: only the new tail is shown.
    link.on_binary(&welcome(3, "t2"), 0).unwrap();
    assert_eq!(shown(&link.on_binary(&output(3, b"defgh"), 0).unwrap()), b"gh");
    assert_eq!(shown(&link.on_binary(&output(5, b"fg"), 0).unwrap()), b"");
    // On the same connection, output may not skip ahead.
    assert_eq!(link.on_binary(&output(20, b"x"), 0), Err(BrowserLinkError::OutputGap { expected: 8, got: 20 }));
    // A fresh attach whose history starts later than the terminal's position: the loss is reported.
    let updates = link.on_binary(&welcome(12, "t3"), 0).unwrap();
    assert!(updates.contains(&Update::Gap(4)), "{updates:?}");
    assert_eq!(link.offset(), 12);
}

#[test]
fn acks_go_out_at_half_the_window() {
    let mut link = BrowserLink::new("s1", "tok");
    link.on_binary(&welcome(0, "t"), 0).unwrap();
    let sends = |u: &[Update]| u.iter().filter(|u| matches!(u, Update::Send(_))).count();
    assert_eq!(sends(&link.on_binary(&output(0, &[b'x'; 511]), 0).unwrap()), 0);
    let updates = link.on_binary(&output(511, b"y"), 0).unwrap();
    assert!(updates.contains(&Update::Send(Frame::Ack { offset: 512 }.encode())), "{updates:?}");
}

#[test]
fn heartbeats_measure_the_round_trip_and_silence_is_detected() {
    let mut link = BrowserLink::new("s1", "tok");
    link.opened(0);
    assert_eq!(link.tick(5000), Ok(None), "no heartbeat before the welcome");
    link.on_binary(&welcome(0, "t"), 0).unwrap();
    assert_eq!(link.tick(500), Ok(Some(PING)), "the first probe right after the welcome");
    assert_eq!(link.tick(1500), Ok(None), "one probe in flight at a time");
    assert_eq!(link.on_text("pong", 1542), Some(1042));
    assert_eq!(link.rtt_ms(), Some(1042));
    assert_eq!(link.on_text("something else", 1543), None);
    assert_eq!(link.tick(1400), Ok(None), "the next probe a third of the heartbeat later");
    assert_eq!(link.tick(1600), Ok(Some(PING)));
    assert_eq!(link.tick(8000), Err(Silent { for_ms: 6457 }));
}

#[test]
fn a_dropped_connection_reconnects_with_growing_jittered_delays_then_gives_up() {
    let mut link = BrowserLink::new("s1", "tok");
    link.on_binary(&welcome(0, "t"), 0).unwrap();
    let mut bounds = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let (after, updates) = link.closed(1006, 0.999);
        if attempt == 1 {
            assert_eq!(updates, vec![Update::Status(Status::Resuming)]);
        }
        let AfterClose::Reconnect { delay_ms } = after else { panic!("{after:?}") };
        bounds.push(delay_ms);
    }
    assert!(bounds.windows(2).all(|w| w[0] <= w[1]), "{bounds:?}");
    assert!(*bounds.last().unwrap() <= BACKOFF_CAP_MS);
    assert!(matches!(link.closed(1006, 0.5).0, AfterClose::Stop { next: NextStep::NewSession, .. }));
    // A welcome resets the count.
    let mut link = BrowserLink::new("s1", "tok");
    for _ in 0..5 {
        link.closed(1006, 0.5);
    }
    link.on_binary(&welcome(0, "t"), 0).unwrap();
    assert_eq!(link.closed(1006, 0.0).0, AfterClose::Reconnect { delay_ms: 50 });
}

#[test]
fn close_codes_lead_to_a_new_token_a_new_session_or_a_clear_message() {
    let mut link = BrowserLink::new("s1", "tok");
    link.on_binary(&welcome(0, "t"), 0).unwrap();
    link.on_binary(&output(0, b"abc"), 0).unwrap();
    assert_eq!(link.closed(CloseCode::ResumeFailed.code(), 0.5).0, AfterClose::NeedToken);
    link.new_token("tok2".into());
    assert_eq!(link.credential(), Credential::Token("tok2".into()));
    assert_eq!(link.path(), "/sessions/s1/attach");

    let mut link = BrowserLink::new("s1", "tok");
    link.on_binary(&welcome(0, "t"), 0).unwrap();
    link.on_binary(&Frame::RunnerAway.encode(), 0).unwrap();
    assert_eq!(link.status(), Status::RunnerAway);
    let updates = link.on_binary(&Frame::RunnerLost.encode(), 0).unwrap();
    assert_eq!(updates, vec![Update::Status(Status::RunnerLost)]);
    link.on_binary(&Frame::Closing { code: CloseCode::RunnerLost, reason: "grace over".into() }.encode(), 0).unwrap();
    let (after, _) = link.closed(CloseCode::RunnerLost.code(), 0.5);
    let AfterClose::Stop { message, next } = after else { panic!("{after:?}") };
    assert_eq!(next, NextStep::NewSession);
    assert!(message.contains("stopped answering") && message.contains("grace over"), "{message}");
    assert_eq!(link.status(), Status::RunnerLost);

    // A refusal announced in a Closing frame counts even when the browser saw another close code.
    let mut link = BrowserLink::new("s1", "tok");
    link.on_binary(&Frame::Closing { code: CloseCode::Replayed, reason: "used".into() }.encode(), 0).unwrap();
    let (after, _) = link.closed(1006, 0.5);
    assert!(matches!(after, AfterClose::Stop { next: NextStep::GiveUp, .. }), "{after:?}");
    assert_eq!(link.status(), Status::Ended);

    // The program's exit ends the session whatever the close code.
    let mut link = BrowserLink::new("s1", "tok");
    link.on_binary(&welcome(0, "t"), 0).unwrap();
    link.on_binary(&Frame::Exited { status: ExitStatus::Code(3) }.encode(), 0).unwrap();
    let (after, _) = link.closed(CloseCode::SessionEnded.code(), 0.5);
    assert_eq!(
        after,
        AfterClose::Stop { message: "The program exited with status 3.".into(), next: NextStep::NewSession }
    );
}

#[test]
fn every_close_code_has_a_message() {
    for code in crate::protocol::ALL_CLOSE_CODES {
        let text = explain(code, "");
        assert!(text.ends_with('.') && text.len() > 10, "{code:?}: {text}");
    }
}

#[test]
fn the_room_may_not_send_browser_frames_or_runner_welcomes() {
    let mut link = BrowserLink::new("s1", "tok");
    assert!(link.on_binary(&Frame::Input { data: b"x".to_vec() }.encode(), 0).is_err());
    assert!(link.on_binary(&output(0, b"x"), 0).is_err(), "output before the welcome");
    let mut w = welcome(0, "t");
    w[2] = 2;
    assert_eq!(link.on_binary(&w, 0), Err(BrowserLinkError::Unexpected("a welcome for a runner")));
    assert!(matches!(link.on_binary(&[9, 9], 0), Err(BrowserLinkError::Frame(_))));
}

#[test]
fn input_is_split_at_the_frame_limit_and_zero_sizes_are_not_sent() {
    let mut link = BrowserLink::new("s1", "tok");
    link.on_binary(&welcome(0, "t"), 0).unwrap();
    let frames = link.input(&vec![b'a'; MAX_DATA_BYTES * 2 + 1]);
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| Frame::decode(f).is_ok()));
    assert_eq!(link.resize(0, 10), None);
    assert_eq!(link.resize(80, 24).map(|f| Frame::decode(&f)), Some(Ok(Frame::Resize { cols: 80, rows: 24 })));
}

proptest! {
    /// Whatever the connection cuts and however far back each resume starts, the terminal shows the
    /// runner's stream exactly once, in order.
    #[test]
    fn output_is_shown_exactly_once_across_any_resumes(
        stream in proptest::collection::vec(any::<u8>(), 1..2000),
        cuts in proptest::collection::vec((1usize..300, 0usize..200), 0..12),
        chunk in 1usize..97,
    ) {
        let mut link = BrowserLink::new("s1", "tok");
        link.on_binary(&welcome(0, "t"), 0).unwrap();
        let mut terminal = Vec::new();
        let (mut sent, mut cuts) = (0usize, cuts.into_iter());
        while sent < stream.len() {
            // Deliver up to the next cut.
            let (run, back) = cuts.next().unwrap_or((stream.len(), 0));
            let until = (sent + run).min(stream.len());
            while sent < until {
                let end = (sent + chunk).min(until);
                terminal.extend(shown(&link.on_binary(&output(sent as u64, &stream[sent..end]), 0).unwrap()));
                sent = end;
            }
            // Reconnect: the room resumes at or before what the browser has.
            let (after, _) = link.closed(1006, 0.3);
            prop_assert!(matches!(after, AfterClose::Reconnect { .. }), "{:?}", after);
            prop_assert_eq!(link.path(), format!("/sessions/s1/attach?offset={}", terminal.len()));
            let from = sent.saturating_sub(back);
            link.on_binary(&welcome(from as u64, "t"), 0).unwrap();
            sent = from;
        }
        prop_assert_eq!(terminal, stream);
    }

    #[test]
    fn backoff_stays_within_its_bound(attempt in 0u32..100, random in any::<f64>()) {
        let delay = backoff_ms(attempt, random);
        prop_assert!((50..=BACKOFF_CAP_MS).contains(&delay));
    }
}

#[test]
fn input_typed_while_disconnected_follows_the_size_after_the_next_welcome() {
    let mut link = BrowserLink::new("s1", "tok");
    assert_eq!(link.resize(80, 24), None, "no connection yet: remembered only");
    assert!(link.input(b"ls\n").is_empty());
    let updates = link.on_binary(&welcome(0, "t1"), 0).unwrap();
    let sent: Vec<Frame> =
        updates.iter().filter_map(|u| if let Update::Send(m) = u { Frame::decode(m).ok() } else { None }).collect();
    assert_eq!(sent, vec![Frame::Resize { cols: 80, rows: 24 }, Frame::Input { data: b"ls\n".to_vec() }]);
    assert_eq!(link.input(b"x").len(), 1, "live: sent at once");

    // The connection drops: typing is queued, bounded, and a resize waits for the next welcome.
    link.closed(1006, 0.5);
    assert!(link.input(b"pwd\n").is_empty());
    assert!(link.input(&vec![b'z'; MAX_QUEUED_INPUT]).is_empty(), "beyond the bound: dropped");
    assert_eq!(link.resize(100, 30), None);
    let updates = link.on_binary(&welcome(0, "t2"), 0).unwrap();
    let sent: Vec<Frame> =
        updates.iter().filter_map(|u| if let Update::Send(m) = u { Frame::decode(m).ok() } else { None }).collect();
    assert_eq!(sent, vec![Frame::Resize { cols: 100, rows: 30 }, Frame::Input { data: b"pwd\n".to_vec() }]);
}

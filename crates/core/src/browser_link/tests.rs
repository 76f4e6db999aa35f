//! The browser link against hand-built frames and a test clock: credentials and paths, exactly-once
//! output across resumes (a property test over random cuts and resume points), acks, heartbeats and
//! silence, close codes and the reconnect backoff.

use super::*;
use crate::protocol::Welcome;
use proptest::prelude::*;

const T0: Timestamp = Timestamp::from_secs(1_000_000);

/// A link and its clock.
struct Harness {
    link: BrowserLink,
    now: Timestamp,
}

impl Harness {
    fn new() -> Harness {
        Harness { link: BrowserLink::new("s1", "tok", 3, T0), now: T0 }
    }

    /// Connected and welcomed at offset 0 with ticket `t`, its first heartbeat probe sent (one is due
    /// right after each welcome).
    fn live() -> Harness {
        let mut h = Harness::new();
        h.open();
        h.binary(&welcome(0, "t"));
        assert_eq!(h.step(Duration::ZERO), vec![Effect::SendText(PING)]);
        h
    }

    /// Handles the due timeout (the connect) and opens the socket.
    fn open(&mut self) -> Effect {
        let fx = self.step(Duration::ZERO);
        let [connect @ Effect::Connect { .. }] = &fx[..] else { panic!("expected a connect: {fx:?}") };
        assert_eq!(self.event(Event::Opened), vec![]);
        connect.clone()
    }

    fn event(&mut self, event: Event) -> Vec<Effect> {
        self.link.handle_event(event, self.now)
    }

    fn binary(&mut self, bytes: &[u8]) -> Vec<Effect> {
        self.event(Event::Binary(bytes.to_vec()))
    }

    /// Moves the clock forward by `by`, handling each deadline as it falls due.
    fn step(&mut self, by: Duration) -> Vec<Effect> {
        let until = self.now + by;
        let mut fx = Vec::new();
        while let Some(at) = self.link.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            let more = self.link.handle_timeout(self.now);
            if more.is_empty() {
                break;
            }
            fx.extend(more);
        }
        self.now = until;
        fx
    }
}

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

fn shown(effects: &[Effect]) -> Vec<u8> {
    effects.iter().filter_map(|u| if let Effect::Output(d) = u { Some(d.clone()) } else { None }).flatten().collect()
}

fn sent(effects: &[Effect]) -> Vec<Frame> {
    effects.iter().filter_map(|u| if let Effect::Send(m) = u { Frame::decode(m).ok() } else { None }).collect()
}

#[test]
fn first_attach_uses_the_token_then_resumes_with_the_ticket_at_the_next_byte() {
    let mut h = Harness::new();
    let connect = h.open();
    assert_eq!(
        connect,
        Effect::Connect { path: "/sessions/s1/attach".into(), credential: Credential::Token("tok".into()) }
    );
    assert_eq!(h.binary(&welcome(0, "t1")), vec![Effect::Status(Status::Live)]);
    h.binary(&output(0, b"hello"));
    assert_eq!(h.link.credential(), Credential::Resume("t1".into()));
    h.event(Event::Closed { code: 1006 });
    let fx = h.step(Duration::from_secs(1));
    assert_eq!(
        fx,
        vec![Effect::Connect {
            path: "/sessions/s1/attach?offset=5".into(),
            credential: Credential::Resume("t1".into())
        }]
    );
}

#[test]
fn a_reloaded_page_continues_its_seat_at_the_byte_it_showed_or_attaches_afresh() {
    // The page kept the ticket and the offset it had shown when it unloaded.
    let mut before = Harness::live();
    before.binary(&output(0, b"hello world"));
    let (ticket, offset) = before.link.resume_point().map(|(t, o)| (t.to_owned(), o)).unwrap();
    assert_eq!((ticket.as_str(), offset), ("t", 11));

    let mut h = Harness { link: BrowserLink::resuming("s1", "fresh", (ticket.clone(), offset), 3, T0), now: T0 };
    assert_eq!(
        h.open(),
        Effect::Connect { path: "/sessions/s1/attach?offset=11".into(), credential: Credential::Resume(ticket) },
        "no replay: the room continues at the byte the page shows"
    );
    h.binary(&welcome(11, "t2"));
    assert_eq!(shown(&h.binary(&output(11, b"!"))), b"!");

    // A ticket the room no longer honours (used by another tab, or its seat gone): attach afresh with
    // the fresh token, and drop the overlap with what the page already shows.
    for refusal in [CloseCode::Unauthorized, CloseCode::ResumeFailed] {
        let mut h = Harness { link: BrowserLink::resuming("s1", "fresh", ("old", 11), 3, T0), now: T0 };
        h.open();
        let fx = h.event(Event::Closed { code: refusal.code() });
        assert!(!fx.iter().any(|e| matches!(e, Effect::Stop { .. })), "{refusal:?}: {fx:?}");
        let [Effect::Connect { credential, .. }] = &h.step(Duration::ZERO)[..] else { panic!("{refusal:?}") };
        assert_eq!(credential, &Credential::Token("fresh".into()));
        h.event(Event::Opened);
        h.binary(&welcome(0, "t3"));
        assert_eq!(shown(&h.binary(&output(0, b"hello world!"))), b"!", "{refusal:?}");
    }
}

#[test]
fn the_deadline_reaches_the_page_on_attach_and_after_an_extension() {
    let mut h = Harness::live();
    assert_eq!(h.binary(&Frame::Deadline { ends_at: 1_000_600 }.encode()), vec![Effect::Deadline(1_000_600)]);
}

#[test]
fn overlap_after_a_resume_is_shown_once_and_a_gap_is_reported() {
    let mut h = Harness::live();
    assert_eq!(shown(&h.binary(&output(0, b"abcdef"))), b"abcdef");
    // The room resent from an earlier offset: only the new tail is shown.
    h.binary(&welcome(3, "t2"));
    h.step(Duration::ZERO);
    assert_eq!(shown(&h.binary(&output(3, b"defgh"))), b"gh");
    assert_eq!(shown(&h.binary(&output(5, b"fg"))), b"");
    // A fresh attach whose history starts later than the terminal's position: the loss is reported.
    let fx = h.binary(&welcome(12, "t3"));
    assert!(fx.contains(&Effect::Gap(4)), "{fx:?}");
    assert_eq!(h.link.offset(), 12);
    assert_eq!(h.step(Duration::ZERO), vec![Effect::SendText(PING)], "a probe after each welcome");
    // On the same connection, output may not skip ahead: the connection is abandoned and resumed.
    let fx = h.binary(&output(20, b"x"));
    assert_eq!(fx[0], Effect::Abandon("output at offset 20 skips bytes after 12".into()));
    assert_eq!(fx[1], Effect::Status(Status::Resuming));
}

#[test]
fn acks_go_out_at_half_the_window() {
    let mut h = Harness::live();
    assert!(sent(&h.binary(&output(0, &[b'x'; 511]))).is_empty());
    assert_eq!(sent(&h.binary(&output(511, b"y"))), vec![Frame::Ack { offset: 512 }]);
}

#[test]
fn heartbeats_measure_the_round_trip_and_silence_is_detected() {
    let mut h = Harness::new();
    h.open();
    assert_eq!(h.link.poll_timeout(), None, "no heartbeat before the welcome");
    h.binary(&welcome(0, "t"));
    assert_eq!(h.step(Duration::from_millis(500)), vec![Effect::SendText(PING)], "the first probe at once");
    assert_eq!(h.step(Duration::from_millis(1000)), vec![], "one probe in flight at a time");
    h.now = h.now + Duration::from_millis(42);
    assert_eq!(h.event(Event::Text("pong".into())), vec![Effect::Rtt(1542)]);
    assert_eq!(h.link.rtt_ms(), Some(1542));
    // The next probe a third of the heartbeat (1 s) after the last one was sent: due already.
    assert_eq!(h.link.poll_timeout(), Some(T0 + Duration::from_millis(1000)));
    assert_eq!(h.step(Duration::ZERO), vec![Effect::SendText(PING)]);
    assert_eq!(h.event(Event::Text("something else".into())), vec![], "not an answer");
    // Silent for two heartbeat intervals (6 s) after the pong: abandoned, and a reconnect scheduled.
    let fx = h.step(Duration::from_millis(6001));
    assert_eq!(fx[0], Effect::Abandon("no message from the room for 6001 ms".into()));
    assert!(matches!(fx[..], [_, Effect::Status(Status::Resuming), Effect::ReconnectIn(_)]), "{fx:?}");
}

#[test]
fn a_dropped_connection_reconnects_with_growing_jittered_delays_then_gives_up() {
    let mut h = Harness::live();
    let mut delays = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let fx = h.event(Event::Closed { code: 1006 });
        if attempt == 1 {
            assert_eq!(fx[0], Effect::Status(Status::Resuming));
        }
        let Some(Effect::ReconnectIn(delay)) = fx.last() else { panic!("{fx:?}") };
        delays.push(*delay);
        let bound = (BACKOFF.base * 2u32.pow((attempt - 1).min(16))).min(BACKOFF.cap);
        assert!(*delay >= BACKOFF.floor && *delay <= bound, "attempt {attempt}: {delay:?}");
        assert!(matches!(h.step(*delay)[..], [Effect::Connect { .. }]));
        h.event(Event::Opened);
    }
    assert!(delays.iter().all(|d| *d <= BACKOFF.cap), "{delays:?}");
    let fx = h.event(Event::Closed { code: 1006 });
    assert!(matches!(fx.last(), Some(Effect::Stop { next: NextStep::NewSession, .. })), "{fx:?}");
    assert_eq!(h.link.poll_timeout(), None);
    // A welcome resets the count.
    let mut h = Harness::live();
    for _ in 0..5 {
        h.event(Event::Closed { code: 1006 });
        h.step(BACKOFF.cap);
        h.event(Event::Opened);
    }
    h.binary(&welcome(0, "t"));
    let fx = h.event(Event::Closed { code: 1006 });
    let Some(Effect::ReconnectIn(delay)) = fx.last() else { panic!("{fx:?}") };
    assert!(*delay <= BACKOFF.base, "{delay:?}");
}

#[test]
fn close_codes_lead_to_a_new_token_a_new_session_or_a_clear_message() {
    let mut h = Harness::live();
    h.binary(&output(0, b"abc"));
    let fx = h.event(Event::Closed { code: CloseCode::ResumeFailed.code() });
    assert_eq!(fx.last(), Some(&Effect::NeedToken));
    assert_eq!(h.link.poll_timeout(), None, "waits for the token");
    let fx = h.event(Event::NewToken("tok2".into()));
    assert_eq!(
        fx,
        vec![Effect::Connect { path: "/sessions/s1/attach".into(), credential: Credential::Token("tok2".into()) }]
    );

    let mut h = Harness::live();
    h.binary(&Frame::RunnerAway.encode());
    assert_eq!(h.link.status(), Status::RunnerAway);
    assert_eq!(h.binary(&Frame::RunnerLost.encode()), vec![Effect::Status(Status::RunnerLost)]);
    h.binary(&Frame::Closing { code: CloseCode::RunnerLost, reason: "grace over".into() }.encode());
    let fx = h.event(Event::Closed { code: CloseCode::RunnerLost.code() });
    let Some(Effect::Stop { message, next }) = fx.last() else { panic!("{fx:?}") };
    assert_eq!(*next, NextStep::NewSession);
    assert!(message.contains("stopped answering") && message.contains("grace over"), "{message}");
    assert_eq!(h.link.status(), Status::RunnerLost);

    // A refusal announced in a Closing frame counts even when the browser saw another close code.
    let mut h = Harness::new();
    h.open();
    h.binary(&Frame::Closing { code: CloseCode::Replayed, reason: "used".into() }.encode());
    let fx = h.event(Event::Closed { code: 1006 });
    assert!(matches!(fx.last(), Some(Effect::Stop { next: NextStep::GiveUp, .. })), "{fx:?}");
    assert_eq!(h.link.status(), Status::Ended);

    // The program's exit ends the session whatever the close code.
    let mut h = Harness::live();
    h.binary(&Frame::Exited { status: ExitStatus::Code(3) }.encode());
    let fx = h.event(Event::Closed { code: CloseCode::SessionEnded.code() });
    assert_eq!(
        fx.last(),
        Some(&Effect::Stop { message: "The program exited with status 3.".into(), next: NextStep::NewSession })
    );
}

#[test]
fn the_room_may_not_send_browser_frames_or_runner_welcomes() {
    let abandoned = |bytes: &[u8]| {
        let mut h = Harness::new();
        h.open();
        match h.binary(bytes).first() {
            Some(Effect::Abandon(why)) => why.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        abandoned(&Frame::Input { data: b"x".to_vec() }.encode()),
        "unexpected frame from the room: a frame the room does not send"
    );
    assert_eq!(abandoned(&output(0, b"x")), "unexpected frame from the room: output before welcome");
    let mut w = welcome(0, "t");
    w[2] = 2;
    assert_eq!(abandoned(&w), "unexpected frame from the room: a welcome for a runner");
    assert!(abandoned(&[9, 9]).starts_with("undecodable frame"));
}

#[test]
fn refused_input_is_told_to_the_person_and_the_link_resumes() {
    let mut h = Harness::live();
    h.binary(&Frame::Closing { code: CloseCode::InputOverflow, reason: "full".into() }.encode());
    let fx = h.event(Event::Closed { code: CloseCode::InputOverflow.code() });
    let Some(Effect::Notice(text)) = fx.first() else { panic!("{fx:?}") };
    assert!(text.contains("not delivered") && text.contains("full"), "{text}");
    assert!(matches!(fx.last(), Some(Effect::ReconnectIn(_))), "{fx:?}");
}

#[test]
fn input_is_split_at_the_frame_limit_and_zero_sizes_are_not_sent() {
    let mut h = Harness::live();
    let frames = sent(&h.event(Event::Input(vec![b'a'; INPUT_CREDIT as usize + 1])));
    let sizes: Vec<usize> =
        frames.iter().map(|f| if let Frame::InputAt { data, .. } = f { data.len() } else { 0 }).collect();
    assert_eq!(sizes, vec![(INPUT_CREDIT as usize).min(MAX_DATA_BYTES)], "within the credit and the frame limit");
    assert_eq!(h.event(Event::Resize { cols: 0, rows: 10 }), vec![]);
    assert_eq!(sent(&h.event(Event::Resize { cols: 80, rows: 24 })), vec![Frame::Resize { cols: 80, rows: 24 }]);
}

#[test]
fn a_paste_goes_out_as_the_room_acks_it_and_waits_across_a_reconnect() {
    let credit = INPUT_CREDIT as usize;
    let mut h = Harness::live();
    let paste: Vec<u8> = (0..credit * 3 + 100).map(|i| (i % 251) as u8).collect();
    let inputs = |fx: &[Effect]| -> Vec<u8> {
        sent(fx)
            .into_iter()
            .filter_map(|f| if let Frame::InputAt { data, .. } = f { Some(data) } else { None })
            .flatten()
            .collect()
    };
    let mut arrived = inputs(&h.event(Event::Input(paste.clone())));
    assert_eq!(arrived.len(), credit, "no more than the credit in flight");
    assert!(inputs(&h.event(Event::Input(b"typed".to_vec()))).is_empty(), "typing waits behind the paste");
    // The room passes half on: as much more goes.
    arrived.extend(inputs(&h.binary(&Frame::Ack { offset: credit as u64 / 2 }.encode())));
    assert_eq!(arrived.len(), credit * 3 / 2);
    assert!(inputs(&h.binary(&Frame::Ack { offset: 10 }.encode())).is_empty(), "an older ack changes nothing");
    // Dropped with a credit's worth in flight: what was in flight is gone (or arrived), the rest waits
    // and goes on the next connection, from a fresh credit.
    h.event(Event::Closed { code: 1006 });
    h.step(BACKOFF.cap);
    h.event(Event::Opened);
    let after = inputs(&h.binary(&welcome(0, "t2")));
    assert_eq!(after.len(), credit);
    assert_eq!(after[..], paste[credit * 3 / 2..credit * 5 / 2], "in order, after what went before");
    let rest = inputs(&h.binary(&Frame::Ack { offset: credit as u64 }.encode()));
    assert_eq!([&after[..], &rest[..]].concat(), [&paste[credit * 3 / 2..], b"typed"].concat());
    // An ack for more than was sent breaks the protocol: the connection is abandoned.
    let fx = h.binary(&Frame::Ack { offset: 1 << 40 }.encode());
    assert!(matches!(&fx[0], Effect::Abandon(why) if why.contains("input ack")), "{fx:?}");
}

#[test]
fn a_message_that_arrives_late_still_counts_and_tokens_stay_out_of_debug() {
    let mut h = Harness::live();
    // The page's timer was throttled: the answer arrives after the silence deadline. It counts.
    h.now = h.now + Duration::from_secs(10);
    assert_eq!(h.event(Event::Text("pong".into())), vec![Effect::Rtt(10_000)]);
    let shown = format!("{:?} {:?}", h.link, Event::Refresh("secret-token".into()));
    assert!(!shown.contains("tok") && !shown.contains("secret") && !shown.contains("\"t\""), "{shown}");
}

#[test]
fn the_in_band_refresh_sends_the_fresh_token_and_keeps_it_for_a_later_attach() {
    let mut h = Harness::live();
    assert_eq!(h.binary(&Frame::RefreshNeeded { expires_at: 5 }.encode()), vec![Effect::RefreshNeeded]);
    assert_eq!(sent(&h.event(Event::Refresh("tok2".into()))), vec![Frame::Refresh { token: "tok2".into() }]);
    h.event(Event::Closed { code: CloseCode::TokenExpired.code() });
    let fx = h.event(Event::NewToken("tok3".into()));
    assert!(matches!(&fx[..], [Effect::Connect { credential: Credential::Token(t), .. }] if t == "tok3"), "{fx:?}");
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
        let mut h = Harness::live();
        let mut terminal = Vec::new();
        let (mut sent, mut cuts) = (0usize, cuts.into_iter());
        while sent < stream.len() {
            // Deliver up to the next cut.
            let (run, back) = cuts.next().unwrap_or((stream.len(), 0));
            let until = (sent + run).min(stream.len());
            while sent < until {
                let end = (sent + chunk).min(until);
                terminal.extend(shown(&h.binary(&output(sent as u64, &stream[sent..end]))));
                sent = end;
            }
            // Reconnect: the room resumes at or before what the browser has.
            let fx = h.event(Event::Closed { code: 1006 });
            prop_assert!(matches!(fx.last(), Some(Effect::ReconnectIn(_))), "{:?}", fx);
            let connect = h.step(BACKOFF.cap);
            let expected = format!("/sessions/s1/attach?offset={}", terminal.len());
            prop_assert!(matches!(&connect[..], [Effect::Connect { path, .. }] if *path == expected), "{:?}", connect);
            h.event(Event::Opened);
            let from = sent.saturating_sub(back);
            h.binary(&welcome(from as u64, "t"));
            sent = from;
        }
        prop_assert_eq!(terminal, stream);
    }
}

#[test]
fn input_typed_while_disconnected_follows_the_size_after_the_next_welcome() {
    let mut h = Harness::new();
    h.open();
    assert_eq!(h.event(Event::Resize { cols: 80, rows: 24 }), vec![], "no welcome yet: remembered only");
    assert_eq!(h.event(Event::Input(b"ls\n".to_vec())), vec![]);
    let fx = h.binary(&welcome(0, "t1"));
    assert_eq!(
        sent(&fx),
        vec![Frame::Resize { cols: 80, rows: 24 }, Frame::InputAt { offset: 0, data: b"ls\n".to_vec() }]
    );
    assert_eq!(h.step(Duration::ZERO), vec![Effect::SendText(PING)]);
    assert_eq!(sent(&h.event(Event::Input(b"x".to_vec()))).len(), 1, "live: sent at once");

    // The connection drops: typing is queued, bounded, and a resize waits for the next welcome.
    h.event(Event::Closed { code: 1006 });
    assert_eq!(h.event(Event::Input(b"pwd\n".to_vec())), vec![]);
    let fx = h.event(Event::Input(vec![b'z'; MAX_QUEUED_INPUT]));
    assert!(matches!(&fx[..], [Effect::Notice(t)] if t.contains("not sent")), "beyond the bound: dropped, told {fx:?}");
    assert_eq!(h.event(Event::Resize { cols: 100, rows: 30 }), vec![]);
    h.step(BACKOFF.cap);
    h.event(Event::Opened);
    let fx = h.binary(&welcome(0, "t2"));
    assert_eq!(
        sent(&fx),
        vec![Frame::Resize { cols: 100, rows: 30 }, Frame::InputAt { offset: 0, data: b"pwd\n".to_vec() }]
    );
}

#[test]
fn the_programs_exit_acknowledges_the_last_output_so_the_room_can_end_at_once() {
    let mut h = Harness::live();
    let fx = h.binary(&Frame::Output { offset: 0, data: b"the last words".to_vec() }.encode());
    assert!(!fx.iter().any(|e| matches!(e, Effect::Send(_))), "a little output waits for more before an ack");
    let fx = h.binary(&Frame::Exited { status: ExitStatus::Code(1) }.encode());
    let acks: Vec<Frame> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Send(bytes) => Frame::decode(bytes).ok(),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![Frame::Ack { offset: 14 }]);
    assert!(fx.iter().any(|e| matches!(e, Effect::Exited(ExitStatus::Code(1)))));
}

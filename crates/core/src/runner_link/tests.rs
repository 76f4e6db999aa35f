//! The runner link driven by events and times: credit, exact continuation, and every clock.

use super::*;
use crate::lifetime::BACKSTOP;
use crate::protocol::Signal;
use crate::protocol::Welcome;

const T0: Timestamp = Timestamp::from_secs(1_000_000);

/// A link and its clock; `step` moves time, firing whatever falls due on the way.
struct Harness {
    link: RunnerLink,
    now: Timestamp,
}

impl Harness {
    fn new(deadline: Option<Duration>) -> Harness {
        let link = RunnerLink::new(LinkConfig::DEFAULT, "join".into(), deadline.map(|d| T0 + d), 7, T0);
        Harness { link, now: T0 }
    }

    /// A harness that has dialled and been welcomed with `window` bytes of credit.
    fn joined(window: u32) -> Harness {
        let mut h = Harness::new(None);
        assert_eq!(h.timeout(), vec![Effect::Dial(Credential::Token("join".into()))]);
        assert_eq!(h.event(Event::Connected), vec![]);
        assert_eq!(h.event(Event::Message(welcome(0, window))), vec![Effect::StartProgram]);
        h
    }

    fn event(&mut self, event: Event) -> Vec<Effect> {
        self.link.handle_event(event, self.now)
    }

    fn timeout(&mut self) -> Vec<Effect> {
        let due = self.link.poll_timeout().expect("a deadline");
        assert!(due <= self.now, "nothing is due yet (next at +{:?})", due.since(self.now));
        self.link.handle_timeout(self.now)
    }

    /// Moves the clock forward by `by`, handling each deadline as it falls due; returns the effects.
    fn step(&mut self, by: Duration) -> Vec<Effect> {
        let until = self.now + by;
        let mut fx = Vec::new();
        while let Some(at) = self.link.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            fx.extend(self.link.handle_timeout(self.now));
        }
        self.now = until;
        fx
    }
}

fn welcome(offset: u64, window: u32) -> Vec<u8> {
    Frame::Welcome(Welcome {
        role: Role::Runner,
        session: "s".into(),
        offset,
        resume_ticket: format!("r.{offset}").into(),
        window,
        expires_at: 0,
        heartbeat_ms: 30_000,
    })
    .encode()
}

fn output(offset: u64, data: &[u8]) -> Effect {
    Effect::Send(Frame::Output { offset, data: data.to_vec() }.encode())
}

fn credit(acked: u64, limit: u64) -> Event {
    Event::Message(Frame::Credit { acked, limit }.encode())
}

#[test]
fn sends_within_credit_and_resumes_at_the_room_offset() {
    let mut h = Harness::new(None);
    assert_eq!(h.link.read_budget(), 0, "no credit before the welcome");
    h = Harness::joined(10);
    assert_eq!(h.link.read_budget(), 10);
    assert_eq!(h.event(Event::Output(b"0123456789".to_vec())), vec![output(0, b"0123456789")]);
    assert_eq!(h.link.read_budget(), 0);
    assert_eq!(h.event(credit(4, 14)), vec![]);
    assert_eq!((h.link.unacked(), h.link.read_budget()), (6, 4));
    assert_eq!(h.event(Event::Output(b"abcd".to_vec())), vec![output(10, b"abcd")]);
    // The connection drops; the room had stored 7 bytes. The redial offers the resume ticket.
    assert_eq!(h.event(Event::Closed { code: None, reason: "reset".into() }), vec![]);
    let fx = h.step(Duration::from_secs(1));
    assert_eq!(fx, vec![Effect::Dial(Credential::Resume("r.0".into()))]);
    assert_eq!(h.event(Event::Connected), vec![]);
    assert_eq!(h.event(Event::Message(welcome(7, 7))), vec![output(7, b"789abcd")]);
    assert_eq!(h.link.resume_ticket(), Some("r.7"));
    // The exit goes after the last byte, once the terminal closed; the room's last credit finishes.
    // (A second has passed since the output: a snapshot is due by then.)
    let fx = h.event(Event::ProgramExited(ExitStatus::Code(0)));
    assert_eq!(fx, vec![Effect::TakeSnapshot]);
    let exited = Effect::Send(Frame::Exited { status: ExitStatus::Code(0) }.encode());
    assert_eq!(h.event(Event::PtyClosed), vec![exited]);
    assert_eq!(
        h.event(credit(14, 20)),
        vec![Effect::CloseNormally("the program exited".into()), Effect::Finish(Outcome::Exited(ExitStatus::Code(0)))]
    );
    assert!(h.link.is_finished() && h.link.poll_timeout().is_none());
}

#[test]
fn relays_instructions_and_drops_a_connection_that_breaks_the_protocol() {
    let mut h = Harness::joined(100);
    let frame = |f: Frame| Event::Message(f.encode());
    assert_eq!(h.event(frame(Frame::Input { data: vec![3] })), vec![Effect::WriteInput(vec![3])]);
    assert_eq!(h.event(frame(Frame::Ping { nonce: 5 })), vec![Effect::Send(Frame::Pong { nonce: 5 }.encode())]);
    assert_eq!(h.event(frame(Frame::Resize { cols: 90, rows: 30 })), vec![Effect::Resize { cols: 90, rows: 30 }]);
    assert_eq!(h.event(frame(Frame::Signal { signal: Signal::Interrupt })), vec![Effect::Signal(Signal::Interrupt)]);
    assert_eq!(h.event(frame(Frame::RunnerLost)), vec![Effect::Abandon("a frame meant for browsers".into())]);
    // Abandoned: the next dial comes after a backoff, and resumes.
    assert!(matches!(h.step(Duration::from_secs(1))[..], [Effect::Dial(Credential::Resume(_))]));
    h.event(Event::Connected);
    assert_eq!(h.event(credit(1, 2)), vec![Effect::Abandon("room offset 1 is beyond the 0 bytes produced".into())]);
}

#[test]
fn heartbeats_go_out_and_a_silent_room_is_redialled_with_backoff() {
    let mut h = Harness::joined(100);
    let ping = |nonce| Effect::Send(Frame::Ping { nonce }.encode());
    assert_eq!(h.step(Duration::from_secs(30)), vec![ping(1)]);
    assert_eq!(h.step(Duration::from_secs(30)), vec![ping(2)]);
    assert_eq!(h.step(Duration::from_secs(30)), vec![ping(3)]);
    // 3 heartbeats and 10 s after the last message, the connection is given up and redialled.
    let fx = h.step(Duration::from_secs(10));
    assert_eq!(fx, vec![Effect::Abandon("the room stopped answering heartbeats".into())]);
    let redial = h.link.poll_timeout().unwrap().since(h.now);
    assert!(redial >= Duration::from_millis(50) && redial <= Duration::from_millis(100), "{redial:?}");
    // Each failed dial doubles the bound, up to 5 s.
    for _ in 0..8 {
        assert!(matches!(h.step(Duration::from_secs(5))[..], [Effect::Dial(_)]));
        h.event(Event::DialFailed { permanent: false, reason: "refused".into() });
    }
    let next = h.link.poll_timeout().unwrap().since(h.now);
    assert!(next >= Duration::from_millis(50) && next <= Duration::from_secs(5), "{next:?}");
}

#[test]
fn the_offline_limit_a_refusal_and_the_deadline_end_the_session() {
    // Unreachable: dials fail for the whole offline limit.
    let mut h = Harness::new(None);
    let mut outcome = None;
    for _ in 0..200 {
        for fx in h.step(Duration::from_secs(1)) {
            match fx {
                Effect::Dial(_) => {
                    let failed = Event::DialFailed { permanent: false, reason: "down".into() };
                    for fx in h.link.handle_event(failed, h.now) {
                        let Effect::Finish(o) = fx else { panic!("{fx:?}") };
                        outcome = Some(o);
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        if outcome.is_some() {
            break;
        }
    }
    assert!(matches!(outcome, Some(Outcome::Unreachable(_))), "{outcome:?}");
    assert!(h.now.since(T0) >= Duration::from_secs(60) && h.now.since(T0) <= Duration::from_secs(66));

    // A permanent refusal ends it at once.
    let mut h = Harness::new(None);
    h.timeout();
    let fx = h.event(Event::DialFailed { permanent: true, reason: "401".into() });
    assert_eq!(fx, vec![Effect::Finish(Outcome::Refused("401".into()))]);

    // The deadline, connected or not: a backstop after the room's (which ends the session first).
    let mut h = Harness::new(Some(Duration::from_secs(90)));
    h.timeout();
    h.event(Event::DialFailed { permanent: false, reason: "down".into() });
    let fx: Vec<Effect> = h.step(Duration::from_secs(90)).into_iter().filter(is_finish).collect();
    assert!(fx.is_empty(), "the room's deadline first: {fx:?}");
    let fx: Vec<Effect> = h.step(BACKSTOP).into_iter().filter(is_finish).collect();
    assert_eq!(fx, vec![Effect::Finish(Outcome::DeadlinePassed)]);

    // No idle rule here: hours without input or output end nothing (the room owns that rule).
    let mut h = Harness::joined(1000);
    let fx: Vec<Effect> = h.step(Duration::from_secs(24 * 3600)).into_iter().filter(is_finish).collect();
    assert!(fx.is_empty(), "{fx:?}");
}

#[test]
fn an_extension_from_the_room_moves_the_deadline_later_never_earlier() {
    let mut h = Harness::new(Some(Duration::from_secs(60)));
    h.timeout();
    h.event(Event::Connected);
    h.event(Event::Message(welcome(0, 1000)));
    let later = (T0 + Duration::from_secs(3600)).as_secs();
    h.event(Event::Message(Frame::Deadline { ends_at: later }.encode()));
    h.event(Event::Message(Frame::Deadline { ends_at: T0.as_secs() + 30 }.encode()));
    let fx: Vec<Effect> = h.step(Duration::from_secs(3600)).into_iter().filter(is_finish).collect();
    assert!(fx.is_empty(), "extended to an hour: {fx:?}");
    let fx: Vec<Effect> = h.step(BACKSTOP).into_iter().filter(is_finish).collect();
    assert_eq!(fx, vec![Effect::Finish(Outcome::DeadlinePassed)]);
}

fn is_finish(fx: &Effect) -> bool {
    matches!(fx, Effect::Finish(_))
}

#[test]
fn the_room_ends_the_session_by_frame_or_close_code() {
    let mut h = Harness::joined(10);
    let closing = Frame::Closing { code: CloseCode::SessionEnded, reason: "deleted".into() };
    assert_eq!(
        h.event(Event::Message(closing.encode())),
        vec![Effect::Finish(Outcome::Ended(CloseCode::SessionEnded, "deleted".into()))]
    );
    let mut h = Harness::joined(10);
    let fx = h.event(Event::Closed { code: Some(CloseCode::RunnerLost.code()), reason: "lost".into() });
    assert_eq!(fx, vec![Effect::Finish(Outcome::Ended(CloseCode::RunnerLost, "lost".into()))]);
    // A room too busy now says so before it closes: the runner comes back later.
    let mut h = Harness::joined(10);
    let busy = Frame::Closing { code: CloseCode::Overloaded, reason: "busy".into() };
    assert_eq!(h.event(Event::Message(busy.encode())), vec![]);
    // Resumable codes, and no code at all, mean redial.
    for code in [Some(1000), Some(CloseCode::Overloaded.code()), Some(1006), None] {
        let mut h = Harness::joined(10);
        assert_eq!(h.event(Event::Closed { code, reason: String::new() }), vec![], "{code:?}");
        assert!(matches!(h.step(Duration::from_secs(1))[..], [Effect::Dial(Credential::Resume(_))]), "{code:?}");
    }
    let mut h = Harness::joined(10);
    assert_eq!(h.event(Event::Stop), vec![Effect::Finish(Outcome::Stopped)]);
}

#[test]
fn a_message_that_arrives_late_still_counts_and_a_welcome_may_not_go_back() {
    let mut h = Harness::joined(100);
    // The host's timer fired late: the room's answer arrives after the silence deadline. It counts.
    h.now = h.now + silence_limit(HEARTBEAT_INTERVAL) + Duration::from_secs(1);
    let fx = h.event(Event::Message(Frame::Pong { nonce: 1 }.encode()));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Abandon(_))), "{fx:?}");
    // A room that welcomes the runner before what it already acknowledged is broken: drop it.
    h.event(Event::Output(b"abcdef".to_vec()));
    h.event(credit(4, 100));
    h.event(Event::Closed { code: None, reason: "reset".into() });
    assert!(matches!(h.step(Duration::from_secs(1))[..], [Effect::Dial(_)]));
    h.event(Event::Connected);
    let fx = h.event(Event::Message(welcome(2, 100)));
    assert_eq!(fx, vec![Effect::Abandon("room offset 2 is before the 4 bytes it acknowledged".into())]);
}

#[test]
fn the_offline_limit_counts_from_the_last_connection_and_a_zero_limit_still_dials_once() {
    let config = LinkConfig { max_offline: Duration::ZERO, ..LinkConfig::DEFAULT };
    let mut link = RunnerLink::new(config, "join".into(), None, 1, T0);
    assert!(matches!(link.handle_timeout(T0)[..], [Effect::Dial(_)]));
    let fx = link.handle_event(Event::DialFailed { permanent: false, reason: "down".into() }, T0);
    assert!(matches!(&fx[..], [Effect::Finish(Outcome::Unreachable(_))]), "{fx:?}");
}

#[test]
fn secrets_stay_out_of_debug() {
    let h = Harness::joined(10);
    let shown = format!("{:?}", h.link);
    assert!(!shown.contains("join") && !shown.contains("r.0"), "{shown}");
}

#[test]
fn leftovers_holding_the_terminal_are_killed_then_given_up_on() {
    let mut h = Harness::joined(100);
    h.event(Event::ProgramExited(ExitStatus::Code(3)));
    // The terminal stays open (a background job holds it): after the drain time, kill the leftovers.
    assert_eq!(h.step(Duration::from_millis(299)), vec![]);
    assert_eq!(h.step(Duration::from_millis(1)), vec![Effect::KillLeftovers]);
    // Still open after another drain time: the exit is reported without waiting further, and as the
    // room has every byte already, the session is over.
    let exited = Effect::Send(Frame::Exited { status: ExitStatus::Code(3) }.encode());
    assert_eq!(
        h.step(Duration::from_millis(300)),
        vec![
            exited,
            Effect::CloseNormally("the program exited".into()),
            Effect::Finish(Outcome::Exited(ExitStatus::Code(3)))
        ]
    );
    assert_eq!(h.link.read_budget(), 0);
}

#[test]
fn input_written_to_the_pty_is_reported_in_steps_and_when_caught_up() {
    let mut h = Harness::joined(100);
    let input = |n: usize| Event::Message(Frame::Input { data: vec![b'i'; n] }.encode());
    let ack = |offset| Effect::Send(Frame::Ack { offset }.encode());
    assert_eq!(h.event(input(10_000)), vec![Effect::WriteInput(vec![b'i'; 10_000])]);
    h.event(input(30_000));
    assert_eq!(h.event(Event::InputWritten(10_000)), vec![], "below a step and not caught up");
    assert_eq!(h.event(Event::InputWritten(8_000)), vec![ack(18_000)], "a step");
    assert_eq!(h.event(Event::InputWritten(22_000)), vec![ack(40_000)], "caught up");
    // Input held from a lost connection is written first and not reported on the next one: the room
    // counts each connection's input from zero.
    h.event(input(5_000));
    h.event(Event::Closed { code: None, reason: "reset".into() });
    assert!(matches!(h.step(Duration::from_secs(1))[..], [Effect::Dial(_)]));
    h.event(Event::Connected);
    h.event(Event::Message(welcome(0, 100)));
    h.event(input(1_000));
    assert_eq!(h.event(Event::InputWritten(5_000)), vec![], "the old connection's bytes");
    assert_eq!(h.event(Event::InputWritten(1_000)), vec![ack(1_000)]);
}

#[test]
fn the_program_starts_once_and_only_after_the_join_is_welcomed() {
    // Refused at the door: nothing ever starts.
    let mut h = Harness::new(None);
    h.timeout();
    let fx = h.event(Event::DialFailed { permanent: true, reason: "used join token".into() });
    assert_eq!(fx, vec![Effect::Finish(Outcome::Refused("used join token".into()))]);
    // Connected but closed before the welcome (a forged token's close): still nothing.
    let mut h = Harness::new(None);
    h.timeout();
    assert_eq!(h.event(Event::Connected), vec![]);
    let code = CloseCode::Unauthorized;
    let fx = h.event(Event::Closed { code: Some(code.code()), reason: "bad".into() });
    assert!(!fx.contains(&Effect::StartProgram), "{fx:?}");
    // Welcomed: it starts, the one-time token is dropped, and a resume does not start it again.
    let mut h = Harness::joined(100);
    assert!(h.link.token.is_empty(), "the join token is dropped once used");
    h.event(Event::Closed { code: None, reason: "reset".into() });
    assert_eq!(h.step(Duration::from_secs(1)), vec![Effect::Dial(Credential::Resume("r.0".into()))]);
    h.event(Event::Connected);
    assert!(!h.event(Event::Message(welcome(0, 100))).contains(&Effect::StartProgram));
}

#[test]
fn the_screen_is_snapshotted_once_output_settles_often_while_it_flows_and_when_the_room_asks() {
    let mut h = Harness::joined(1 << 20);
    let takes = |fx: &[Effect]| fx.iter().filter(|e| matches!(e, Effect::TakeSnapshot)).count();
    assert_eq!(takes(&h.step(Duration::from_secs(30))), 0, "nothing written: a blank screen needs none");
    h.event(Event::Output(b"$ ".to_vec()));
    assert_eq!(takes(&h.step(SNAPSHOT_SETTLE - Duration::from_millis(1))), 0);
    assert_eq!(takes(&h.step(Duration::from_millis(1))), 1, "output settled");
    // A flood: output every 100 ms for 12 s still gets one at least every SNAPSHOT_EVERY.
    let mut taken = 0;
    for _ in 0..120 {
        h.event(Event::Output(vec![b'x'; 100]));
        taken += takes(&h.step(Duration::from_millis(100)));
    }
    assert!((2..=3).contains(&taken), "{taken} snapshots in 12 s of output");
    // The host's answer goes to the room in parts, with the offset it was taken at.
    let data = vec![b's'; MAX_DATA_BYTES + 10];
    let sent = h.event(Event::Snapshot { offset: 12_002, data: data.clone() });
    let frames: Vec<Frame> =
        sent.iter().filter_map(|e| if let Effect::Send(m) = e { Frame::decode(m).ok() } else { None }).collect();
    assert_eq!(
        frames,
        [
            Frame::Snapshot { offset: 12_002, last: false, data: data[..MAX_DATA_BYTES].to_vec() },
            Frame::Snapshot { offset: 12_002, last: true, data: data[MAX_DATA_BYTES..].to_vec() },
        ]
    );
    // The room asks: at once, though nothing changed.
    h.step(Duration::from_secs(10));
    h.event(Event::Message(Frame::SnapshotWanted.encode()));
    assert_eq!(takes(&h.step(Duration::ZERO)), 1);
}

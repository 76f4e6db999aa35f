//! The exact-resume property: under arbitrary interleavings of output, acks, browser and runner drops
//! (losing whatever was in flight), resumes, hibernation and crashes of a host that writes output in
//! batches (losing what it had not written), the browser receives exactly the runner's byte stream:
//! every frame continues at the byte it already has, and in the end it has all of it. Both ends are
//! the real state machines: the room, and the runner's `RunnerLink` (on a clock of its own).

use super::*;
use crate::machine::StateMachine;
use crate::protocol::Credential;
use crate::runner_link::{Effect as RunnerEffect, Event as RunnerEvent, LinkConfig, RunnerLink};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Action {
    RunnerSend(u16),
    BrowserRead,
    BrowserAck,
    BrowserDrop,
    BrowserResume,
    RunnerDrop,
    RunnerResume,
    Hibernate,
    Flush,
    Crash,
    Tick(u16),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (1u16..3000).prop_map(Action::RunnerSend),
        4 => Just(Action::BrowserRead),
        3 => Just(Action::BrowserAck),
        1 => Just(Action::BrowserDrop),
        2 => Just(Action::BrowserResume),
        1 => Just(Action::RunnerDrop),
        2 => Just(Action::RunnerResume),
        1 => Just(Action::Hibernate),
        2 => Just(Action::Flush),
        1 => Just(Action::Crash),
        1 => (1u16..2000).prop_map(Action::Tick),
    ]
}

struct Runner {
    conn: Option<u64>,
    link: RunnerLink,
    /// The runner host's clock, moved on only to let the link redial.
    now: Timestamp,
    /// Bytes of the stream read from the "PTY" so far.
    read: usize,
    /// How the link ended the session, if it did.
    finished: Option<crate::runner_link::Outcome>,
}

struct Browser {
    conn: Option<u64>,
    ticket: Secret,
    received: Vec<u8>,
    exited: bool,
}

struct World {
    h: Harness,
    stream: Vec<u8>,
    runner: Runner,
    browser: Browser,
    next_conn: u64,
}

impl World {
    fn new(stream: Vec<u8>, config: RoomConfig) -> World {
        let mut h = Harness::new(config);
        let w = h.join_runner(1);
        // No clock of the link's may end the run: only the room's offsets are under test.
        let day = core::time::Duration::from_secs(86_400);
        let config = LinkConfig { max_offline: day, ..LinkConfig::DEFAULT };
        let now = at(0);
        let mut link = RunnerLink::new(config, "join".into(), None, 1, now);
        assert_eq!(link.handle_timeout(now), vec![RunnerEffect::Dial(Credential::Token("join".into()))]);
        link.handle_event(RunnerEvent::Connected, now);
        assert_eq!(
            link.handle_event(RunnerEvent::Message(Frame::Welcome(w).encode()), now),
            vec![RunnerEffect::StartProgram]
        );
        let bw = welcome(&h.attach(2, "attach-1"));
        World {
            h,
            stream,
            runner: Runner { conn: Some(1), link, now, read: 0, finished: None },
            browser: Browser { conn: Some(2), ticket: bw.resume_ticket, received: Vec::new(), exited: false },
            next_conn: 3,
        }
    }

    fn ended(&self) -> bool {
        matches!(self.h.room.phase(), Phase::Ended(_))
    }

    /// Feeds the runner's link one event and carries out what it asks of the connection.
    fn runner_event(&mut self, event: RunnerEvent) {
        let effects = self.runner.link.handle_event(event, self.runner.now);
        for effect in effects {
            match effect {
                RunnerEffect::Send(bytes) => {
                    if let Some(conn) = self.runner.conn {
                        self.h.send(conn, Frame::decode(&bytes).expect("the link sends valid frames"));
                    }
                }
                RunnerEffect::Abandon(why) => panic!("the room only sends the runner valid frames: {why}"),
                // The room ended the session: the run stops at the next step.
                RunnerEffect::Finish(outcome) => self.runner.finished = Some(outcome),
                other => panic!("unexpected runner effect {other:?}"),
            }
        }
    }

    fn runner_inbox(&mut self) {
        let Some(conn) = self.runner.conn else { return };
        for frame in self.h.take(conn) {
            self.runner_event(RunnerEvent::Message(frame.encode()));
        }
        if let Some(code) = self.h.closed(conn) {
            self.runner.conn = None;
            self.runner_event(RunnerEvent::Closed { code: Some(code.code()), reason: String::new() });
        }
    }

    /// The connection dropped under the runner.
    fn runner_lost(&mut self) {
        self.runner_event(RunnerEvent::Closed { code: None, reason: "dropped".into() });
    }

    fn runner_send(&mut self, n: usize) {
        self.runner_inbox();
        if self.runner.conn.is_none() {
            return;
        }
        let take = n.min(self.runner.link.read_budget()).min(self.stream.len() - self.runner.read);
        let data = self.stream[self.runner.read..self.runner.read + take].to_vec();
        self.runner.read += take;
        self.runner_event(RunnerEvent::Output(data));
        self.runner_inbox();
    }

    fn browser_read(&mut self) -> Result<(), TestCaseError> {
        let Some(conn) = self.browser.conn else {
            return Ok(());
        };
        for frame in self.h.take(conn) {
            match frame {
                Frame::Welcome(w) => {
                    prop_assert_eq!(w.offset, self.browser.received.len() as u64, "welcome at the browser's byte");
                    self.browser.ticket = w.resume_ticket;
                }
                Frame::Output { offset, data } => {
                    prop_assert_eq!(offset, self.browser.received.len() as u64, "output continues at the exact byte");
                    self.browser.received.extend_from_slice(&data);
                }
                Frame::Exited { .. } => self.browser.exited = true,
                _ => {}
            }
        }
        if self.h.closed(conn).is_some() {
            self.browser.conn = None;
        }
        Ok(())
    }

    fn step(&mut self, action: &Action) -> Result<(), TestCaseError> {
        if self.ended() {
            return Ok(());
        }
        match action {
            Action::RunnerSend(n) => self.runner_send(usize::from(*n)),
            Action::BrowserRead => self.browser_read()?,
            Action::BrowserAck => {
                if let Some(conn) = self.browser.conn {
                    self.h.send(conn, Frame::Ack { offset: self.browser.received.len() as u64 });
                }
            }
            Action::BrowserDrop => {
                if let Some(conn) = self.browser.conn.take() {
                    self.h.take(conn); // in flight: lost
                    self.h.event(Event::Disconnected { conn: ConnId(conn) });
                }
            }
            Action::BrowserResume => {
                if let Some(conn) = self.browser.conn.take() {
                    self.h.take(conn);
                }
                let conn = self.next_conn;
                self.next_conn += 1;
                let ticket = self.browser.ticket.clone();
                let entropy = self.h.entropy();
                let offset = self.browser.received.len() as u64;
                self.h.event(Event::BrowserResume { conn: ConnId(conn), ticket, offset, entropy });
                prop_assert_eq!(self.h.closed(conn), None, "resume with the latest ticket is accepted");
                self.browser.conn = Some(conn);
                self.browser_read()?;
            }
            Action::RunnerDrop => {
                if let Some(conn) = self.runner.conn.take() {
                    self.h.take(conn);
                    self.h.event(Event::Disconnected { conn: ConnId(conn) });
                    self.runner_lost();
                }
            }
            Action::RunnerResume => {
                if self.runner.conn.is_none() {
                    // The link redials when its backoff says so, with its resume ticket.
                    let Some(due) = self.runner.link.poll_timeout() else {
                        panic!("no redial scheduled; the link ended with {:?}", self.runner.finished)
                    };
                    self.runner.now = self.runner.now.max(due);
                    let dial = self.runner.link.handle_timeout(self.runner.now);
                    let [RunnerEffect::Dial(Credential::Resume(ticket))] = &dial[..] else {
                        panic!("expected a resume dial: {dial:?}")
                    };
                    let conn = self.next_conn;
                    self.next_conn += 1;
                    let entropy = self.h.entropy();
                    self.h.event(Event::RunnerResume {
                        conn: ConnId(conn),
                        ticket: Secret::new(ticket.clone()),
                        entropy,
                    });
                    self.runner.conn = Some(conn);
                    self.runner_event(RunnerEvent::Connected);
                    self.runner_inbox();
                }
            }
            Action::Hibernate => {
                // An object hibernates only once its writes are done (a write may earn the runner a
                // credit, which is itself worth a write).
                while self.h.room.checkpoint_due(&self.h.store.stored) != CheckpointDue::Nothing {
                    self.h.flush();
                }
                let woken = self.h.store.wake();
                let mut same = woken.clone();
                let stale = same.take_liveness_from(&self.h.room);
                prop_assert_eq!(&same, &self.h.room, "the checkpoints restore the room, but for liveness");
                prop_assert!(stale < LIVENESS_SLACK, "liveness restored {stale:?} stale");
                prop_assert_eq!(&Room::from_bytes(&self.h.room.to_bytes()).expect("restores"), &self.h.room);
                self.h.room = woken;
            }
            Action::Flush => self.h.flush(),
            Action::Crash => {
                // The object dies: its memory and whatever it had not written are gone, and every
                // connection drops with what was in flight.
                if let Some(conn) = self.browser.conn.take() {
                    self.h.take(conn);
                }
                if let Some(conn) = self.runner.conn.take() {
                    self.h.take(conn);
                    self.runner_lost();
                }
                self.h.room = self.h.store.wake();
            }
            Action::Tick(ms) => {
                let t = self.h.now + core::time::Duration::from_millis(u64::from(*ms));
                self.h.advance_to(t);
            }
        }
        Ok(())
    }

    /// Reconnects whoever is away and lets everything flow to the end.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        if self.browser.conn.is_none() {
            self.step(&Action::BrowserResume)?;
        }
        if self.runner.conn.is_none() {
            self.step(&Action::RunnerResume)?;
        }
        for _ in 0..10_000 {
            if self.browser.received.len() == self.stream.len() || self.ended() {
                break;
            }
            self.runner_send(8192);
            self.h.flush();
            self.browser_read()?;
            self.step(&Action::BrowserAck)?;
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn browser_sees_exactly_the_runner_stream(
        len in 0usize..60_000,
        seed in any::<u8>(),
        history in prop_oneof![Just(0u32), Just(700u32)],
        defer in any::<bool>(),
        actions in proptest::collection::vec(action(), 0..250),
    ) {
        let stream: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let config = RoomConfig {
            buffer_capacity: 5000,
            history_bytes: history,
            browser_window: 1500,
            runner_grace: core::time::Duration::from_secs(3600),
            dead_after: core::time::Duration::from_secs(3600),
            ..RoomConfig::default()
        };
        let mut world = World::new(stream.clone(), config);
        world.h.defer = defer;
        for a in &actions {
            world.step(a)?;
            prop_assert!(world.h.room.buffered_bytes() <= 5000 + 3000, "buffer stays bounded");
        }
        world.drain()?;
        prop_assert_eq!(&world.browser.received, &stream);
    }
}

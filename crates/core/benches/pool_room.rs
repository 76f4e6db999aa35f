//! The pool room's cost per command as its ledger grows: one start and one stop (submitted, handed to
//! the agent, answered), with the rows the host writes on each `Effect::Store` encoded as the edge
//! encodes them. The room runs at a steady rate, so its ledger holds about `size` commands (ended ones
//! are kept `keep`) beside as many placed sessions and used token ids: a busy region's room. The
//! baseline is a nearly empty room; a cost that grows with the ledger shows as a ratio above 1.

#![allow(missing_docs)] // criterion_group! generates undocumented functions.
#![allow(clippy::print_stdout)] // The ledger's size beside the figures.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use edgeshell_core::ids::SessionId;
use edgeshell_core::machine::StateMachine;
use edgeshell_core::pool_api::{AgentMessage, AgentReport, RoomMessage};
use edgeshell_core::pool_ledger::{Kind, Payload};
use edgeshell_core::pool_room::{AgentConn, Effect, Event, PoolRoom, PoolRoomConfig, Submission, WaiterId};
use edgeshell_core::secret::Secret;
use edgeshell_core::time::Timestamp;
use std::collections::VecDeque;
use std::time::Duration;

const CONN: AgentConn = AgentConn(1);

/// A room at a steady rate of commands; `live` sessions, oldest first, stopped in turn.
struct Busy {
    room: PoolRoom,
    now: Timestamp,
    step: Duration,
    live: VecDeque<SessionId>,
    next: u64,
    /// Whether stores are carried out (not while filling the ledger: the set-up is not measured).
    storing: bool,
    stored_bytes: usize,
}

impl Busy {
    /// A room whose ledger holds about `size` commands: one command every `keep / size`.
    fn new(size: usize) -> Busy {
        let config = PoolRoomConfig::DEFAULT;
        let now = Timestamp::from_secs(1_000_000);
        let room = PoolRoom::new(config, PoolRoom::new_ledger(&config), now);
        let step = config.keep / size as u32;
        let mut busy = Busy { room, now, step, live: VecDeque::new(), next: 0, storing: false, stored_bytes: 0 };
        busy.event(Event::Connected { conn: CONN, agent: "eu-a".into() });
        let report = AgentReport { capacity: u32::MAX, load: 0, draining: false, runners: Vec::new() };
        busy.event(Event::Said { conn: CONN, message: AgentMessage::Hello(report) });
        // Fill the ledger to its steady size: as many live sessions, and each start's and stop's record.
        for _ in 0..size {
            busy.start();
        }
        for _ in 0..size / 2 {
            busy.cycle();
        }
        busy.storing = true;
        busy
    }

    /// Carries out the machine's effects as a host would: stores, and answers what went to the agent.
    fn event(&mut self, event: Event) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            for effect in self.room.handle_event(event, self.now) {
                match effect {
                    Effect::Store if self.storing => self.stored_bytes += store(&mut self.room),
                    Effect::Store => {}
                    Effect::Send { conn, message: RoomMessage::Command { id, .. } } => {
                        let message = AgentMessage::Answer { id, status: 200, body: "{}".into() };
                        events.push_back(Event::Said { conn, message });
                    }
                    Effect::Reply { .. } | Effect::Close { .. } => {}
                }
            }
        }
        let _ = self.room.poll_timeout();
    }

    fn submit(&mut self, kind: Kind, session: SessionId) {
        self.next += 1;
        self.now = self.now + self.step;
        let command = Submission {
            kind,
            session,
            jti: format!("jti-{:020}", self.next),
            forget_after: self.now + Duration::from_secs(90),
            payload: Payload { token: Secret::new("t".repeat(700)), body: "b".repeat(200) },
        };
        self.event(Event::Submit { waiter: WaiterId(self.next), command });
    }

    fn start(&mut self) {
        let session = SessionId::new(format!("s_{:022}", self.next)).unwrap();
        self.live.push_back(session.clone());
        self.submit(Kind::Start, session);
    }

    /// One session started, the oldest stopped.
    fn cycle(&mut self) {
        self.start();
        let oldest = self.live.pop_front().unwrap();
        self.submit(Kind::ToHolder, oldest);
    }
}

/// What the edge writes on a store: the rows that changed.
fn store(room: &mut PoolRoom) -> usize {
    room.take_changes().into_rows().iter().map(|row| row.key.len() + row.value.as_ref().map_or(0, String::len)).sum()
}

fn commands(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_room");
    group.sample_size(20);
    for size in [100usize, 10_000] {
        let mut busy = Busy::new(size);
        group.bench_function(BenchmarkId::new("start_and_stop", size), |b| {
            b.iter(|| {
                busy.cycle();
                black_box(busy.stored_bytes)
            })
        });
        println!("pool_room/{size}: ledger {} commands after the run", busy.room.ledger().len());
    }
    group.finish();
}

criterion_group!(benches, commands);
criterion_main!(benches);

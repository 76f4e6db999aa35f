//! The room tests' harness: a host that delivers events, writes checkpoints as a Durable Object
//! would (at once, or in batches when `defer` is set), and plays browser and runner by the protocol,
//! decoding every frame the room sends, so that the assertions are about what peers would see.

use super::super::*;
use crate::dangerous::assume_verified;
use crate::ids::{Kid, RegionId};
use crate::protocol::{CloseCode, Frame, Role, Welcome};
use crate::tokens::{Claims, Scope};
use std::collections::BTreeMap;

pub(crate) const T0: u64 = 1_800_000_000;

pub(crate) fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(T0 * 1000 + ms)
}

/// The terms every test token carries: an hour's lifetime, ended after 5 minutes without a browser,
/// no idle rule (tests of the rules make tokens of their own).
pub(crate) const TERMS: crate::lifetime::Terms =
    crate::lifetime::Terms { ends: T0 + 3600, idle: None, detached: Some(300) };

pub(crate) fn sid() -> SessionId {
    SessionId::new("s1").unwrap()
}

pub(crate) fn token(scope: Scope, jti: &str, session: &str, exp_in_secs: u64) -> Verified {
    let claims = Claims {
        iss: "https://control.test".into(),
        aud: "edgeshell-edge".into(),
        sub: Subject::new("alice").unwrap(),
        sid: SessionId::new(session).unwrap(),
        region: RegionId::new("eu").unwrap(),
        jti: Jti::new(jti).unwrap(),
        iat: T0,
        nbf: T0,
        exp: T0 + exp_in_secs,
        scope,
        art: None,
        bh: None,
        ses: matches!(scope, Scope::Attach | Scope::Join).then_some(TERMS),
    };
    assume_verified(claims, Kid::new("k1").unwrap())
}

/// What one connection has been sent.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    pub(crate) frames: Vec<Frame>,
    pub(crate) closed: Option<CloseCode>,
}

pub(crate) struct Harness {
    pub(crate) room: Room,
    pub(crate) inbox: BTreeMap<u64, Inbox>,
    pub(crate) ended: Vec<EndReason>,
    pub(crate) alarm: Option<Timestamp>,
    pub(crate) refreshes: Vec<(ConnId, Secret)>,
    pub(crate) now: Timestamp,
    pub(crate) forgotten: bool,
    /// How many times the room asked for its alarm to move.
    pub(crate) alarms_set: usize,
    /// Whether output is written in batches (on [`Harness::flush`]) rather than after every event.
    pub(crate) defer: bool,
    /// What a hibernating host would have stored, checkpointed after every event.
    pub(crate) store: Store,
    next_entropy: u8,
}

/// A host's storage of a room: the state and the output chunks, as a Durable Object keeps them.
#[derive(Default)]
pub(crate) struct Store {
    state: Vec<u8>,
    chunks: BTreeMap<u64, OutputChunk>,
    pub(crate) stored: StoredOutput,
    /// Checkpoints written.
    pub(crate) writes: usize,
}

impl Store {
    fn save(&mut self, room: &mut Room) {
        let Some(checkpoint) = room.checkpoint(&mut self.stored) else { return };
        self.writes += 1;
        self.state = checkpoint.state;
        if let Some(chunk) = checkpoint.append {
            self.chunks.insert(chunk.offset, chunk);
        }
        if let Some(before) = checkpoint.forget_before {
            self.chunks.retain(|_, c| c.end() > before);
        }
    }

    /// The room as a host waking from hibernation rebuilds it.
    pub(crate) fn wake(&self) -> Room {
        let chunks: Vec<OutputChunk> = self.chunks.values().cloned().collect();
        let (room, stored) = Room::restore(&self.state, &chunks).expect("checkpoints restore");
        assert_eq!(stored, self.stored);
        room
    }
}

impl Room {
    /// Takes `other`'s liveness times (when each connection was last heard from), answering how much
    /// older this room's were at most.
    pub(crate) fn take_liveness_from(&mut self, other: &Room) -> core::time::Duration {
        let mut stale = core::time::Duration::ZERO;
        let mut take = |mine: &mut Timestamp, theirs: Timestamp| {
            stale = stale.max(core::time::Duration::from_millis(theirs.as_millis().saturating_sub(mine.as_millis())));
            *mine = theirs;
        };
        take(&mut self.runner.last_seen, other.runner.last_seen);
        // The input window is counted afresh after a wake; it is not state.
        (self.input_sent, self.input_acked) = (other.input_sent, other.input_acked);
        for (mine, theirs) in self.seats.iter_mut().zip(&other.seats) {
            take(&mut mine.last_seen, theirs.last_seen);
        }
        stale
    }
}

impl Harness {
    pub(crate) fn new(config: RoomConfig) -> Harness {
        let mut h = Harness {
            room: Room::new(sid(), config, at(0)),
            inbox: BTreeMap::new(),
            ended: Vec::new(),
            alarm: None,
            refreshes: Vec::new(),
            now: at(0),
            forgotten: false,
            alarms_set: 0,
            defer: false,
            store: Store::default(),
            next_entropy: 0,
        };
        // The host handles the time on creation, which schedules the room's first alarm.
        h.timeout();
        h
    }

    pub(crate) fn entropy(&mut self) -> [u8; 32] {
        self.next_entropy = self.next_entropy.wrapping_add(1);
        [self.next_entropy; 32]
    }

    /// Delivers `event` as a host does: the room's checkpoint is written before the effects leave when
    /// it is due now (or, unless `defer`, soon), and the effects are carried out.
    pub(crate) fn event(&mut self, event: Event) {
        self.deliver(Some(event));
    }

    /// The alarm fired: the host handles the time.
    pub(crate) fn timeout(&mut self) {
        self.deliver(None);
    }

    fn deliver(&mut self, event: Option<Event>) {
        let mut effects = match event {
            Some(event) => self.room.handle_event(event, self.now),
            None => self.room.handle_timeout(self.now),
        };
        // A host re-arms its alarm when the room's answer changes (a storage write in a Durable Object).
        if self.room.poll_timeout() != self.alarm {
            self.alarm = self.room.poll_timeout();
            self.alarms_set += 1;
        }
        match self.room.checkpoint_due(&self.store.stored) {
            CheckpointDue::Nothing => {}
            CheckpointDue::Soon if self.defer => {}
            CheckpointDue::Soon | CheckpointDue::Now => effects.extend(self.write()),
        }
        self.apply(effects);
    }

    /// Writes what a batching host held back, as its timer would.
    pub(crate) fn flush(&mut self) {
        let effects = self.write();
        self.apply(effects);
    }

    fn write(&mut self) -> Vec<Effect> {
        self.store.save(&mut self.room);
        self.room.checkpoint_written()
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { conn, frame } => {
                    let inbox = self.inbox.entry(conn.0).or_default();
                    assert!(inbox.closed.is_none(), "frame sent to closed connection {conn:?}");
                    let frame = Frame::decode(&frame).expect("room sends valid frames");
                    if let Frame::Credit { acked, .. } = frame {
                        assert!(acked <= self.store.stored.end(), "credit acknowledges {acked}: not stored yet");
                    }
                    inbox.frames.push(frame);
                }
                Effect::Close { conn, code, reason } => {
                    assert!(reason.len() <= 123);
                    self.inbox.entry(conn.0).or_default().closed.get_or_insert(code);
                }
                Effect::VerifyRefresh { conn, token } => self.refreshes.push((conn, token)),
                Effect::SessionEnded(r) => self.ended.push(r),
                Effect::Forget => {
                    assert!(!self.ended.is_empty() && !self.forgotten, "forget once, after the end");
                    self.forgotten = true;
                }
            }
        }
    }

    pub(crate) fn advance_to(&mut self, t: Timestamp) {
        self.now = t;
        if self.alarm.is_some_and(|a| a <= t) {
            self.timeout();
        }
    }

    /// Advances in heartbeat-sized steps, with the platform answering heartbeats of `conns` on the way.
    pub(crate) fn advance_alive(&mut self, to: Timestamp, conns: &[u64]) {
        while self.now < to {
            let next = (self.now + core::time::Duration::from_secs(30)).min(to);
            for c in conns {
                self.event(Event::HeartbeatSeen { conn: ConnId(*c), at: next });
            }
            self.advance_to(next);
        }
    }

    pub(crate) fn send(&mut self, conn: u64, frame: Frame) {
        self.event(Event::Message { conn: ConnId(conn), data: frame.encode() });
    }

    pub(crate) fn take(&mut self, conn: u64) -> Vec<Frame> {
        core::mem::take(&mut self.inbox.entry(conn).or_default().frames)
    }

    pub(crate) fn closed(&self, conn: u64) -> Option<CloseCode> {
        self.inbox.get(&conn).and_then(|i| i.closed)
    }

    pub(crate) fn join_runner(&mut self, conn: u64) -> Welcome {
        let entropy = self.entropy();
        self.event(Event::RunnerJoin { conn: ConnId(conn), token: token(Scope::Join, "join-1", "s1", 600), entropy });
        welcome(&self.take(conn))
    }

    pub(crate) fn attach(&mut self, conn: u64, jti: &str) -> Vec<Frame> {
        let entropy = self.entropy();
        self.event(Event::BrowserAttach { conn: ConnId(conn), token: token(Scope::Attach, jti, "s1", 600), entropy });
        self.take(conn)
    }

    pub(crate) fn resume(&mut self, conn: u64, ticket: &Secret, offset: u64) -> Vec<Frame> {
        let entropy = self.entropy();
        self.event(Event::BrowserResume { conn: ConnId(conn), ticket: ticket.clone(), offset, entropy });
        self.take(conn)
    }
}

pub(crate) fn welcome(frames: &[Frame]) -> Welcome {
    match frames.first() {
        Some(Frame::Welcome(w)) => w.clone(),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

pub(crate) fn output(frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(|f| if let Frame::Output { data, .. } = f { data.clone() } else { Vec::new() }).collect()
}

pub(crate) fn live() -> Harness {
    let mut h = Harness::new(RoomConfig::default());
    let w = h.join_runner(1);
    assert_eq!((w.role, w.offset, w.window), (Role::Runner, 0, 4 * 1024 * 1024));
    h
}

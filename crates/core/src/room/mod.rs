//! The session room: the per-session state machine a Durable Object hosts. It pairs browsers with the
//! runner, relays both ways, and keeps output until every browser has acknowledged it, so a reconnect
//! continues at the exact byte (never repeating or skipping one).
//!
//! A [`StateMachine`] (see [`crate::machine`] for the contract): the host feeds each event with the time
//! and carries out the returned [`Effect`]s (send a frame, close a socket, verify a token), and keeps its
//! one alarm at [`StateMachine::poll_timeout`]. The whole state serializes ([`Room::to_bytes`]), and
//! [`Room::checkpoint`] stores it incrementally, so the host can hibernate and restore it.
//!
//! Flow control is by offsets. A browser may have at most `browser_window` bytes sent but not acked; the
//! runner may send output up to the `limit` of its last [`Frame::Credit`], which never exceeds the oldest
//! byte some browser still needs plus `buffer_capacity`. A browser that stays away therefore stalls the
//! program (the PTY stops being read) instead of losing output, until its resume window ends. Credit is
//! sent in steps (a sixteenth of the buffer acknowledged or freed, or a runner at its limit), not for
//! every frame: the runner keeps unacknowledged output anyway, and each message costs the host.
//!
//! A credit acknowledges only output the host has stored ([`Room::checkpoint_written`]), so a host may
//! store output in batches ([`CheckpointDue::Soon`]) and still lose nothing when it crashes: the runner
//! sends again whatever the restored room lacks, and a browser that had already received some of it
//! resumes at its own offset, beyond the restored end, and continues there once the bytes are back.

mod buffer;
mod handlers;
mod input;
mod snapshot;
mod store;
mod terms;
mod ticket;
mod timers;

#[cfg(test)]
mod tests;

use crate::ids::{Jti, SessionId, Subject};
use crate::machine::StateMachine;
use crate::protocol::{CloseCode, ExitStatus, Frame};
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::tokens::{TokenError, Verified};
use buffer::OutputBuffer;
use core::time::Duration;
use serde::{Deserialize, Serialize};
pub use snapshot::MAX_SNAPSHOT_BYTES;
use std::collections::VecDeque;
pub use store::{Checkpoint, CheckpointDue, OutputChunk, StoredOutput, LIVENESS_SLACK};
use ticket::TicketHash;

/// The version of the serialized room state; bumped on any incompatible change.
pub const STATE_VERSION: u8 = 5;

/// A connection (WebSocket) as numbered by the host. Stable across hibernation (the host stores it in
/// the socket's attachment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

/// Tunables of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConfig {
    /// Most output bytes held for browsers that have not acked them.
    pub buffer_capacity: u32,
    /// Output bytes kept after every browser acked them, for a browser that attaches afresh.
    pub history_bytes: u32,
    /// Unacked bytes a browser may have in flight.
    pub browser_window: u32,
    /// Most browser seats (attached or resumable) at once.
    pub max_browsers: u32,
    /// Input bytes queued while the runner is away or its input window is full. Browsers that keep to
    /// their input credit never reach it when it is at least `max_browsers` x [`INPUT_CREDIT`].
    ///
    /// [`INPUT_CREDIT`]: crate::protocol::INPUT_CREDIT
    pub max_pending_input: u32,
    /// Expected heartbeat interval.
    pub heartbeat_interval: Duration,
    /// A connection silent for this long is dead (3 missed heartbeats + timeout).
    pub dead_after: Duration,
    /// How long the runner may be away before the session is lost.
    pub runner_grace: Duration,
    /// How long the first runner join may take.
    pub join_timeout: Duration,
    /// How long a dropped browser may take to resume.
    pub resume_window: Duration,
    /// How long before its authorization expires a browser is asked to refresh.
    pub refresh_lead: Duration,
    /// Clock skew tolerated on token expiry.
    pub leeway: Duration,
    /// How long an ended room is kept as a tombstone (so that a token minted for it cannot recreate
    /// it) before the host may forget it: the longest lifetime of a token that addresses a room.
    pub tombstone: Duration,
}

impl RoomConfig {
    /// The defaults (ARCHITECTURE.md, "The session room", says what each is for).
    pub const DEFAULT: RoomConfig = RoomConfig {
        buffer_capacity: 4 * 1024 * 1024,
        history_bytes: 64 * 1024,
        browser_window: 1024 * 1024,
        max_browsers: 4,
        max_pending_input: 4 * crate::protocol::INPUT_CREDIT,
        heartbeat_interval: crate::protocol::HEARTBEAT_INTERVAL,
        dead_after: crate::protocol::silence_limit(crate::protocol::HEARTBEAT_INTERVAL),
        runner_grace: Duration::from_secs(2),
        join_timeout: Duration::from_secs(60),
        resume_window: Duration::from_secs(120),
        refresh_lead: Duration::from_secs(60),
        leeway: Duration::from_secs(30),
        tombstone: Duration::from_secs(crate::tokens::Scope::Join.max_lifetime_secs() + 30),
    };
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig::DEFAULT
    }
}

/// Something that happened to the room.
#[derive(Debug, Clone)]
pub enum Event {
    /// A browser connected with an attach token the host verified.
    BrowserAttach {
        /// The new connection.
        conn: ConnId,
        /// The verified attach token.
        token: Verified,
        /// Fresh random bytes for its resume ticket.
        entropy: [u8; 32],
    },
    /// A browser reconnected with a resume ticket.
    BrowserResume {
        /// The new connection.
        conn: ConnId,
        /// The ticket from its last `Welcome`.
        ticket: Secret,
        /// Output bytes it has (the offset it wants to continue at).
        offset: u64,
        /// Fresh random bytes for its next ticket.
        entropy: [u8; 32],
    },
    /// The runner connected with a join token the host verified.
    RunnerJoin {
        /// The new connection.
        conn: ConnId,
        /// The verified join token.
        token: Verified,
        /// Fresh random bytes for its resume ticket.
        entropy: [u8; 32],
    },
    /// The runner reconnected with its resume ticket.
    RunnerResume {
        /// The new connection.
        conn: ConnId,
        /// The ticket from its last `Welcome`.
        ticket: Secret,
        /// Fresh random bytes for its next ticket.
        entropy: [u8; 32],
    },
    /// A binary message arrived.
    Message {
        /// From whom.
        conn: ConnId,
        /// The raw frame.
        data: Vec<u8>,
    },
    /// The platform answered a heartbeat for `conn` without waking the room (auto-response); `at` is when.
    HeartbeatSeen {
        /// Whose.
        conn: ConnId,
        /// When the platform saw it.
        at: Timestamp,
    },
    /// The host verified the token of a `Refresh` frame (see [`Effect::VerifyRefresh`]).
    RefreshVerified {
        /// The connection that sent it.
        conn: ConnId,
        /// The verified token.
        token: Verified,
    },
    /// The token of a `Refresh` frame did not verify.
    RefreshRejected {
        /// The connection that sent it.
        conn: ConnId,
        /// Why.
        error: TokenError,
    },
    /// A connection closed or errored.
    Disconnected {
        /// Which.
        conn: ConnId,
    },
    /// The control plane ended the session (user deleted it).
    End,
    /// The control plane extended the session to this deadline (seconds since the epoch).
    Extend {
        /// The new deadline; an earlier one than the room's is ignored.
        ends: u64,
    },
}

impl Event {
    /// Whether this event may bring a room into being when the host has none for the session: only a
    /// verified token may; a resume ticket belongs to a room that exists (or is forgotten), so without
    /// one the host refuses with `SessionNotFound`.
    pub fn may_create_room(&self) -> bool {
        matches!(self, Event::BrowserAttach { .. } | Event::RunnerJoin { .. })
    }
}

/// Something the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send an encoded frame as a binary message.
    Send {
        /// To whom.
        conn: ConnId,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// Close the connection.
    Close {
        /// Which.
        conn: ConnId,
        /// The close code.
        code: CloseCode,
        /// Reason text, at most 123 bytes.
        reason: String,
    },
    /// Verify this token (scope attach, this session) and report back with `RefreshVerified` or
    /// `RefreshRejected`.
    VerifyRefresh {
        /// The connection that sent it.
        conn: ConnId,
        /// The compact JWS.
        token: Secret,
    },
    /// The session is over; tell the control plane and the pool (once).
    SessionEnded(EndReason),
    /// The tombstone's time is up: no token for this session can verify any more, so the host may
    /// delete everything it stored for the room (once, after `SessionEnded`).
    Forget,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// The program exited.
    Exited(ExitStatus),
    /// The runner went away and did not come back, or never joined.
    RunnerLost,
    /// Neither input nor output for the terms' idle limit.
    Idle,
    /// No browser attached for the terms' detached limit.
    Unattended,
    /// The session's deadline passed.
    Deadline,
    /// The control plane ended it (its owner did).
    Ended,
}

impl EndReason {
    /// Every [`EndReason::name`], for the control plane's check of what a room reports.
    pub const NAMES: [&'static str; 6] = ["exited", "runner_lost", "idle", "unattended", "deadline", "ended"];

    /// A stable machine-readable name (what the edge reports to the control plane).
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Exited(_) => "exited",
            EndReason::RunnerLost => "runner_lost",
            EndReason::Idle => "idle",
            EndReason::Unattended => "unattended",
            EndReason::Deadline => "deadline",
            EndReason::Ended => "ended",
        }
    }

    /// The detail beyond the name: the exit status, if any.
    pub fn detail(self) -> String {
        match self {
            EndReason::Exited(ExitStatus::Code(c)) => format!("status {c}"),
            EndReason::Exited(ExitStatus::Signaled(s)) => format!("signal {s}"),
            _ => String::new(),
        }
    }

    fn close_code(self) -> CloseCode {
        match self {
            EndReason::RunnerLost => CloseCode::RunnerLost,
            _ => CloseCode::SessionEnded,
        }
    }

    fn describe(self) -> String {
        match self {
            EndReason::Exited(ExitStatus::Code(c)) => format!("the program exited with status {c}"),
            EndReason::Exited(ExitStatus::Signaled(s)) => {
                format!("the program was killed by signal {s}")
            }
            EndReason::RunnerLost => "the machine running the session stopped answering".into(),
            EndReason::Idle => "the session had neither input nor output for too long".into(),
            EndReason::Unattended => "no browser was attached for too long".into(),
            EndReason::Deadline => "the session reached its time limit".into(),
            EndReason::Ended => "the session was ended by its owner".into(),
        }
    }
}

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Created; the runner has not joined yet.
    AwaitingRunner,
    /// The runner is connected.
    Live,
    /// The runner's connection dropped at `since`; it may resume within the grace period.
    RunnerAway {
        /// When it dropped.
        since: Timestamp,
    },
    /// The program exited at `at`; browsers are catching up on the last output.
    Exited {
        /// When.
        at: Timestamp,
    },
    /// Over. The room stays as a tombstone so late tokens cannot recreate it, until
    /// [`Effect::Forget`].
    Ended(EndReason),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Seat {
    id: u32,
    subject: Subject,
    conn: Option<ConnId>,
    ticket: TicketHash,
    /// Seconds since the epoch.
    authorized_until: u64,
    refresh_requested: bool,
    acked: u64,
    sent: u64,
    last_seen: Timestamp,
    detached_at: Option<Timestamp>,
    exit_sent: bool,
    /// The size of this browser's terminal, once it said.
    size: Option<(u16, u16)>,
    /// The input offset last acked to this connection (see `input`). Not part of the state: a woken
    /// room acks the next input it passes on at once, which is harmless.
    #[serde(skip)]
    input_acked: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RunnerSlot {
    conn: Option<ConnId>,
    ticket: Option<TicketHash>,
    last_seen: Timestamp,
    /// The `limit` of the last credit sent.
    credit_limit: u64,
    /// The `acked` of the last credit sent (or the welcome's offset).
    credit_acked: u64,
}

impl StateMachine for Room {
    type Event = Event;
    type Effect = Effect;

    fn handle_event(&mut self, event: Event, now: Timestamp) -> Vec<Effect> {
        self.handle(Some(event), now)
    }

    fn handle_timeout(&mut self, now: Timestamp) -> Vec<Effect> {
        self.handle(None, now)
    }

    /// The alarm the room wants. It moves only earlier as the room runs (see `timers::schedule`), so a
    /// host whose alarm costs a storage write re-arms it only when this answer changes.
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.alarm
    }
}

/// The state of one session's room. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    version: u8,
    session: SessionId,
    config: RoomConfig,
    created_at: Timestamp,
    phase: Phase,
    buffer: OutputBuffer,
    seats: Vec<Seat>,
    next_seat: u32,
    runner: RunnerSlot,
    consumed: Vec<(Jti, u64)>,
    pending_input: Vec<u8>,
    /// Where each run of `pending_input` came from, in order: the connection, the run's length, and
    /// for input sent as `InputAt` the connection's input offset at the run's end (see `input`).
    pending_from: VecDeque<(ConnId, u32, Option<u64>)>,
    size: Option<(u16, u16)>,
    exit_status: Option<ExitStatus>,
    /// Since when no browser has been attached (`None` while one is).
    unattended_since: Option<Timestamp>,
    /// The session's terms, from the first verified token (see `terms`).
    terms: Option<crate::lifetime::Terms>,
    /// The last input or output byte (the idle rule).
    last_io: Timestamp,
    /// The latest screen snapshot from the runner (see `snapshot`).
    snapshot: Option<snapshot::Snapshot>,
    /// A snapshot whose parts are arriving: its offset and the bytes so far. Not part of the state: a
    /// woken room asks for a whole one again.
    #[serde(skip)]
    snapshot_parts: Option<(u64, Vec<u8>)>,
    alarm: Option<Timestamp>,
    ended_reported: bool,
    /// When the session ended, for the tombstone's expiry.
    ended_at: Option<Timestamp>,
    forgotten: bool,
    /// Output the host has written (see [`Room::checkpoint_written`]); the runner's credit acknowledges
    /// no more than this. Not part of the state: whatever a room is restored from is stored.
    #[serde(skip)]
    stored_end: u64,
    /// Input bytes sent to the runner's connection since it joined, and how many of them it reported
    /// written to the PTY: at most [`INPUT_WINDOW`] may be in flight. Not part of the state: a woken
    /// room counts afresh, which allows at most one window more.
    #[serde(skip)]
    input_sent: u64,
    #[serde(skip)]
    input_acked: u64,
}

// Every browser may have its input credit waiting in the room at once.
const _: () =
    assert!(RoomConfig::DEFAULT.max_pending_input >= RoomConfig::DEFAULT.max_browsers * crate::protocol::INPUT_CREDIT);

/// Input bytes the runner may have received but not yet written to its PTY. Beyond them input waits
/// in the room (up to `max_pending_input`), and beyond that it is refused with
/// [`CloseCode::InputOverflow`]: a browser pasting into a program that reads nothing cannot grow the
/// room's memory, or the platform's send buffers, past these caps.
pub const INPUT_WINDOW: u64 = 1024 * 1024;

/// Most one-time token ids a room remembers at once (expired ones are forgotten first).
const MAX_CONSUMED: usize = 1024;
/// Largest output chunk sent to a browser.
const MAX_CHUNK: u64 = 32 * 1024;

/// Why stored room state could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Written by another version.
    #[error("room state version {found} is not {STATE_VERSION}")]
    Version {
        /// The version found.
        found: u8,
    },
    /// Not room state.
    #[error("room state is corrupt: {0}")]
    Corrupt(String),
}

impl Room {
    /// A new room for `session`, created at `now`.
    pub fn new(session: SessionId, config: RoomConfig, now: Timestamp) -> Room {
        Room {
            version: STATE_VERSION,
            session,
            config,
            created_at: now,
            phase: Phase::AwaitingRunner,
            buffer: OutputBuffer::default(),
            seats: Vec::new(),
            next_seat: 1,
            runner: RunnerSlot { conn: None, ticket: None, last_seen: now, credit_limit: 0, credit_acked: 0 },
            consumed: Vec::new(),
            pending_input: Vec::new(),
            pending_from: VecDeque::new(),
            size: None,
            exit_status: None,
            unattended_since: Some(now),
            terms: None,
            last_io: now,
            snapshot: None,
            snapshot_parts: None,
            alarm: None,
            ended_reported: false,
            ended_at: None,
            forgotten: false,
            stored_end: 0,
            input_sent: 0,
            input_acked: 0,
        }
    }

    /// The session.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Total output bytes received from the runner.
    pub fn output_end(&self) -> u64 {
        self.buffer.end()
    }

    /// Output bytes currently held.
    pub fn buffered_bytes(&self) -> u64 {
        self.buffer.len()
    }

    /// Every connection the room counts as open (the runner's and the browsers'). A host restored after
    /// a restart, whose sockets are gone, reports each as `Disconnected` before anything else.
    pub fn connections(&self) -> Vec<ConnId> {
        self.runner.conn.into_iter().chain(self.seats.iter().filter_map(|s| s.conn)).collect()
    }

    /// Browsers currently connected.
    pub fn attached_browsers(&self) -> usize {
        self.seats.iter().filter(|s| s.conn.is_some()).count()
    }

    /// The role of a connection, if it belongs to this room.
    pub fn role_of(&self, conn: ConnId) -> Option<crate::protocol::Role> {
        if self.runner.conn == Some(conn) {
            Some(crate::protocol::Role::Runner)
        } else if self.seats.iter().any(|s| s.conn == Some(conn)) {
            Some(crate::protocol::Role::Browser)
        } else {
            None
        }
    }

    /// The room's side of [`StateMachine::handle_event`] and [`StateMachine::handle_timeout`].
    fn handle(&mut self, event: Option<Event>, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.expire(now, &mut fx);
        let Some(event) = event else {
            self.finish_step(now);
            return fx;
        };
        match event {
            Event::BrowserAttach { conn, token, entropy } => self.browser_attach(conn, &token, &entropy, now, &mut fx),
            Event::BrowserResume { conn, ticket, offset, entropy } => {
                self.browser_resume(conn, ticket.expose(), offset, &entropy, now, &mut fx)
            }
            Event::RunnerJoin { conn, token, entropy } => self.runner_join(conn, &token, &entropy, now, &mut fx),
            Event::RunnerResume { conn, ticket, entropy } => {
                self.runner_resume(conn, ticket.expose(), &entropy, now, &mut fx)
            }
            Event::Message { conn, data } => self.message(conn, &data, now, &mut fx),
            Event::HeartbeatSeen { conn, at } => self.touch(conn, at),
            Event::RefreshVerified { conn, token } => self.refresh_verified(conn, &token, now, &mut fx),
            Event::RefreshRejected { conn, error } => {
                let code = CloseCode::from(&error);
                self.close(conn, code, &format!("refresh refused: {error}"), now, &mut fx);
            }
            Event::Disconnected { conn } => self.disconnected(conn, now, &mut fx),
            Event::End => self.end(EndReason::Ended, &mut fx),
            Event::Extend { ends } => self.extend_to(ends, &mut fx),
        }
        self.expire(now, &mut fx);
        self.finish_step(now);
        fx
    }

    fn finish_step(&mut self, now: Timestamp) {
        if matches!(self.phase, Phase::Ended(_)) && self.ended_at.is_none() {
            self.ended_at = Some(now);
        }
        self.schedule(now);
    }

    /// Serializes the whole state (versioned) for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Restores state written by [`Room::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Room, RestoreError> {
        match bytes.first() {
            Some(&STATE_VERSION) => {}
            Some(&found) => return Err(RestoreError::Version { found }),
            None => return Err(RestoreError::Corrupt("empty".into())),
        }
        let mut room: Room = postcard::from_bytes(bytes).map_err(|e| RestoreError::Corrupt(e.to_string()))?;
        room.stored_end = room.buffer.end();
        Ok(room)
    }

    fn send(fx: &mut Vec<Effect>, conn: ConnId, frame: &Frame) {
        fx.push(Effect::Send { conn, frame: frame.encode() });
    }
}

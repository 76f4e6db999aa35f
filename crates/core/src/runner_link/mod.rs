//! The runner's side of the session protocol, as a [`StateMachine`]: it keeps every output byte the room
//! has not yet stored, sends only within the room's credit, says how much PTY output may be read now (so
//! a stalled browser slows the program instead of losing bytes), continues at the exact byte after a
//! reconnect, and keeps the runner's clocks: heartbeats and the room's silence, the session's deadline
//! (a backstop [`crate::lifetime::BACKSTOP`] after the one the room enforces, moved by the room's
//! `Deadline` frames), the reconnect backoff and the offline limit, and the wait for a program's
//! leftover children after it exits. The idle rule is the room's: it sees every byte both ways.
//!
//! The runner binary (`crates/runner`, `relay`) dials when told ([`Effect::Dial`]), feeds it socket
//! messages, PTY output and the program's exit, carries out the effects, reads the PTY only while
//! [`RunnerLink::read_budget`] is positive, and stops when it gets [`Effect::Finish`].

use crate::machine::{earliest, Backoff, Jitter, StateMachine};
use crate::protocol::{
    silence_limit, CloseCode, Credential, ExitStatus, Frame, NextStep, Role, HEARTBEAT_INTERVAL, MAX_DATA_BYTES,
};
use crate::secret::Secret;
use crate::time::Timestamp;
use core::time::Duration;
use std::collections::VecDeque;

mod messages;
mod screen;
pub use messages::{Effect, Event, Outcome};
pub use screen::{SNAPSHOT_EVERY, SNAPSHOT_SETTLE};

/// Input bytes queued for the PTY beyond which the runner stops reading from the room (the program is
/// not reading its terminal; the room then queues, and the browsers' typing waits).
pub const MAX_QUEUED_INPUT: usize = 256 * 1024;

/// The runner reports input written to the PTY (an `Ack` to the room) in steps of this many bytes, and
/// whenever it has caught up: the room sends input only within its window.
pub const INPUT_ACK_STEP: u64 = 16 * 1024;

/// The runner's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Give up when the room has been unreachable for this long.
    pub max_offline: Duration,
    /// After the program exits, how long the PTY may stay open (held by leftover children) before those
    /// are killed.
    pub exit_drain: Duration,
    /// The heartbeat interval until the room's `Welcome` names its own.
    pub heartbeat: Duration,
    /// Reconnect delays.
    pub backoff: Backoff,
}

impl LinkConfig {
    /// The defaults.
    pub const DEFAULT: LinkConfig = LinkConfig {
        max_offline: Duration::from_secs(60),
        exit_drain: Duration::from_millis(300),
        heartbeat: HEARTBEAT_INTERVAL,
        backoff: Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            floor: Duration::from_millis(50),
        },
    };
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig::DEFAULT
    }
}

/// Where the connection to the room is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Connection {
    /// Waiting to dial at this time.
    Waiting { dial_at: Timestamp },
    /// A dial is under way.
    Dialing,
    /// Open; `welcomed` once the room's `Welcome` said where to continue (nothing is sent before: the
    /// credit of an earlier connection may be more than a room restored after a crash allows).
    Open { welcomed: bool, last_received: Timestamp, next_ping: Timestamp },
    /// The session is over.
    Finished,
}

/// The runner's protocol state for one session. See the module documentation. Its `Debug` leaves out
/// the join token and the resume ticket.
#[derive(Clone)]
pub struct RunnerLink {
    config: LinkConfig,
    token: Secret,
    deadline: Option<Timestamp>,
    jitter: Jitter,
    // Output and credit.
    acked: u64,
    limit: u64,
    next_send: u64,
    pending: VecDeque<u8>,
    ticket: Option<Secret>,
    // Input: bytes received since the last welcome, written to the PTY, and reported to the room; and
    // bytes from earlier connections the host still holds.
    input_received: u64,
    input_written: u64,
    input_reported: u64,
    input_backlog: u64,
    // The program.
    exit: Option<ExitStatus>,
    exit_sent: bool,
    exit_seen: Option<Timestamp>,
    pty_closed: bool,
    leftovers_killed: bool,
    // The connection.
    connection: Connection,
    offline_since: Timestamp,
    attempts: u32,
    heartbeat: Duration,
    next_nonce: u64,
    snapshots: screen::Snapshots,
}

impl RunnerLink {
    /// A link created at `now` that joins with `join_token` and stops the session a backstop after
    /// `deadline` (the room ends it at the deadline); `seed` is random (reconnect jitter). Its first
    /// timeout, due at once, dials.
    pub fn new(
        config: LinkConfig,
        join_token: Secret,
        deadline: Option<Timestamp>,
        seed: u64,
        now: Timestamp,
    ) -> RunnerLink {
        RunnerLink {
            config,
            token: join_token,
            deadline: deadline.map(|at| at + crate::lifetime::BACKSTOP),
            jitter: Jitter::new(seed),
            acked: 0,
            limit: 0,
            next_send: 0,
            pending: VecDeque::new(),
            ticket: None,
            input_received: 0,
            input_written: 0,
            input_reported: 0,
            input_backlog: 0,
            exit: None,
            exit_sent: false,
            exit_seen: None,
            pty_closed: false,
            leftovers_killed: false,
            connection: Connection::Waiting { dial_at: now },
            offline_since: now,
            attempts: 0,
            heartbeat: config.heartbeat,
            next_nonce: 1,
            snapshots: screen::Snapshots::new(now),
        }
    }

    /// The ticket to resume with after a disconnect.
    pub fn resume_ticket(&self) -> Option<&str> {
        self.ticket.as_ref().map(Secret::expose)
    }

    /// Total output bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.acked + self.pending.len() as u64
    }

    /// Bytes held because the room has not stored them yet.
    pub fn unacked(&self) -> u64 {
        self.pending.len() as u64
    }

    /// How many bytes of PTY output may be read now: never more than the room's credit allows, and
    /// nothing once the PTY closed or the session is over.
    pub fn read_budget(&self) -> usize {
        if self.pty_closed || self.connection == Connection::Finished {
            return 0;
        }
        usize::try_from(self.limit.saturating_sub(self.produced())).unwrap_or(usize::MAX)
    }

    /// True once [`Effect::Finish`] was handed out.
    pub fn is_finished(&self) -> bool {
        self.connection == Connection::Finished
    }

    fn credential(&self) -> Credential {
        match &self.ticket {
            Some(ticket) => Credential::Resume(ticket.expose().to_owned()),
            None => Credential::Token(self.token.expose().to_owned()),
        }
    }

    fn finish(&mut self, outcome: Outcome, fx: &mut Vec<Effect>) {
        if self.connection != Connection::Finished {
            self.connection = Connection::Finished;
            fx.push(Effect::Finish(outcome));
        }
    }

    /// The connection is gone (or a dial failed): nothing sent since the last credit is known to have
    /// arrived; dial again after a backoff, unless the room has been unreachable for too long.
    fn lost(&mut self, now: Timestamp, fx: &mut Vec<Effect>) {
        if matches!(self.connection, Connection::Open { .. }) {
            self.offline_since = now;
        }
        self.next_send = self.acked;
        // An exit sent on the lost connection may not have arrived either.
        self.exit_sent = false;
        if now.since(self.offline_since) >= self.config.max_offline {
            let why = format!("no connection to the room for {:?}", self.config.max_offline);
            return self.finish(Outcome::Unreachable(why), fx);
        }
        self.attempts = self.attempts.saturating_add(1);
        let delay = self.config.backoff.delay(self.attempts, self.jitter.next_u32());
        self.connection = Connection::Waiting { dial_at: now + delay };
    }

    /// When the open connection counts as dead, if one is open.
    fn silence_deadline(&self) -> Option<Timestamp> {
        match self.connection {
            Connection::Open { last_received, .. } => Some(last_received + silence_limit(self.heartbeat)),
            _ => None,
        }
    }

    /// When to stop waiting for the terminal to close after the program exited (its leftover children
    /// hold it), if the link is waiting for that.
    fn drain_deadline(&self) -> Option<Timestamp> {
        let waiting = !self.pty_closed && self.read_budget() > 0;
        self.exit_seen.filter(|_| waiting).map(|seen| seen + self.config.exit_drain)
    }

    /// Queues every frame the link may send now.
    fn flush(&mut self, fx: &mut Vec<Effect>) {
        if !matches!(self.connection, Connection::Open { welcomed: true, .. }) {
            return;
        }
        let caught_up = self.input_written == self.input_received;
        if self.input_written > self.input_reported
            && (self.input_written - self.input_reported >= INPUT_ACK_STEP || caught_up)
        {
            self.input_reported = self.input_written;
            fx.push(Effect::Send(Frame::Ack { offset: self.input_written }.encode()));
        }
        let end = self.produced().min(self.limit);
        while self.next_send < end {
            let to = end.min(self.next_send + MAX_DATA_BYTES as u64 / 2);
            let (from, upto) = ((self.next_send - self.acked) as usize, (to - self.acked) as usize);
            // Copy from the ring's two halves in bulk, not byte by byte.
            let (head, tail) = self.pending.as_slices();
            let mut data = Vec::with_capacity(upto - from);
            if from < head.len() {
                data.extend_from_slice(&head[from..upto.min(head.len())]);
            }
            if upto > head.len() {
                data.extend_from_slice(&tail[from.saturating_sub(head.len())..upto - head.len()]);
            }
            fx.push(Effect::Send(Frame::Output { offset: self.next_send, data }.encode()));
            self.next_send = to;
        }
        // The exit is reported after the last output byte: once the PTY closed and all was sent.
        let all_sent = self.pty_closed && self.next_send == self.produced();
        if let (Some(status), false, true) = (self.exit, self.exit_sent, all_sent) {
            self.exit_sent = true;
            fx.push(Effect::Send(Frame::Exited { status }.encode()));
        }
    }

    fn on_message(&mut self, bytes: &[u8], now: Timestamp, fx: &mut Vec<Effect>) {
        if let Connection::Open { last_received, .. } = &mut self.connection {
            *last_received = now;
        } else {
            return;
        }
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => return self.abandon(format!("undecodable frame from the room: {e}"), now, fx),
        };
        match frame {
            Frame::Welcome(w) if w.role == Role::Runner => {
                if w.offset < self.acked {
                    let why = format!("room offset {} is before the {} bytes it acknowledged", w.offset, self.acked);
                    return self.abandon(why, now, fx);
                }
                if let Err(why) = self.advance_ack(w.offset) {
                    return self.abandon(why, now, fx);
                }
                if let Connection::Open { welcomed, .. } = &mut self.connection {
                    *welcomed = true;
                }
                // The room counts input afresh on each connection; what the host still holds from
                // before is written first and not reported.
                self.input_backlog += self.input_received - self.input_written;
                (self.input_received, self.input_written, self.input_reported) = (0, 0, 0);
                // The first welcome is the join: only now may the program start (a refused or
                // forged join never runs anything), and the one-time token is of no further use.
                if self.ticket.is_none() {
                    drop(core::mem::take(&mut self.token));
                    fx.push(Effect::StartProgram);
                }
                self.ticket = Some(w.resume_ticket);
                self.next_send = w.offset;
                self.limit = w.offset + u64::from(w.window);
                self.heartbeat = Duration::from_millis(u64::from(w.heartbeat_ms.max(1_000)));
                self.attempts = 0;
            }
            Frame::Welcome(_) => self.abandon("a browser welcome".into(), now, fx),
            Frame::Credit { acked, limit } => {
                if let Err(why) = self.advance_ack(acked) {
                    return self.abandon(why, now, fx);
                }
                self.next_send = self.next_send.max(self.acked);
                self.limit = self.limit.max(limit);
            }
            Frame::Input { data } => {
                self.input_received += data.len() as u64;
                fx.push(Effect::WriteInput(data));
            }
            Frame::Resize { cols, rows } => fx.push(Effect::Resize { cols, rows }),
            Frame::SnapshotWanted => self.snapshot_wanted(),
            Frame::Signal { signal } => fx.push(Effect::Signal(signal)),
            // An extension: the room ends the session at the new deadline, this link a backstop later.
            Frame::Deadline { ends_at } => {
                let at = Timestamp::from_secs(ends_at) + crate::lifetime::BACKSTOP;
                self.deadline = Some(self.deadline.map_or(at, |d| d.max(at)));
            }
            Frame::Ping { nonce } => fx.push(Effect::Send(Frame::Pong { nonce }.encode())),
            Frame::Pong { .. } => {}
            // The close that follows decides; a code whose next step is not to come back ends it now.
            Frame::Closing { code, reason } => {
                if !resumable(code) {
                    self.finish(Outcome::Ended(code, reason), fx);
                }
            }
            _ => self.abandon("a frame meant for browsers".into(), now, fx),
        }
    }

    /// A connection that broke the protocol or went silent is dropped and redialled.
    fn abandon(&mut self, why: String, now: Timestamp, fx: &mut Vec<Effect>) {
        fx.push(Effect::Abandon(why));
        self.lost(now, fx);
    }

    fn on_closed(&mut self, code: Option<u16>, reason: String, now: Timestamp, fx: &mut Vec<Effect>) {
        match code.and_then(CloseCode::from_code) {
            Some(code) if !resumable(code) => self.finish(Outcome::Ended(code, reason), fx),
            _ => self.lost(now, fx),
        }
    }

    /// The room has stored everything before `offset`: forget it.
    fn advance_ack(&mut self, offset: u64) -> Result<(), String> {
        if offset > self.produced() {
            return Err(format!("room offset {offset} is beyond the {} bytes produced", self.produced()));
        }
        if offset > self.acked {
            self.pending.drain(..(offset - self.acked) as usize);
            self.acked = offset;
        }
        Ok(())
    }

    /// After each step: send what may be sent, and finish when the room has everything after the exit.
    fn settle(&mut self, fx: &mut Vec<Effect>) {
        self.flush(fx);
        if self.exit_sent && self.pending.is_empty() && matches!(self.connection, Connection::Open { .. }) {
            let status = self.exit.unwrap_or(ExitStatus::Code(-1));
            fx.push(Effect::CloseNormally("the program exited".into()));
            self.finish(Outcome::Exited(status), fx);
        }
    }

    fn deadlines(&self) -> [Option<Timestamp>; 6] {
        if self.connection == Connection::Finished {
            return [None; 6];
        }
        let (dial, ping) = match self.connection {
            Connection::Waiting { dial_at } => (Some(dial_at), None),
            Connection::Open { next_ping, .. } => (None, Some(next_ping)),
            Connection::Dialing | Connection::Finished => (None, None),
        };
        [dial, ping, self.silence_deadline(), self.deadline, self.drain_deadline(), self.snapshot_due()]
    }
}

impl StateMachine for RunnerLink {
    type Event = Event;
    type Effect = Effect;

    fn handle_event(&mut self, event: Event, now: Timestamp) -> Vec<Effect> {
        // A message that arrives just as the silence deadline passes (a host's timer that fired late)
        // proves the connection alive: it counts before the deadlines do.
        if let (Event::Message(_), Connection::Open { last_received, .. }) = (&event, &mut self.connection) {
            *last_received = now;
        }
        let mut fx = self.handle_timeout_inner(now);
        if self.connection == Connection::Finished {
            return fx;
        }
        match event {
            Event::Connected => {
                if self.connection == Connection::Dialing {
                    let next_ping = now + self.heartbeat;
                    self.connection = Connection::Open { welcomed: false, last_received: now, next_ping };
                }
            }
            Event::DialFailed { permanent: true, reason } => self.finish(Outcome::Refused(reason), &mut fx),
            Event::DialFailed { permanent: false, .. } => {
                if self.connection == Connection::Dialing {
                    self.lost(now, &mut fx);
                }
            }
            Event::Message(bytes) => self.on_message(&bytes, now, &mut fx),
            Event::Closed { code, reason } => {
                if matches!(self.connection, Connection::Open { .. }) {
                    self.on_closed(code, reason, now, &mut fx);
                }
            }
            Event::Output(data) => {
                self.pending.extend(data);
                self.screen_changed(now);
            }
            Event::Snapshot { offset, data } => self.send_snapshot(offset, &data, &mut fx),
            Event::InputWritten(n) => {
                let n = n as u64;
                let from_before = n.min(self.input_backlog);
                self.input_backlog -= from_before;
                self.input_written = (self.input_written + n - from_before).min(self.input_received);
            }
            Event::PtyClosed => self.pty_closed = true,
            Event::ProgramExited(status) => {
                if self.exit.is_none() {
                    self.exit = Some(status);
                    self.exit_seen = Some(now);
                }
            }
            Event::Stop => self.finish(Outcome::Stopped, &mut fx),
        }
        if self.connection != Connection::Finished {
            self.settle(&mut fx);
        }
        fx
    }

    fn handle_timeout(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut fx = self.handle_timeout_inner(now);
        if self.connection != Connection::Finished {
            self.settle(&mut fx);
        }
        fx
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        earliest(self.deadlines())
    }
}

impl RunnerLink {
    fn handle_timeout_inner(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.connection == Connection::Finished {
            return fx;
        }
        if self.deadline.is_some_and(|at| at <= now) {
            self.finish(Outcome::DeadlinePassed, &mut fx);
            return fx;
        }
        match self.connection {
            Connection::Waiting { dial_at } if dial_at <= now => {
                self.connection = Connection::Dialing;
                fx.push(Effect::Dial(self.credential()));
            }
            Connection::Open { welcomed, last_received, next_ping } => {
                if self.silence_deadline().is_some_and(|at| at <= now) {
                    self.abandon("the room stopped answering heartbeats".into(), now, &mut fx);
                } else if next_ping <= now {
                    fx.push(Effect::Send(Frame::Ping { nonce: self.next_nonce }.encode()));
                    self.next_nonce += 1;
                    self.connection = Connection::Open { welcomed, last_received, next_ping: now + self.heartbeat };
                }
            }
            _ => {}
        }
        self.maybe_snapshot(now, &mut fx);
        if self.drain_deadline().is_some_and(|at| at <= now) {
            if self.leftovers_killed {
                // Killed already and still open: stop waiting for output.
                self.pty_closed = true;
            } else {
                self.leftovers_killed = true;
                self.exit_seen = Some(now);
                fx.push(Effect::KillLeftovers);
            }
        }
        fx
    }
}

/// Whether the runner comes back after a close with `code` (now, or later with backoff).
fn resumable(code: CloseCode) -> bool {
    matches!(code.next_step(), NextStep::Resume | NextStep::Later)
}

impl core::fmt::Debug for RunnerLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The join token and the resume ticket are secrets: left out.
        f.debug_struct("RunnerLink")
            .field("acked", &self.acked)
            .field("limit", &self.limit)
            .field("next_send", &self.next_send)
            .field("unacked", &self.pending.len())
            .field("connection", &self.connection)
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

//! When the runner snapshots its screen for the room. The runner binary keeps the terminal's state
//! with a terminal-state library; this decides when to ask it for a snapshot ([`Effect::TakeSnapshot`])
//! and sends the answer ([`Event::Snapshot`]) to the room in parts: once output has paused for
//! [`SNAPSHOT_SETTLE`], at least every [`SNAPSHOT_EVERY`] while it keeps coming, and whenever the room
//! asks (`SnapshotWanted`: a browser attached afresh and the room had none to give). The room keeps the
//! output after its latest snapshot, so the snapshots' pace bounds that, not correctness.

use super::{Connection, Effect, RunnerLink};
use crate::protocol::Frame;
use crate::time::Timestamp;
use core::time::Duration;

/// Output paused this long: the screen has settled, take a snapshot.
pub const SNAPSHOT_SETTLE: Duration = Duration::from_secs(1);
/// While output keeps coming, a snapshot at least this often.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);

/// The snapshot clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Snapshots {
    /// Output arrived since the last snapshot was taken.
    dirty: bool,
    /// The room asked for one.
    wanted: bool,
    last_output: Timestamp,
    /// When the first output after the last snapshot arrived.
    dirty_since: Timestamp,
}

impl Snapshots {
    pub(super) fn new(now: Timestamp) -> Snapshots {
        Snapshots { dirty: false, wanted: false, last_output: now, dirty_since: now }
    }
}

impl RunnerLink {
    /// When the next snapshot is due (only while welcomed: a snapshot goes straight to the room).
    pub(super) fn snapshot_due(&self) -> Option<Timestamp> {
        // After the exit the room ends the session as soon as its browsers have the last output.
        if !matches!(self.connection, Connection::Open { welcomed: true, .. }) || self.exit.is_some() {
            return None;
        }
        let s = &self.snapshots;
        if s.wanted {
            return Some(s.dirty_since.min(s.last_output));
        }
        s.dirty.then(|| (s.last_output + SNAPSHOT_SETTLE).min(s.dirty_since + SNAPSHOT_EVERY))
    }

    /// Asks the host for a snapshot when one is due.
    pub(super) fn maybe_snapshot(&mut self, now: Timestamp, fx: &mut Vec<Effect>) {
        if self.snapshot_due().is_some_and(|at| at <= now) {
            self.snapshots = Snapshots { dirty: false, wanted: false, ..self.snapshots };
            fx.push(Effect::TakeSnapshot);
        }
    }

    /// PTY output arrived (the screen changed).
    pub(super) fn screen_changed(&mut self, now: Timestamp) {
        if !self.snapshots.dirty {
            self.snapshots.dirty_since = now;
        }
        self.snapshots.dirty = true;
        self.snapshots.last_output = now;
    }

    /// The room asked for a snapshot.
    pub(super) fn snapshot_wanted(&mut self) {
        self.snapshots.wanted = true;
    }

    /// The host's snapshot of the screen after output byte `offset`: sent to the room in parts (or, with
    /// no connection, taken again once there is one).
    pub(super) fn send_snapshot(&mut self, offset: u64, data: &[u8], fx: &mut Vec<Effect>) {
        if !matches!(self.connection, Connection::Open { welcomed: true, .. }) {
            self.snapshots.dirty = true;
            self.snapshots.wanted = true;
            return;
        }
        fx.extend(Frame::snapshot_parts(offset, data).map(|frame| Effect::Send(frame.encode())));
    }
}

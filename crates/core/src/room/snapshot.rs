//! Screen snapshots in the room. The runner keeps its terminal's screen with a terminal-state library
//! and sends the room what draws it, as it stands after some output offset (periodically, and when the
//! room asks). The room keeps the latest, with the output after it, and gives a browser attaching
//! afresh that snapshot and then the output from its offset: the browser shows the screen a browser
//! that watched from the start shows (full-screen programs included), not raw history cut at an
//! arbitrary byte. A resuming browser never gets one: it continues at its own byte.
//!
//! The snapshot's bytes are stored with the room's state, written with the output (they may wait for a
//! batch: a restored room with an older snapshot still has the output after it), and kept out of the
//! per-event comparisons that decide what to write.

use super::{ConnId, Effect, Room};
use crate::protocol::{CloseCode, Frame};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The largest snapshot the room keeps; a runner sending more breaks the protocol (the runner trims
/// its history to fit).
pub const MAX_SNAPSHOT_BYTES: usize = 1024 * 1024;

/// A screen as it stood after output byte `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub(super) offset: u64,
    /// Counts the snapshots taken, so a new one at the same offset (after a resize) still counts as a
    /// change to store.
    pub(super) seq: u64,
    pub(super) data: Vec<u8>,
}

impl Room {
    /// A part of a snapshot from the runner: assembled, then kept if it is the newest.
    pub(super) fn snapshot_part(
        &mut self,
        conn: ConnId,
        (offset, last, data): (u64, bool, Vec<u8>),
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        if offset > self.runner.credit_limit {
            return self.close(conn, CloseCode::ProtocolError, "a snapshot beyond the output allowed", now, fx);
        }
        let parts = match self.snapshot_parts.take() {
            Some((at, parts)) if at == offset => Some((at, parts)),
            _ => None,
        };
        let (at, mut parts) = parts.unwrap_or((offset, Vec::new()));
        if parts.len() + data.len() > MAX_SNAPSHOT_BYTES {
            let why = format!("a snapshot over {MAX_SNAPSHOT_BYTES} bytes");
            return self.close(conn, CloseCode::ProtocolError, &why, now, fx);
        }
        parts.extend_from_slice(&data);
        if !last {
            self.snapshot_parts = Some((at, parts));
            return;
        }
        if self.snapshot.as_ref().is_some_and(|s| s.offset > offset) {
            return;
        }
        let seq = self.snapshot.as_ref().map_or(0, |s| s.seq + 1);
        self.snapshot = Some(Snapshot { offset, seq, data: parts });
        self.trim(fx);
    }

    /// Where a browser attaching afresh starts: the snapshot's offset when the room holds the output
    /// after it, else the oldest output it holds (and the runner is asked for a snapshot, for the next).
    pub(super) fn fresh_start(&self, fx: &mut Vec<Effect>) -> (u64, Option<&Snapshot>) {
        match &self.snapshot {
            Some(s) if s.offset >= self.buffer.start() => (s.offset, Some(s)),
            _ => {
                // Nothing written yet is a blank screen: no snapshot needed.
                if let (Some(runner), true) = (self.runner.conn, self.buffer.end() > 0) {
                    Self::send(fx, runner, &Frame::SnapshotWanted);
                }
                (self.buffer.start(), None)
            }
        }
    }

    /// Sends `snapshot` to a browser, in parts.
    pub(super) fn send_snapshot(conn: ConnId, snapshot: &Snapshot, fx: &mut Vec<Effect>) {
        for frame in Frame::snapshot_parts(snapshot.offset, &snapshot.data) {
            Self::send(fx, conn, &frame);
        }
    }

    /// Takes the snapshot's bytes out (the state comparisons leave them out; see `store`).
    pub(super) fn take_snapshot_bytes(&mut self) -> Vec<u8> {
        self.snapshot.as_mut().map(|s| core::mem::take(&mut s.data)).unwrap_or_default()
    }

    /// Puts back what [`Room::take_snapshot_bytes`] took.
    pub(super) fn put_snapshot_bytes(&mut self, bytes: Vec<u8>) {
        if let Some(s) = self.snapshot.as_mut() {
            s.data = bytes;
        }
    }

    /// The oldest output byte kept for the snapshot (the output after it must stay for a fresh attach).
    pub(super) fn snapshot_keeps_from(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.offset)
    }
}

//! Incremental persistence of a room, for hosts whose memory may vanish between events (a Durable
//! Object evicted while its sockets hibernate). After every event the host stores a [`Checkpoint`]: the
//! room's small state as one value, the output appended since the last checkpoint as one chunk, and the
//! offset before which stored chunks are no longer needed. [`Room::restore`] rebuilds the room from the
//! state and the chunks. Output bytes are thus written once, not once per event as a whole-state
//! snapshot ([`Room::to_bytes`]) would write them.
//!
//! Not every change must be written at once ([`Room::checkpoint_due`]):
//!
//! - **Now**: anything that decides who may connect or what happened (tickets, consumed token ids,
//!   seats, the phase, queued input, the exit). The host writes it before the event's effects leave, so
//!   no peer ever hears of a change the room could forget.
//! - **Soon**: output and how far it was sent and acknowledged. The host may batch it: a credit names
//!   only stored output, so the runner still holds what a crash would lose and sends it again, and a
//!   browser resumes at its own offset.
//! - **Nothing**: liveness alone (when connections were last heard from: typed input, heartbeats; and
//!   the last input or output, for the idle rule) until those times cross a [`LIVENESS_SLACK`]
//!   boundary. A restored room may therefore think a connection was last heard from up to that long
//!   before it was, so it may close a silent connection that much earlier (against a `dead_after` of
//!   100 s), and end an idle session that much early (against an idle rule of minutes or hours).

use super::{Effect, RestoreError, Room, STATE_VERSION};
use crate::time::Timestamp;
use core::time::Duration;
use serde::{Deserialize, Serialize};

/// How stale the stored liveness times may be (see the module documentation).
pub const LIVENESS_SLACK: Duration = Duration::from_secs(10);

/// Output bytes starting at an absolute offset of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

impl OutputChunk {
    /// Offset one past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// What to write after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The room without its output bytes; replaces the stored state.
    pub state: Vec<u8>,
    /// Output received since the last checkpoint; store it under its offset.
    pub append: Option<OutputChunk>,
    /// Delete stored chunks that end at or before this offset.
    pub forget_before: Option<u64>,
}

/// What the host has stored: the extent of the output, and the last state written (with its liveness
/// times rounded down to [`LIVENESS_SLACK`], and with output progress left out). The host keeps it next
/// to the room and passes it to [`Room::checkpoint_due`] and [`Room::checkpoint`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredOutput {
    start: u64,
    end: u64,
    rounded_state: Vec<u8>,
    essential_state: Vec<u8>,
}

impl StoredOutput {
    /// Output bytes stored (the end of the stored stream).
    pub fn end(&self) -> u64 {
        self.end
    }
}

/// How soon the room's changes must be written (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointDue {
    /// Nothing worth a write changed.
    Nothing,
    /// Output or progress changed: write within a batch, then call [`Room::checkpoint_written`].
    Soon,
    /// Write before the event's effects leave, then call [`Room::checkpoint_written`].
    Now,
}

/// Which fields [`Room::masked_state`] masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mask {
    Liveness,
    Progress,
}

#[derive(Serialize)]
struct StateRef<'a> {
    room: &'a Room,
    output_end: u64,
}

#[derive(Deserialize)]
struct State {
    room: Room,
    output_end: u64,
}

impl Room {
    /// How soon what changed since `stored` must be written.
    pub fn checkpoint_due(&mut self, stored: &StoredOutput) -> CheckpointDue {
        let (start, end) = (self.buffer.start(), self.buffer.end());
        let bytes = self.buffer.take_bytes();
        let screen = self.take_snapshot_bytes();
        let due = if self.masked_state(Mask::Progress, end) != stored.essential_state {
            CheckpointDue::Now
        } else if (start, end) != (stored.start, stored.end)
            || self.masked_state(Mask::Liveness, end) != stored.rounded_state
        {
            CheckpointDue::Soon
        } else {
            CheckpointDue::Nothing
        };
        self.buffer.put_bytes(bytes);
        self.put_snapshot_bytes(screen);
        due
    }

    /// What to store so that [`Room::restore`] yields this room (up to [`LIVENESS_SLACK`] in its
    /// liveness times), given what was stored before; `None` when nothing needs writing. Once it is
    /// written, call [`Room::checkpoint_written`].
    pub fn checkpoint(&mut self, stored: &mut StoredOutput) -> Option<Checkpoint> {
        let (start, end) = (self.buffer.start(), self.buffer.end());
        let from = stored.end.max(start);
        let append = (from < end).then(|| OutputChunk { offset: from, data: self.buffer.slice(from, end) });
        let forget_before = (start > stored.start).then_some(start);
        // The bytes are in the chunks; the state records only where they start and end.
        let bytes = self.buffer.take_bytes();
        let screen = self.take_snapshot_bytes();
        let rounded_state = self.masked_state(Mask::Liveness, end);
        let essential_state = self.masked_state(Mask::Progress, end);
        self.put_snapshot_bytes(screen);
        let unchanged = append.is_none() && forget_before.is_none() && rounded_state == stored.rounded_state;
        // Serializing plain data into a Vec cannot fail.
        let state =
            (!unchanged).then(|| postcard::to_allocvec(&StateRef { room: self, output_end: end }).unwrap_or_default());
        self.buffer.put_bytes(bytes);
        let state = state?;
        *stored = StoredOutput { start, end, rounded_state, essential_state };
        Some(Checkpoint { state, append, forget_before })
    }

    /// The host wrote this room's checkpoint (or keeps no storage at all): everything it holds is
    /// stored, so the runner may be told so. Answers the effects (a credit) to carry out.
    pub fn checkpoint_written(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.stored_end = self.buffer.end();
        self.maybe_grant(&mut fx);
        fx
    }

    /// The state as [`Room::checkpoint`] writes it, with some fields masked, to tell what changed:
    /// with `Liveness`, the liveness times rounded down to [`LIVENESS_SLACK`]; with `Progress`, the
    /// liveness times and the output's progress (where it starts, how far each peer got, the credit)
    /// left out as well. (The buffer's and the snapshot's bytes must be taken out.)
    fn masked_state(&self, mask: Mask, output_end: u64) -> Vec<u8> {
        let slack = LIVENESS_SLACK.as_millis() as u64;
        let progress = mask == Mask::Progress;
        let hide = |t: Timestamp| Timestamp::from_millis(if progress { 0 } else { t.as_millis() / slack * slack });
        // A copy without the buffer's bytes (the caller took them out) is small.
        let mut room = self.clone();
        room.runner.last_seen = hide(room.runner.last_seen);
        room.last_io = hide(room.last_io);
        // A new snapshot may wait for the output's batch: a restored room still has the output after
        // its older one.
        if progress {
            room.snapshot = None;
        }
        for seat in &mut room.seats {
            seat.last_seen = hide(seat.last_seen);
            if progress {
                (seat.sent, seat.acked) = (0, 0);
            }
        }
        let output_end = if progress {
            (room.runner.credit_limit, room.runner.credit_acked) = (0, 0);
            room.buffer.set_start(0);
            0
        } else {
            output_end
        };
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(&StateRef { room: &room, output_end }).unwrap_or_default()
    }

    /// Rebuilds a room from its last checkpointed state and the stored chunks (in any order; chunks
    /// before the buffer's start are ignored). Fails if the chunks do not cover the buffer exactly.
    pub fn restore(state: &[u8], chunks: &[OutputChunk]) -> Result<(Room, StoredOutput), RestoreError> {
        match state.first() {
            Some(&STATE_VERSION) => {}
            Some(&found) => return Err(RestoreError::Version { found }),
            None => return Err(RestoreError::Corrupt("empty".into())),
        }
        let State { mut room, output_end } =
            postcard::from_bytes(state).map_err(|e| RestoreError::Corrupt(e.to_string()))?;
        let start = room.buffer.start();
        if output_end < start {
            return Err(RestoreError::Corrupt(format!("output ends at {output_end}, before its start {start}")));
        }
        let mut sorted: Vec<&OutputChunk> = chunks.iter().filter(|c| c.end() > start).collect();
        sorted.sort_by_key(|c| c.offset);
        let mut bytes = Vec::with_capacity((output_end - start) as usize);
        let mut at = start;
        for chunk in sorted {
            if chunk.offset > at {
                return Err(RestoreError::Corrupt(format!("output bytes {at}..{} are missing", chunk.offset)));
            }
            let skip = (at - chunk.offset) as usize;
            let take = chunk.end().min(output_end).saturating_sub(at) as usize;
            bytes.extend_from_slice(&chunk.data[skip..skip + take]);
            at += take as u64;
        }
        if at != output_end {
            return Err(RestoreError::Corrupt(format!("output bytes {at}..{output_end} are missing")));
        }
        let screen = room.take_snapshot_bytes();
        let rounded_state = room.masked_state(Mask::Liveness, output_end);
        let essential_state = room.masked_state(Mask::Progress, output_end);
        room.put_snapshot_bytes(screen);
        room.buffer.put_bytes(bytes.into());
        room.stored_end = output_end;
        Ok((room, StoredOutput { start, end: output_end, rounded_state, essential_state }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SessionId;
    use crate::room::RoomConfig;
    use crate::time::Timestamp;

    fn room_with_output(parts: &[&[u8]], trim_to: u64) -> Room {
        let mut room = Room::new(SessionId::new("s_store").unwrap(), RoomConfig::default(), Timestamp::from_secs(1));
        for part in parts {
            room.buffer.append(part);
        }
        room.buffer.trim_to(trim_to);
        room
    }

    #[test]
    fn chunks_are_written_once_and_forgotten_when_trimmed() {
        let mut room = room_with_output(&[b"hello "], 0);
        let mut stored = StoredOutput::default();
        let first = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        assert_eq!(first.append, Some(OutputChunk { offset: 0, data: b"hello ".to_vec() }));
        assert_eq!(first.forget_before, None);
        assert_eq!(room.checkpoint(&mut stored), None, "nothing new, nothing written");
        room.buffer.append(b"world");
        room.buffer.trim_to(6);
        let second = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        assert_eq!(second.append, Some(OutputChunk { offset: 6, data: b"world".to_vec() }));
        assert_eq!(second.forget_before, Some(6));
        let chunks = [first.append.unwrap(), second.append.unwrap()];
        let (restored, back) = Room::restore(&second.state, &chunks).unwrap();
        assert_eq!(restored, room);
        assert_eq!(back, stored);
        // The first chunk ended at the new start, so only the second is needed.
        let (restored, _) = Room::restore(&second.state, &chunks[1..]).unwrap();
        assert_eq!(restored, room);
    }

    #[test]
    fn liveness_is_written_only_when_it_crosses_the_slack() {
        let mut room = room_with_output(&[b"x"], 0);
        let mut stored = StoredOutput::default();
        let first = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        room.runner.last_seen = Timestamp::from_secs(9);
        assert_eq!(room.checkpoint(&mut stored), None, "heard from within the same 10 s: nothing to write");
        room.runner.last_seen = Timestamp::from_secs(12);
        let second = room.checkpoint(&mut stored).expect("crossed a boundary: written");
        room.runner.last_seen = Timestamp::from_secs(19);
        assert_eq!(room.checkpoint(&mut stored), None);
        let (restored, back) = Room::restore(&second.state, &[first.append.unwrap()]).unwrap();
        assert_eq!(restored.runner.last_seen, Timestamp::from_secs(12), "at most the slack behind");
        assert_eq!(back, stored, "and the host's record of what it stored is the same after a restore");
        // Anything else is written at once.
        room.unattended_since = None;
        assert!(room.checkpoint(&mut stored).is_some());
    }

    #[test]
    fn a_start_inside_a_chunk_restores_from_the_middle() {
        let mut room = room_with_output(&[b"0123456789"], 0);
        let mut stored = StoredOutput::default();
        let first = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        room.buffer.trim_to(4);
        let second = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        assert_eq!(second.forget_before, Some(4));
        let (restored, _) = Room::restore(&second.state, &[first.append.unwrap()]).unwrap();
        assert_eq!(restored.buffer.slice(4, 10), b"456789");
        assert_eq!(restored, room);
    }

    #[test]
    fn missing_or_short_chunks_are_corruption_not_silent_loss() {
        let mut room = room_with_output(&[b"abc"], 0);
        let mut stored = StoredOutput::default();
        let first = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        room.buffer.append(b"def");
        let second = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        assert!(matches!(Room::restore(&second.state, &[]), Err(RestoreError::Corrupt(_))));
        assert!(matches!(
            Room::restore(&second.state, &[first.append.clone().unwrap()]),
            Err(RestoreError::Corrupt(_))
        ));
        let gap = [second.append.unwrap()];
        assert!(matches!(Room::restore(&second.state, &gap), Err(RestoreError::Corrupt(_))));
        assert!(matches!(Room::restore(&[], &[]), Err(RestoreError::Corrupt(_))));
        assert!(matches!(Room::restore(&[STATE_VERSION + 1], &[]), Err(RestoreError::Version { .. })));
        assert!(matches!(Room::restore(&[STATE_VERSION, 0xff, 0xff], &[]), Err(RestoreError::Corrupt(_))));
    }

    #[test]
    fn output_trimmed_in_the_same_event_it_arrived_is_not_needed() {
        let mut room = room_with_output(&[b"abc"], 0);
        let mut stored = StoredOutput::default();
        let first = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        room.buffer.append(b"defgh");
        room.buffer.trim_to(6);
        let second = room.checkpoint(&mut stored).unwrap();
        room.checkpoint_written();
        assert_eq!(second.append, Some(OutputChunk { offset: 6, data: b"gh".to_vec() }));
        let (restored, _) = Room::restore(&second.state, &[first.append.unwrap(), second.append.unwrap()]).unwrap();
        assert_eq!(restored, room);
    }
}

//! The room's output buffer: a window `[start, end)` of the session's output stream, addressed by
//! absolute byte offsets so that every peer can say exactly where it is.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Output bytes `[start, start + len)` of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OutputBuffer {
    start: u64,
    bytes: VecDeque<u8>,
}

impl OutputBuffer {
    /// Offset of the oldest byte held.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    /// Offset one past the newest byte: the total output received so far.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Moves the start to `start` without touching the bytes (for a masked copy of the state; see
    /// `Room::checkpoint_due`).
    pub(crate) fn set_start(&mut self, start: u64) {
        self.start = start;
    }

    /// Bytes held.
    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub(crate) fn append(&mut self, data: &[u8]) {
        self.bytes.extend(data);
    }

    /// Copies `[from, to)`, which must lie within the buffer.
    pub(crate) fn slice(&self, from: u64, to: u64) -> Vec<u8> {
        debug_assert!(self.start <= from && from <= to && to <= self.end());
        let (a, b) = ((from - self.start) as usize, (to - self.start) as usize);
        self.bytes.range(a..b).copied().collect()
    }

    /// Takes the bytes out, leaving the offsets: the buffer then reads as empty at `start`.
    pub(crate) fn take_bytes(&mut self) -> VecDeque<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// Puts back bytes [`OutputBuffer::take_bytes`] took (or restored ones), starting at `start`.
    pub(crate) fn put_bytes(&mut self, bytes: VecDeque<u8>) {
        self.bytes = bytes;
    }

    /// Drops everything before `offset` (no-op if already dropped).
    pub(crate) fn trim_to(&mut self, offset: u64) {
        let offset = offset.min(self.end());
        if offset > self.start {
            self.bytes.drain(..(offset - self.start) as usize);
            self.start = offset;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_trimming() {
        let mut b = OutputBuffer::default();
        b.append(b"hello ");
        b.append(b"world");
        assert_eq!((b.start(), b.end()), (0, 11));
        b.trim_to(6);
        assert_eq!(b.slice(6, 11), b"world");
        b.trim_to(3);
        assert_eq!(b.start(), 6);
        b.trim_to(100);
        assert_eq!((b.start(), b.end(), b.len()), (11, 11, 0));
    }
}

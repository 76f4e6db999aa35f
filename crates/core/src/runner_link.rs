//! The runner's side of the session protocol, sans-io: it keeps every output byte the room has not yet
//! stored, sends only within the room's credit, says how much PTY output may be read now (so a stalled
//! browser slows the program instead of losing bytes), and continues at the exact byte after a
//! reconnect.
//!
//! The runner binary feeds it PTY output and incoming frames, sends the frames it returns, and reads the
//! PTY only while [`RunnerLink::read_budget`] is positive.

use crate::protocol::{CloseCode, ExitStatus, Frame, Role, Signal, MAX_DATA_BYTES};
use std::collections::VecDeque;

/// What an incoming frame asks of the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// Write these bytes to the PTY.
    Input(Vec<u8>),
    /// Resize the PTY.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Signal the program's process group.
    Signal(Signal),
    /// Send this frame back (a heartbeat answer).
    Reply(Frame),
    /// The room is closing the connection; `SessionEnded`/`RunnerLost` mean stop the program.
    Closing(CloseCode, String),
    /// Nothing to do (bookkeeping only).
    Nothing,
}

/// Why a frame from the room was not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The room sent something only browsers receive, or a welcome for another role.
    #[error("unexpected frame from the room: {0}")]
    Unexpected(&'static str),
    /// The room claims to hold bytes the runner never produced.
    #[error("room offset {room} is beyond the {produced} bytes produced")]
    OffsetBeyondOutput {
        /// What the room said.
        room: u64,
        /// What was produced.
        produced: u64,
    },
}

/// The runner's protocol state for one session.
#[derive(Debug, Clone, Default)]
pub struct RunnerLink {
    acked: u64,
    limit: u64,
    next_send: u64,
    pending: VecDeque<u8>,
    ticket: Option<String>,
    exit: Option<ExitStatus>,
    exit_sent: bool,
}

impl RunnerLink {
    /// A link before the first `Welcome` (no credit yet).
    pub fn new() -> Self {
        RunnerLink::default()
    }

    /// The ticket to resume with after a disconnect.
    pub fn resume_ticket(&self) -> Option<&str> {
        self.ticket.as_deref()
    }

    /// Total output bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.acked + self.pending.len() as u64
    }

    /// Bytes held because the room has not stored them yet.
    pub fn unacked(&self) -> u64 {
        self.pending.len() as u64
    }

    /// How many bytes of PTY output may be read now: never more than the room's credit allows.
    pub fn read_budget(&self) -> usize {
        usize::try_from(self.limit.saturating_sub(self.produced())).unwrap_or(usize::MAX)
    }

    /// Records output read from the PTY (at most [`RunnerLink::read_budget`] bytes).
    pub fn push_output(&mut self, data: &[u8]) {
        self.pending.extend(data);
    }

    /// Records the program's exit; sent after the last output byte.
    pub fn exited(&mut self, status: ExitStatus) {
        self.exit = Some(status);
    }

    /// True when the exit status was sent and nothing remains.
    pub fn finished(&self) -> bool {
        self.exit_sent && self.pending.is_empty()
    }

    /// The next frame to send on a connected link, if any.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let end = self.produced().min(self.limit);
        if self.next_send < end {
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
            let frame = Frame::Output { offset: self.next_send, data };
            self.next_send = to;
            return Some(frame);
        }
        match (self.exit, self.exit_sent, self.next_send == self.produced()) {
            (Some(status), false, true) => {
                self.exit_sent = true;
                Some(Frame::Exited { status })
            }
            _ => None,
        }
    }

    /// Call when the connection dropped: nothing sent since the last credit is known to have arrived.
    pub fn disconnected(&mut self) {
        self.next_send = self.acked;
        // An exit sent on the lost connection may not have arrived either.
        self.exit_sent = false;
    }

    /// Handles one frame from the room.
    pub fn on_frame(&mut self, frame: Frame) -> Result<Instruction, LinkError> {
        Ok(match frame {
            Frame::Welcome(w) => {
                if w.role != Role::Runner {
                    return Err(LinkError::Unexpected("a browser welcome"));
                }
                self.ticket = Some(w.resume_ticket);
                self.advance_ack(w.offset)?;
                self.next_send = w.offset;
                self.limit = w.offset + u64::from(w.window);
                Instruction::Nothing
            }
            Frame::Credit { acked, limit } => {
                self.advance_ack(acked)?;
                self.next_send = self.next_send.max(self.acked);
                self.limit = self.limit.max(limit);
                Instruction::Nothing
            }
            Frame::Input { data } => Instruction::Input(data),
            Frame::Resize { cols, rows } => Instruction::Resize { cols, rows },
            Frame::Signal { signal } => Instruction::Signal(signal),
            Frame::Ping { nonce } => Instruction::Reply(Frame::Pong { nonce }),
            Frame::Pong { .. } => Instruction::Nothing,
            Frame::Closing { code, reason } => Instruction::Closing(code, reason),
            _ => return Err(LinkError::Unexpected("a frame meant for browsers")),
        })
    }

    /// The room has stored everything before `offset`: forget it.
    fn advance_ack(&mut self, offset: u64) -> Result<(), LinkError> {
        if offset > self.produced() {
            return Err(LinkError::OffsetBeyondOutput { room: offset, produced: self.produced() });
        }
        if offset > self.acked {
            self.pending.drain(..(offset - self.acked) as usize);
            self.acked = offset;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Welcome;

    fn welcome(offset: u64, window: u32) -> Frame {
        Frame::Welcome(Welcome {
            role: Role::Runner,
            session: "s".into(),
            offset,
            resume_ticket: format!("r.{offset}"),
            window,
            expires_at: 0,
            heartbeat_ms: 30_000,
        })
    }

    #[test]
    fn sends_within_credit_and_resumes_at_the_room_offset() {
        let mut link = RunnerLink::new();
        assert_eq!(link.read_budget(), 0, "no credit before the welcome");
        link.on_frame(welcome(0, 10)).unwrap();
        assert_eq!(link.read_budget(), 10);
        link.push_output(b"0123456789");
        assert_eq!(link.read_budget(), 0);
        assert_eq!(link.next_frame(), Some(Frame::Output { offset: 0, data: b"0123456789".to_vec() }));
        assert_eq!(link.next_frame(), None);
        link.on_frame(Frame::Credit { acked: 4, limit: 14 }).unwrap();
        assert_eq!((link.unacked(), link.read_budget()), (6, 4));
        link.push_output(b"abcd");
        link.disconnected();
        // The room had stored 7 bytes when the connection dropped.
        link.on_frame(welcome(7, 7)).unwrap();
        assert_eq!(link.resume_ticket(), Some("r.7"));
        assert_eq!(link.next_frame(), Some(Frame::Output { offset: 7, data: b"789abcd".to_vec() }));
        link.exited(ExitStatus::Code(0));
        assert_eq!(link.next_frame(), Some(Frame::Exited { status: ExitStatus::Code(0) }));
        link.on_frame(Frame::Credit { acked: 14, limit: 20 }).unwrap();
        assert!(link.finished());
    }

    #[test]
    fn relays_instructions_and_refuses_nonsense() {
        let mut link = RunnerLink::new();
        assert_eq!(link.on_frame(Frame::Input { data: vec![3] }), Ok(Instruction::Input(vec![3])));
        assert_eq!(link.on_frame(Frame::Ping { nonce: 5 }), Ok(Instruction::Reply(Frame::Pong { nonce: 5 })));
        assert_eq!(
            link.on_frame(Frame::Signal { signal: Signal::Interrupt }),
            Ok(Instruction::Signal(Signal::Interrupt))
        );
        assert!(link.on_frame(Frame::RunnerLost).is_err());
        assert_eq!(
            link.on_frame(Frame::Credit { acked: 1, limit: 2 }),
            Err(LinkError::OffsetBeyondOutput { room: 1, produced: 0 })
        );
    }
}

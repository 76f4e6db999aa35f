//! Input on its way from browsers to the runner: it waits in the room in arrival order and goes to the
//! runner within its input window ([`INPUT_WINDOW`]). A browser that sends `InputAt` (its input offset
//! on the connection with each frame) is acked (`Ack`, room to browser) with the offset up to which
//! its input left the room, each time half of [`INPUT_CREDIT`] has gone since the last ack; it keeps
//! at most that credit in flight, so a paste of any size flows at the program's pace. The offsets come
//! from the frames, so nothing is stored per keystroke and a woken room acks correctly. Input beyond
//! what the room holds (a client that ignores its credit, or sends plain `Input`) is refused with
//! [`CloseCode::InputOverflow`].

use super::{ConnId, Effect, Phase, Room, INPUT_WINDOW};
use crate::protocol::{CloseCode, Frame, INPUT_CREDIT, MAX_DATA_BYTES};
use crate::time::Timestamp;

impl Room {
    /// Typed or pasted input (`at`: the connection's input offset before it, for `InputAt`): it waits
    /// in order behind what already waits, and goes to the runner within its input window. Beyond what
    /// the room holds, the browser is refused (the excess is not delivered) and may resume.
    pub(super) fn browser_input(
        &mut self,
        conn: ConnId,
        at: Option<u64>,
        data: &[u8],
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        if !matches!(self.phase, Phase::AwaitingRunner | Phase::Live | Phase::RunnerAway { .. }) {
            // The program has exited: its input has nowhere to go.
            return;
        }
        if self.pending_input.len() + data.len() > self.config.max_pending_input as usize {
            let reason = format!(
                "the program is not reading its input: {} bytes beyond the {} waiting were not delivered",
                data.len(),
                self.pending_input.len()
            );
            return self.close(conn, CloseCode::InputOverflow, &reason, now, fx);
        }
        if data.is_empty() {
            return;
        }
        self.pending_input.extend_from_slice(data);
        let end = at.map(|at| at.saturating_add(data.len() as u64));
        // Runs of one connection's input, merged.
        match self.pending_from.back_mut() {
            Some((last, len, last_end)) if *last == conn && last_end.is_some() == end.is_some() => {
                *len += data.len() as u32;
                *last_end = end;
            }
            _ => self.pending_from.push_back((conn, data.len() as u32, end)),
        }
        self.last_io = now;
        self.pump_input(fx);
    }

    /// Sends waiting input to the runner while its window has room, and acks what left the room.
    pub(super) fn pump_input(&mut self, fx: &mut Vec<Effect>) {
        let Some(runner) = self.runner.conn else { return };
        while !self.pending_input.is_empty() {
            let room = INPUT_WINDOW.saturating_sub(self.input_sent - self.input_acked);
            let take = self.pending_input.len().min(usize::try_from(room).unwrap_or(usize::MAX)).min(MAX_DATA_BYTES);
            if take == 0 {
                return;
            }
            let data: Vec<u8> = self.pending_input.drain(..take).collect();
            self.input_sent += take as u64;
            Self::send(fx, runner, &Frame::Input { data });
            self.input_passed_on(take, fx);
        }
    }

    /// `taken` bytes at the front of the waiting input went to the runner: each `InputAt` connection
    /// they came from learns its offset passed on, once half its credit has gone since the last ack.
    fn input_passed_on(&mut self, mut taken: usize, fx: &mut Vec<Effect>) {
        while taken > 0 {
            let Some((conn, len, end)) = self.pending_from.front_mut() else { return };
            let n = (*len as usize).min(taken);
            *len -= n as u32;
            let (conn, passed) = (*conn, end.map(|end| end.saturating_sub(u64::from(*len))));
            if *len == 0 {
                self.pending_from.pop_front();
            }
            taken -= n;
            let Some(passed) = passed else { continue };
            // A seat since resumed on another connection: that connection counts afresh.
            let Some(seat) = self.seats.iter_mut().find(|s| s.conn == Some(conn)) else { continue };
            if passed >= seat.input_acked.saturating_add(u64::from(INPUT_CREDIT / 2)) {
                seat.input_acked = passed;
                Self::send(fx, conn, &Frame::Ack { offset: passed });
            }
        }
    }
}

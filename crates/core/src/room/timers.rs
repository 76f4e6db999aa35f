//! The room's clocks: every deadline it keeps, what happens when one passes, and the alarm for the next.

use super::{Effect, EndReason, Phase, Room};
use crate::protocol::{CloseCode, Frame};
use crate::time::Timestamp;

/// A deadline and what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    JoinTimeout,
    RunnerGrace,
    ExitLinger,
    Deadline,
    Idle,
    Unattended,
    RunnerSilent,
    SeatSilent(u32),
    SeatResumeWindow(u32),
    SeatRefresh(u32),
    SeatExpired(u32),
    Forget,
}

impl Room {
    pub(super) fn deadlines(&self) -> Vec<(Timestamp, Due)> {
        let c = &self.config;
        let mut out = Vec::new();
        match self.phase {
            Phase::Ended(_) => {
                if let (Some(at), false) = (self.ended_at, self.forgotten) {
                    out.push((at + c.tombstone, Due::Forget));
                }
                return out;
            }
            Phase::AwaitingRunner => out.push((self.created_at + c.join_timeout, Due::JoinTimeout)),
            Phase::RunnerAway { since } => out.push((since + c.runner_grace, Due::RunnerGrace)),
            Phase::Exited { at } => out.push((at + c.resume_window, Due::ExitLinger)),
            Phase::Live => {}
        }
        if let Some(terms) = self.terms {
            out.push((terms.deadline(), Due::Deadline));
            // After an exit the session ends as exited, however quiet or unattended it is.
            if !matches!(self.phase, Phase::Exited { .. }) {
                if let Some(idle) = terms.idle() {
                    out.push((self.last_io + idle, Due::Idle));
                }
                if let (Some(since), Some(limit)) = (self.unattended_since, terms.detached()) {
                    out.push((since + limit, Due::Unattended));
                }
            }
        }
        if self.runner.conn.is_some() {
            out.push((self.runner.last_seen + c.dead_after, Due::RunnerSilent));
        }
        for s in &self.seats {
            let expires = Timestamp::from_secs(s.authorized_until);
            match (s.conn, s.detached_at) {
                (Some(_), _) => {
                    out.push((s.last_seen + c.dead_after, Due::SeatSilent(s.id)));
                    if !s.refresh_requested {
                        out.push((expires - c.refresh_lead, Due::SeatRefresh(s.id)));
                    }
                }
                (None, Some(at)) => out.push((at + c.resume_window, Due::SeatResumeWindow(s.id))),
                (None, None) => {}
            }
            out.push((expires + c.leeway, Due::SeatExpired(s.id)));
        }
        out
    }

    /// Acts on every deadline that has passed at `now`.
    pub(super) fn expire(&mut self, now: Timestamp, fx: &mut Vec<Effect>) {
        // Each action removes its own deadline or ends the session, so this settles quickly; the bound
        // only guards against a bug turning into a hang.
        for _ in 0..64 {
            let Some((_, due)) = self.deadlines().into_iter().filter(|(at, _)| *at <= now).min_by_key(|(at, _)| *at)
            else {
                return;
            };
            self.fire(due, now, fx);
        }
    }

    fn fire(&mut self, due: Due, now: Timestamp, fx: &mut Vec<Effect>) {
        let seat_conn = |room: &Room, id: u32| room.seats.iter().find(|s| s.id == id).and_then(|s| s.conn);
        match due {
            Due::JoinTimeout | Due::RunnerGrace => self.end(EndReason::RunnerLost, fx),
            Due::ExitLinger => {
                let status = self.exit_status.unwrap_or(crate::protocol::ExitStatus::Code(0));
                self.end(EndReason::Exited(status), fx);
            }
            Due::Deadline => self.end(EndReason::Deadline, fx),
            Due::Forget => {
                self.forgotten = true;
                fx.push(Effect::Forget);
            }
            Due::Idle => self.end(EndReason::Idle, fx),
            Due::Unattended => self.end(EndReason::Unattended, fx),
            Due::RunnerSilent => {
                if let Some(conn) = self.runner.conn {
                    self.close(conn, CloseCode::HeartbeatTimeout, "no heartbeat from the runner", now, fx);
                }
            }
            Due::SeatSilent(id) => {
                if let Some(conn) = seat_conn(self, id) {
                    self.close(conn, CloseCode::HeartbeatTimeout, "no heartbeat; resume with your ticket", now, fx);
                }
            }
            Due::SeatRefresh(id) => {
                if let Some(seat) = self.seats.iter_mut().find(|s| s.id == id) {
                    seat.refresh_requested = true;
                    if let Some(conn) = seat.conn {
                        let expires_at = seat.authorized_until;
                        Self::send(fx, conn, &Frame::RefreshNeeded { expires_at });
                    }
                }
            }
            Due::SeatResumeWindow(id) | Due::SeatExpired(id) => {
                if let Some(conn) = seat_conn(self, id) {
                    Self::close_conn(
                        conn,
                        CloseCode::TokenExpired,
                        "authorization expired; attach with a new token",
                        fx,
                    );
                }
                self.seats.retain(|s| s.id != id);
                if self.seats.iter().all(|s| s.conn.is_none()) && self.unattended_since.is_none() {
                    self.unattended_since = Some(now);
                }
                self.trim(fx);
                self.maybe_finish_exit(fx);
            }
        }
    }

    /// Moves the alarm (what `poll_timeout` answers) when it must: the next deadline comes before the
    /// alarm, the alarm has fired (or is due), or nothing is due any more. An alarm still ahead of a
    /// deadline that moved later stays: firing early is harmless (nothing is due, and the alarm is
    /// re-armed then), while moving it on every message would cost the host a storage write per frame,
    /// since the silence deadlines move with each heartbeat and each byte.
    pub(super) fn schedule(&mut self, now: Timestamp) {
        let next = self.deadlines().into_iter().map(|(at, _)| at).min();
        let early_enough = matches!((self.alarm, next), (Some(set), Some(next)) if set > now && set <= next);
        if next != self.alarm && !early_enough {
            self.alarm = next;
        }
    }
}

//! How the room reacts to peers: admission (attach, resume, join), frames, refreshes, disconnects.

use super::ticket::{self, Holder};
use super::{ConnId, Effect, EndReason, Phase, Room, Seat, MAX_CHUNK, MAX_CONSUMED};
use crate::protocol::{close_reason, CloseCode, Frame, Role, Welcome};
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::tokens::{Scope, Verified};

impl Room {
    pub(super) fn browser_attach(
        &mut self,
        conn: ConnId,
        token: &Verified,
        entropy: &[u8; 32],
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        if let Err((code, reason)) = self.admit_token(token, Scope::Attach, now) {
            return Self::close_conn(conn, code, reason, fx);
        }
        // Only browsers attached now count: a seat held for a resume never keeps a new attach out.
        let max = self.config.max_browsers as usize;
        if self.seats.iter().filter(|s| s.conn.is_some()).count() >= max {
            return Self::close_conn(conn, CloseCode::Overloaded, "too many browsers on this session", fx);
        }
        // With every seat taken, the one detached longest gives way (a reloaded tab leaves one behind):
        // its ticket stops working, and that browser attaches afresh if it ever comes back.
        if self.seats.len() >= max {
            let longest = self.seats.iter().filter_map(|s| Some((s.detached_at?, s.id))).min().map(|(_, id)| id);
            self.seats.retain(|s| Some(s.id) != longest);
        }
        self.consume(token);
        self.adopt_terms(token, fx);
        let id = self.next_seat;
        self.next_seat += 1;
        let (ticket, hash) = ticket::issue(Holder::Seat(id), entropy);
        // A fresh browser gets the screen as a snapshot, then the output after it.
        let (start, snapshot) = self.fresh_start(fx);
        let snapshot = snapshot.cloned();
        self.seats.push(Seat {
            id,
            subject: token.claims().sub.clone(),
            conn: Some(conn),
            ticket: hash,
            authorized_until: token.claims().exp,
            refresh_requested: false,
            acked: start,
            sent: start,
            last_seen: now,
            detached_at: None,
            exit_sent: false,
            size: None,
            input_acked: 0,
        });
        self.unattended_since = None;
        self.welcome_browser(conn, start, Secret::new(ticket), token.claims().exp, fx);
        if let Some(snapshot) = &snapshot {
            Self::send_snapshot(conn, snapshot, fx);
        }
        self.after_attach(conn, fx);
    }

    pub(super) fn browser_resume(
        &mut self,
        conn: ConnId,
        ticket_text: &str,
        offset: u64,
        entropy: &[u8; 32],
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        if let Phase::Ended(reason) = self.phase {
            return Self::close_conn(conn, reason.close_code(), "the session has ended", fx);
        }
        let Some((Holder::Seat(id), secret)) = ticket::parse(ticket_text) else {
            return Self::close_conn(conn, CloseCode::Unauthorized, "malformed resume ticket", fx);
        };
        let Some(index) = self.seats.iter().position(|s| s.id == id && s.ticket.matches(&secret)) else {
            return Self::close_conn(conn, CloseCode::Unauthorized, "unknown or used resume ticket", fx);
        };
        let seat = &self.seats[index];
        if seat.authorized_until.saturating_add(self.config.leeway.as_secs()) <= now.as_secs() {
            return Self::close_conn(
                conn,
                CloseCode::TokenExpired,
                "authorization expired; attach with a new token",
                fx,
            );
        }
        // A browser may be ahead of the room: a host that crashed before storing output it had sent
        // restores without it, and the runner sends it again. Such a browser waits at its offset, which
        // cannot lie further ahead than the runner's credit reaches.
        let ahead_limit = self.buffer.end() + u64::from(self.config.buffer_capacity);
        if offset < self.buffer.start() || offset > ahead_limit {
            return Self::close_conn(
                conn,
                CloseCode::ResumeFailed,
                "resume point is no longer held; attach afresh",
                fx,
            );
        }
        if let Some(old) = seat.conn {
            self.close(old, CloseCode::Superseded, "resumed on another connection", now, fx);
        }
        let (ticket_text, hash) = ticket::issue(Holder::Seat(id), entropy);
        let seat = &mut self.seats[index];
        seat.conn = Some(conn);
        seat.ticket = hash;
        seat.acked = offset;
        seat.sent = offset;
        seat.last_seen = now;
        seat.detached_at = None;
        seat.exit_sent = false;
        seat.input_acked = 0;
        let expires = seat.authorized_until;
        self.unattended_since = None;
        self.welcome_browser(conn, offset, Secret::new(ticket_text), expires, fx);
        self.after_attach(conn, fx);
    }

    fn welcome_browser(&self, conn: ConnId, offset: u64, resume_ticket: Secret, expires_at: u64, fx: &mut Vec<Effect>) {
        let welcome = Welcome {
            role: Role::Browser,
            session: self.session.to_string(),
            offset,
            resume_ticket,
            window: self.config.browser_window,
            expires_at,
            heartbeat_ms: self.config.heartbeat_interval.as_millis() as u32,
        };
        Self::send(fx, conn, &Frame::Welcome(welcome));
        self.send_deadline(conn, fx);
    }

    /// Tells a newly admitted browser where the runner is, then starts its output.
    fn after_attach(&mut self, conn: ConnId, fx: &mut Vec<Effect>) {
        if matches!(self.phase, Phase::RunnerAway { .. }) {
            Self::send(fx, conn, &Frame::RunnerAway);
        }
        self.pump(conn, fx);
    }

    pub(super) fn runner_join(
        &mut self,
        conn: ConnId,
        token: &Verified,
        entropy: &[u8; 32],
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        if let Err((code, reason)) = self.admit_token(token, Scope::Join, now) {
            return Self::close_conn(conn, code, reason, fx);
        }
        if self.phase != Phase::AwaitingRunner {
            return Self::close_conn(conn, CloseCode::Forbidden, "a runner already joined; resume with its ticket", fx);
        }
        self.consume(token);
        self.adopt_terms(token, fx);
        self.admit_runner(conn, entropy, now, fx);
    }

    pub(super) fn runner_resume(
        &mut self,
        conn: ConnId,
        ticket_text: &str,
        entropy: &[u8; 32],
        now: Timestamp,
        fx: &mut Vec<Effect>,
    ) {
        if let Phase::Ended(reason) = self.phase {
            return Self::close_conn(conn, reason.close_code(), "the session has ended", fx);
        }
        if matches!(self.phase, Phase::Exited { .. }) {
            return Self::close_conn(conn, CloseCode::SessionEnded, "the program already exited", fx);
        }
        let valid = match (ticket::parse(ticket_text), &self.runner.ticket) {
            (Some((Holder::Runner, secret)), Some(hash)) => hash.matches(&secret),
            _ => false,
        };
        if !valid {
            return Self::close_conn(conn, CloseCode::Unauthorized, "unknown or used runner ticket", fx);
        }
        if let Some(old) = self.runner.conn.take() {
            Self::close_conn(old, CloseCode::Superseded, "runner resumed on another connection", fx);
        }
        if matches!(self.phase, Phase::RunnerAway { .. }) {
            self.broadcast(&Frame::RunnerBack, fx);
        }
        self.admit_runner(conn, entropy, now, fx);
    }

    fn admit_runner(&mut self, conn: ConnId, entropy: &[u8; 32], now: Timestamp, fx: &mut Vec<Effect>) {
        let (ticket_text, hash) = ticket::issue(Holder::Runner, entropy);
        self.runner.conn = Some(conn);
        self.runner.ticket = Some(hash);
        self.runner.last_seen = now;
        self.phase = Phase::Live;
        // Admitting a runner is due `Now`: everything held is stored before the welcome leaves.
        let offset = self.buffer.end();
        self.runner.credit_acked = offset;
        let limit = self.credit_limit();
        self.runner.credit_limit = limit;
        let welcome = Welcome {
            role: Role::Runner,
            session: self.session.to_string(),
            offset,
            resume_ticket: Secret::new(ticket_text),
            window: u32::try_from(limit.saturating_sub(offset)).unwrap_or(u32::MAX),
            expires_at: 0,
            heartbeat_ms: self.config.heartbeat_interval.as_millis() as u32,
        };
        Self::send(fx, conn, &Frame::Welcome(welcome));
        self.send_deadline(conn, fx);
        if let Some((cols, rows)) = self.size {
            Self::send(fx, conn, &Frame::Resize { cols, rows });
        }
        // A new connection: input is counted from here; what waited goes first.
        self.input_sent = 0;
        self.input_acked = 0;
        self.pump_input(fx);
    }

    /// Checks a verified token against this room: kind, session, ended, replay.
    fn admit_token(&mut self, token: &Verified, scope: Scope, now: Timestamp) -> Result<(), (CloseCode, &'static str)> {
        let c = token.claims();
        if c.scope != scope {
            return Err((CloseCode::Forbidden, "token has the wrong scope"));
        }
        if c.sid != self.session {
            return Err((CloseCode::Forbidden, "token is for another session"));
        }
        if let Phase::Ended(reason) = self.phase {
            return Err((reason.close_code(), "the session has ended"));
        }
        if self.consumed.iter().any(|(j, _)| j == &c.jti) {
            return Err((CloseCode::Replayed, "this token was already used"));
        }
        self.forget_expired_jtis(now);
        if self.consumed.len() >= MAX_CONSUMED {
            return Err((CloseCode::Overloaded, "too many attaches on this session"));
        }
        Ok(())
    }

    /// Records the token's id; always called after `admit_token`, which already pruned expired ids.
    fn consume(&mut self, token: &Verified) {
        self.consumed.push((token.claims().jti.clone(), token.claims().exp));
    }

    /// A token id can be forgotten once the token could no longer verify anyway.
    fn forget_expired_jtis(&mut self, now: Timestamp) {
        let leeway = self.config.leeway.as_secs();
        self.consumed.retain(|(_, exp)| exp.saturating_add(leeway) > now.as_secs());
    }

    pub(super) fn message(&mut self, conn: ConnId, data: &[u8], now: Timestamp, fx: &mut Vec<Effect>) {
        let Some(role) = self.role_of(conn) else {
            return;
        };
        let frame = match Frame::decode(data) {
            Ok(frame) => frame,
            Err(e) => return self.close(conn, CloseCode::ProtocolError, &e.to_string(), now, fx),
        };
        self.touch(conn, now);
        match (role, frame) {
            (_, Frame::Ping { nonce }) => Self::send(fx, conn, &Frame::Pong { nonce }),
            (_, Frame::Pong { .. }) => {}
            (Role::Browser, Frame::Input { data }) => {
                self.follow(conn, fx);
                self.browser_input(conn, None, &data, now, fx)
            }
            (Role::Browser, Frame::InputAt { offset, data }) => {
                self.follow(conn, fx);
                self.browser_input(conn, Some(offset), &data, now, fx)
            }
            (Role::Runner, Frame::Ack { offset }) => {
                // Input the runner wrote to its PTY; an ack beyond what was sent (from before a wake)
                // counts as all of it.
                self.input_acked = self.input_acked.max(offset.min(self.input_sent));
                self.pump_input(fx);
            }
            (Role::Browser, Frame::Resize { cols, rows }) => {
                if let Some(seat) = self.seats.iter_mut().find(|s| s.conn == Some(conn)) {
                    seat.size = Some((cols, rows));
                }
                self.size = Some((cols, rows));
                self.relay_to_runner(Frame::Resize { cols, rows }, fx);
            }
            (Role::Browser, Frame::Signal { signal }) => self.relay_to_runner(Frame::Signal { signal }, fx),
            (Role::Browser, Frame::Ack { offset }) => self.browser_ack(conn, offset, now, fx),
            (Role::Browser, Frame::Refresh { token }) => fx.push(Effect::VerifyRefresh { conn, token }),
            (Role::Runner, Frame::Output { offset, data }) => self.runner_output(conn, offset, &data, now, fx),
            (Role::Runner, Frame::Snapshot { offset, last, data }) => {
                self.snapshot_part(conn, (offset, last, data), now, fx)
            }
            (Role::Runner, Frame::Exited { status }) => {
                if self.phase == Phase::Live {
                    // The exit is due `Now`: the host stores everything before these effects leave, so
                    // the runner may forget its output and finish.
                    self.stored_end = self.buffer.end();
                    if self.runner.credit_acked < self.stored_end {
                        self.grant(conn, self.runner.credit_limit, fx);
                    }
                    self.phase = Phase::Exited { at: now };
                    self.runner.conn = None;
                    self.runner.ticket = None;
                    Self::close_conn(conn, CloseCode::Normal, "exit recorded", fx);
                    self.exit_status = Some(status);
                    self.pump_all(fx);
                }
            }
            (role, frame) => {
                let reason = format!("{role:?} may not send {}", frame.name());
                self.close(conn, CloseCode::ProtocolError, &reason, now, fx);
            }
        }
    }

    /// The terminal follows the browser that types: input from one whose size is not the terminal's
    /// resizes the terminal to its size first. (The other browsers fit the output as they can.)
    fn follow(&mut self, conn: ConnId, fx: &mut Vec<Effect>) {
        let size = self.seats.iter().find(|s| s.conn == Some(conn)).and_then(|s| s.size);
        if let Some((cols, rows)) = size.filter(|s| Some(*s) != self.size) {
            self.size = Some((cols, rows));
            self.relay_to_runner(Frame::Resize { cols, rows }, fx);
        }
    }

    fn relay_to_runner(&mut self, frame: Frame, fx: &mut Vec<Effect>) {
        // Resizes are remembered in `self.size` and sent on join; signals need a live program.
        if let Some(runner) = self.runner.conn {
            Self::send(fx, runner, &frame);
        }
    }

    fn browser_ack(&mut self, conn: ConnId, offset: u64, now: Timestamp, fx: &mut Vec<Effect>) {
        let Some(seat) = self.seats.iter_mut().find(|s| s.conn == Some(conn)) else {
            return;
        };
        if offset > seat.sent {
            return self.close(conn, CloseCode::ProtocolError, "ack beyond the output sent", now, fx);
        }
        seat.acked = seat.acked.max(offset);
        self.trim(fx);
        self.pump(conn, fx);
        self.maybe_finish_exit(fx);
    }

    fn runner_output(&mut self, conn: ConnId, offset: u64, data: &[u8], now: Timestamp, fx: &mut Vec<Effect>) {
        let end = self.buffer.end();
        let data_end = offset + data.len() as u64;
        if offset > end {
            return self.close(conn, CloseCode::ProtocolError, "output skips bytes", now, fx);
        }
        if data_end > self.runner.credit_limit {
            let why = format!("output beyond credit (to {data_end}, credit to {})", self.runner.credit_limit);
            return self.close(conn, CloseCode::ProtocolError, &why, now, fx);
        }
        if data_end <= end {
            return; // Already stored: a resend after resume.
        }
        self.buffer.append(&data[(end - offset) as usize..]);
        self.last_io = now;
        self.trim(fx);
        self.pump_all(fx);
    }

    /// Sends the runner a credit when one is due: a step (a sixteenth of the buffer) of stored output
    /// to acknowledge or of room to grant, or any room at all for a runner at its limit. Credit once
    /// granted is never taken back: a browser attaching afresh needs output from the history's start,
    /// which may lie before what the runner was already allowed to send.
    pub(super) fn maybe_grant(&mut self, fx: &mut Vec<Effect>) {
        let Some(runner) = self.runner.conn else { return };
        let limit = self.credit_limit().max(self.runner.credit_limit);
        let step = u64::from(self.config.buffer_capacity / 16).max(1);
        let stalled = self.buffer.end() >= self.runner.credit_limit;
        let due = self.stored_end.saturating_sub(self.runner.credit_acked) >= step
            || limit - self.runner.credit_limit >= step
            || (stalled && limit > self.runner.credit_limit);
        if due {
            self.grant(runner, limit, fx);
        }
    }

    /// Sends the runner a credit to `limit`, acknowledging the output stored.
    fn grant(&mut self, runner: ConnId, limit: u64, fx: &mut Vec<Effect>) {
        let acked = self.stored_end.max(self.runner.credit_acked);
        self.runner.credit_limit = limit;
        self.runner.credit_acked = acked;
        Self::send(fx, runner, &Frame::Credit { acked, limit });
    }

    /// Where the runner's credit ends: the oldest byte a browser still needs plus the buffer capacity.
    /// History kept for fresh attaches does not count: it is bounded by `history_bytes` on its own, so
    /// a history as large as the capacity cannot stall the runner.
    fn credit_limit(&self) -> u64 {
        // A browser ahead of the room (see `browser_resume`) needs the bytes up to its offset first.
        let needed = self.seats.iter().map(|s| s.acked).min().unwrap_or(self.buffer.end()).min(self.buffer.end());
        let capacity = u64::from(self.config.buffer_capacity);
        // Never more than a buffer beyond what is stored: a crash then loses at most that much, and a
        // browser can be at most that far ahead of the restored room.
        (needed.max(self.buffer.start()) + capacity).min(self.stored_end.max(self.runner.credit_acked) + capacity)
    }

    /// Drops output no seat needs, keeping `history_bytes`, and grants the runner the room that freed
    /// when a credit is due.
    pub(super) fn trim(&mut self, fx: &mut Vec<Effect>) {
        let end = self.buffer.end();
        let history_start = end.saturating_sub(u64::from(self.config.history_bytes));
        let needed = self.seats.iter().map(|s| s.acked).min().unwrap_or(end);
        // The output after the latest snapshot stays too (a fresh attach needs it), up to a buffer's worth.
        let for_snapshot = self
            .snapshot_keeps_from()
            .map_or(end, |at| at.max(end.saturating_sub(u64::from(self.config.buffer_capacity))));
        self.buffer.trim_to(needed.min(history_start).min(for_snapshot));
        self.maybe_grant(fx);
    }

    /// Sends a browser the output it may have, then the exit status once it has everything.
    pub(super) fn pump(&mut self, conn: ConnId, fx: &mut Vec<Effect>) {
        let end = self.buffer.end();
        let window = u64::from(self.config.browser_window);
        let exit = self.exit_status;
        let Some(seat) = self.seats.iter_mut().find(|s| s.conn == Some(conn)) else {
            return;
        };
        while seat.sent < end && seat.sent - seat.acked < window {
            let to = end.min(seat.acked + window).min(seat.sent + MAX_CHUNK);
            let data = self.buffer.slice(seat.sent, to);
            fx.push(Effect::Send { conn, frame: Frame::Output { offset: seat.sent, data }.encode() });
            seat.sent = to;
        }
        if let (Some(status), true) = (exit, seat.sent == end && !seat.exit_sent) {
            seat.exit_sent = true;
            fx.push(Effect::Send { conn, frame: Frame::Exited { status }.encode() });
        }
    }

    pub(super) fn pump_all(&mut self, fx: &mut Vec<Effect>) {
        let conns: Vec<ConnId> = self.seats.iter().filter_map(|s| s.conn).collect();
        for conn in conns {
            self.pump(conn, fx);
        }
    }

    pub(super) fn broadcast(&self, frame: &Frame, fx: &mut Vec<Effect>) {
        let bytes = frame.encode();
        for conn in self.seats.iter().filter_map(|s| s.conn) {
            fx.push(Effect::Send { conn, frame: bytes.clone() });
        }
    }

    pub(super) fn refresh_verified(&mut self, conn: ConnId, token: &Verified, now: Timestamp, fx: &mut Vec<Effect>) {
        let Some(index) = self.seats.iter().position(|s| s.conn == Some(conn)) else {
            return;
        };
        if let Err((code, reason)) = self.admit_token(token, Scope::Attach, now) {
            return self.close(conn, code, reason, now, fx);
        }
        if token.claims().sub != self.seats[index].subject {
            return self.close(conn, CloseCode::Forbidden, "refresh token is for another user", now, fx);
        }
        self.consume(token);
        self.adopt_terms(token, fx);
        let seat = &mut self.seats[index];
        seat.authorized_until = seat.authorized_until.max(token.claims().exp);
        seat.refresh_requested = false;
        let expires_at = seat.authorized_until;
        Self::send(fx, conn, &Frame::RefreshAccepted { expires_at });
    }

    pub(super) fn touch(&mut self, conn: ConnId, at: Timestamp) {
        if self.runner.conn == Some(conn) {
            self.runner.last_seen = self.runner.last_seen.max(at);
        } else if let Some(seat) = self.seats.iter_mut().find(|s| s.conn == Some(conn)) {
            seat.last_seen = seat.last_seen.max(at);
        }
    }

    pub(super) fn disconnected(&mut self, conn: ConnId, now: Timestamp, fx: &mut Vec<Effect>) {
        if self.runner.conn == Some(conn) {
            self.runner.conn = None;
            if self.phase == Phase::Live {
                self.phase = Phase::RunnerAway { since: now };
                self.broadcast(&Frame::RunnerAway, fx);
            }
        } else if let Some(seat) = self.seats.iter_mut().find(|s| s.conn == Some(conn)) {
            seat.conn = None;
            seat.detached_at = Some(now);
            if self.seats.iter().all(|s| s.conn.is_none()) {
                self.unattended_since = Some(now);
            }
            self.maybe_finish_exit(fx);
        }
    }

    /// Closes a connection of this room with a `Closing` frame first, and updates the state as if it
    /// had disconnected.
    pub(super) fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str, now: Timestamp, fx: &mut Vec<Effect>) {
        Self::close_conn(conn, code, reason, fx);
        self.disconnected(conn, now, fx);
    }

    /// Closes a connection with a `Closing` frame first, without touching room state (for connections that
    /// were never admitted or were already replaced).
    pub(super) fn close_conn(conn: ConnId, code: CloseCode, reason: &str, fx: &mut Vec<Effect>) {
        Self::send(fx, conn, &Frame::Closing { code, reason: reason.to_owned() });
        fx.push(Effect::Close { conn, code, reason: close_reason(reason) });
    }

    /// Ends the session: every connection is told why and closed.
    pub(super) fn end(&mut self, reason: EndReason, fx: &mut Vec<Effect>) {
        if matches!(self.phase, Phase::Ended(_)) {
            return;
        }
        self.phase = Phase::Ended(reason);
        let code = reason.close_code();
        let text = reason.describe();
        if reason == EndReason::RunnerLost {
            self.broadcast(&Frame::RunnerLost, fx);
        }
        for seat in &mut self.seats {
            if let Some(conn) = seat.conn.take() {
                Self::close_conn(conn, code, &text, fx);
            }
        }
        self.seats.clear();
        if let Some(conn) = self.runner.conn.take() {
            Self::close_conn(conn, code, &text, fx);
        }
        self.runner.ticket = None;
        self.pending_input.clear();
        self.pending_from.clear();
        self.buffer.trim_to(self.buffer.end());
        if !self.ended_reported {
            self.ended_reported = true;
            fx.push(Effect::SessionEnded(reason));
        }
    }

    /// After an exit, the session ends once every seat has acknowledged all output.
    pub(super) fn maybe_finish_exit(&mut self, fx: &mut Vec<Effect>) {
        let (Phase::Exited { .. }, Some(status)) = (self.phase, self.exit_status) else {
            return;
        };
        let end = self.buffer.end();
        if !self.seats.is_empty() && self.seats.iter().all(|s| s.conn.is_some() && s.acked == end && s.exit_sent) {
            self.end(EndReason::Exited(status), fx);
        }
    }
}

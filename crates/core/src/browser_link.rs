//! The browser's side of the session protocol, as a [`StateMachine`]: which credential and URL each
//! connection uses, exactly-once terminal output across reconnects (overlap dropped, gaps reported), acks
//! within the room's window, text heartbeats with their round-trip time and the room's silence, the
//! in-band token refresh, what each close code means for the person at the terminal, and the reconnect
//! backoff with full jitter.
//!
//! The web client (`edge-gateway/web/client`, wasm) wraps it; the page only moves bytes between the
//! WebSocket, xterm.js and this machine, runs the one timer [`StateMachine::poll_timeout`] asks for,
//! and passes the clock and a random seed in.

use crate::machine::{earliest, Backoff, Jitter, StateMachine};
use crate::protocol::{
    CloseCode, Credential, ExitStatus, Frame, FrameError, NextStep, Role, INPUT_CREDIT, MAX_DATA_BYTES,
};
use crate::secret::Secret;
use crate::time::Timestamp;
use core::time::Duration;
use std::collections::VecDeque;

mod messages;
pub use messages::{Effect, Event, Status};

/// The text a browser sends as a heartbeat; the room's platform answers [`PONG`] without waking it.
pub const PING: &str = "ping";
/// The heartbeat answer.
pub const PONG: &str = "pong";
/// Reconnect delays: 250 ms doubling to 15 s, at least 50 ms.
pub const BACKOFF: Backoff =
    Backoff { base: Duration::from_millis(250), cap: Duration::from_secs(15), floor: Duration::from_millis(50) };
/// How often the round trip is measured while connected (at most; a third of the room's heartbeat
/// interval when that is shorter).
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// Input waiting to be sent (typed while no connection is live, or a paste beyond the room's input
/// credit) is kept up to this many bytes; beyond it, input is dropped and the person told.
pub const MAX_QUEUED_INPUT: usize = 16 * 1024 * 1024;
/// Reconnect attempts without a `Welcome` in between before the link gives up.
pub const MAX_ATTEMPTS: u32 = 12;
/// The room's heartbeat interval until its `Welcome` names one.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// Why a message from the room broke the protocol (the link abandons the connection and reconnects).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrowserLinkError {
    /// Not a frame.
    #[error("undecodable frame: {0}")]
    Frame(#[from] FrameError),
    /// A frame only runners receive, or a welcome for another role.
    #[error("unexpected frame from the room: {0}")]
    Unexpected(&'static str),
    /// Output starting beyond the next expected byte on the same connection.
    #[error("output at offset {got} skips bytes after {expected}")]
    OutputGap {
        /// Where output should have continued.
        expected: u64,
        /// Where it did.
        got: u64,
    },
}

/// Where the WebSocket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    /// The next connection is due at this time.
    Waiting { connect_at: Timestamp },
    /// Asked for; not open yet.
    Connecting,
    /// Open; `welcomed` once the room's `Welcome` arrived.
    Open { welcomed: bool, last_heard: Timestamp, ping_sent_at: Option<Timestamp>, next_probe: Option<Timestamp> },
    /// Waiting for the page to bring a new token.
    NeedToken,
    /// Over.
    Stopped,
}

/// The browser's protocol state for one session, across connections. See the module documentation.
/// Its `Debug` leaves out the token and the resume ticket.
#[derive(Clone)]
pub struct BrowserLink {
    session: String,
    token: Secret,
    ticket: Option<Secret>,
    /// The next output byte the terminal has not shown; `None` until the first `Welcome`.
    next: Option<u64>,
    acked: u64,
    window: u32,
    heartbeat: Duration,
    expires_at: u64,
    status: Status,
    attempts: u32,
    connection: Connection,
    jitter: Jitter,
    rtt_ms: Option<u64>,
    exit: Option<ExitStatus>,
    closing: Option<(CloseCode, String)>,
    size: Option<(u16, u16)>,
    /// Input not yet sent: beyond the connection's input credit, or typed while none is live.
    queued: VecDeque<u8>,
    /// Input bytes sent on this connection, and how many of them the room has acked (passed on).
    input_sent: u64,
    input_acked: u64,
    /// Continuing a seat from before a reload with a stored ticket that has not been welcomed yet: if
    /// the room refuses it, the link attaches afresh with its token instead of giving up.
    restored: bool,
    /// A snapshot's parts are arriving (the first one replaces what the terminal shows).
    in_snapshot: bool,
}

impl BrowserLink {
    /// A link that continues the seat a page held before it reloaded, at `offset` (the output it has
    /// shown) with `ticket`, both from [`BrowserLink::resume_point`] before the reload. `token` is a
    /// fresh attach token: should the room refuse the ticket (used, or its seat gone), the link
    /// attaches afresh with it, and the overlap with what the page shows is dropped.
    pub fn resuming(
        session: impl Into<String>,
        token: impl Into<String>,
        (ticket, offset): (impl Into<String>, u64),
        seed: u64,
        now: Timestamp,
    ) -> BrowserLink {
        BrowserLink {
            ticket: Some(Secret::new(ticket)),
            next: Some(offset),
            acked: offset,
            restored: true,
            ..BrowserLink::new(session, token, seed, now)
        }
    }

    /// Where a reloaded page could continue this seat: the latest resume ticket and the offset shown,
    /// once the room has welcomed the link.
    pub fn resume_point(&self) -> Option<(&str, u64)> {
        Some((self.ticket.as_ref()?.expose(), self.next?))
    }

    /// A link for `session` with its first attach token, created at `now`; `seed` is random
    /// (reconnect jitter). Its first timeout, due at once, connects.
    pub fn new(session: impl Into<String>, token: impl Into<String>, seed: u64, now: Timestamp) -> BrowserLink {
        BrowserLink {
            session: session.into(),
            token: Secret::new(token),
            ticket: None,
            next: None,
            acked: 0,
            window: 0,
            heartbeat: DEFAULT_HEARTBEAT,
            expires_at: 0,
            status: Status::Connecting,
            attempts: 0,
            connection: Connection::Waiting { connect_at: now },
            jitter: Jitter::new(seed),
            rtt_ms: None,
            exit: None,
            closing: None,
            size: None,
            queued: VecDeque::new(),
            input_sent: 0,
            input_acked: 0,
            restored: false,
            in_snapshot: false,
        }
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The status now.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The last measured heartbeat round trip.
    pub fn rtt_ms(&self) -> Option<u64> {
        self.rtt_ms
    }

    /// The next output byte the terminal lacks (0 before the first `Welcome`).
    pub fn offset(&self) -> u64 {
        self.next.unwrap_or(0)
    }

    /// When the current authorization expires, seconds since the epoch (0: unknown).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The credential the next connection offers: the resume ticket once there is one, else the token.
    pub fn credential(&self) -> Credential {
        match &self.ticket {
            Some(ticket) => Credential::Resume(ticket.expose().to_owned()),
            None => Credential::Token(self.token.expose().to_owned()),
        }
    }

    /// The path and query the next connection opens (relative to the edge's origin).
    pub fn path(&self) -> String {
        match (&self.ticket, self.next) {
            (Some(_), Some(offset)) => format!("/sessions/{}/attach?offset={offset}", self.session),
            _ => format!("/sessions/{}/attach", self.session),
        }
    }

    fn welcomed(&self) -> bool {
        matches!(self.connection, Connection::Open { welcomed: true, .. })
    }

    fn connect(&mut self, fx: &mut Vec<Effect>) {
        self.connection = Connection::Connecting;
        fx.push(Effect::Connect { path: self.path(), credential: self.credential() });
    }

    fn set_status(&mut self, status: Status, fx: &mut Vec<Effect>) {
        if self.status != status {
            self.status = status;
            fx.push(Effect::Status(status));
        }
    }

    /// Keystrokes and pastes join the queue (up to [`MAX_QUEUED_INPUT`]; beyond it they are dropped
    /// and the person told), which is sent as the connection's input credit allows.
    fn input(&mut self, data: &[u8], fx: &mut Vec<Effect>) {
        if self.queued.len() + data.len() > MAX_QUEUED_INPUT {
            fx.push(Effect::Notice(format!(
                "{} bytes of input were not sent: {} bytes are still waiting to go, and at most {} may wait",
                data.len(),
                self.queued.len(),
                MAX_QUEUED_INPUT
            )));
            return;
        }
        self.queued.extend(data);
        self.send_input(fx);
    }

    /// Sends queued input as binary messages (split at the frame limit) while the room has acked
    /// enough of this connection's input: at most [`INPUT_CREDIT`] bytes in flight.
    fn send_input(&mut self, fx: &mut Vec<Effect>) {
        if !self.welcomed() {
            return;
        }
        while !self.queued.is_empty() {
            let room = u64::from(INPUT_CREDIT).saturating_sub(self.input_sent - self.input_acked);
            let take = self.queued.len().min(usize::try_from(room).unwrap_or(usize::MAX)).min(MAX_DATA_BYTES);
            if take == 0 {
                return;
            }
            let data: Vec<u8> = self.queued.drain(..take).collect();
            let offset = self.input_sent;
            self.input_sent += take as u64;
            fx.push(Effect::Send(Frame::InputAt { offset, data }.encode()));
        }
    }

    fn on_binary(&mut self, bytes: &[u8], now: Timestamp, fx: &mut Vec<Effect>) -> Result<(), BrowserLinkError> {
        let Connection::Open { welcomed, last_heard, .. } = &mut self.connection else { return Ok(()) };
        *last_heard = now;
        let was_welcomed = *welcomed;
        match Frame::decode(bytes)? {
            Frame::Welcome(w) => {
                if w.role != Role::Browser {
                    return Err(BrowserLinkError::Unexpected("a welcome for a runner"));
                }
                self.connection = Connection::Open {
                    welcomed: true,
                    last_heard: now,
                    ping_sent_at: None,
                    // The first probe right after the welcome.
                    next_probe: Some(now),
                };
                self.attempts = 0;
                self.restored = false;
                self.ticket = Some(w.resume_ticket);
                self.window = w.window;
                self.heartbeat = Duration::from_millis(u64::from(w.heartbeat_ms.max(1000)));
                self.expires_at = w.expires_at;
                match self.next {
                    // A fresh page shows the history from wherever the room starts it.
                    None => self.next = Some(w.offset),
                    // Reattached with a token after the resume point was dropped: report what was lost.
                    Some(next) if w.offset > next => {
                        fx.push(Effect::Gap(w.offset - next));
                        self.next = Some(w.offset);
                    }
                    // Earlier or equal: the overlap is dropped as output arrives.
                    Some(_) => {}
                }
                // The room counts the browser as having what it resumed from.
                self.acked = w.offset;
                self.set_status(Status::Live, fx);
                // Every connection starts with the terminal's size, then what was typed meanwhile.
                if let Some((cols, rows)) = self.size {
                    fx.push(Effect::Send(Frame::Resize { cols, rows }.encode()));
                }
                // Input credit is per connection; what was in flight on the last one arrived or not.
                (self.input_sent, self.input_acked) = (0, 0);
                self.send_input(fx);
            }
            Frame::Output { offset, data } => {
                let next = match (was_welcomed, self.next) {
                    (true, Some(next)) => next,
                    _ => return Err(BrowserLinkError::Unexpected("output before welcome")),
                };
                if offset > next {
                    return Err(BrowserLinkError::OutputGap { expected: next, got: offset });
                }
                let end = offset + data.len() as u64;
                if end > next {
                    let skip = (next - offset) as usize;
                    fx.push(Effect::Output(data[skip..].to_vec()));
                    self.next = Some(end);
                }
                if self.window == 0 || self.offset() - self.acked >= u64::from(self.window / 2).max(1) {
                    self.acked = self.offset();
                    fx.push(Effect::Send(Frame::Ack { offset: self.acked }.encode()));
                }
            }
            // The room passed this connection's input on up to `offset`: more may go.
            Frame::Ack { offset } => {
                if !was_welcomed || offset > self.input_sent {
                    return Err(BrowserLinkError::Unexpected("an input ack beyond the input sent"));
                }
                self.input_acked = self.input_acked.max(offset);
                self.send_input(fx);
            }
            Frame::Exited { status } => {
                // The room ends the session once every seat has acknowledged all output: acknowledge
                // the rest now, or a last screen below half a window would keep it open until the
                // resume window passed.
                if self.offset() > self.acked {
                    self.acked = self.offset();
                    fx.push(Effect::Send(Frame::Ack { offset: self.acked }.encode()));
                }
                self.exit = Some(status);
                fx.push(Effect::Exited(status));
            }
            Frame::RefreshNeeded { .. } => fx.push(Effect::RefreshNeeded),
            Frame::RefreshAccepted { expires_at } => self.expires_at = expires_at,
            Frame::RunnerAway => self.set_status(Status::RunnerAway, fx),
            Frame::RunnerBack => self.set_status(Status::Live, fx),
            Frame::RunnerLost => self.set_status(Status::RunnerLost, fx),
            Frame::Deadline { ends_at } => fx.push(Effect::Deadline(ends_at)),
            Frame::Closing { code, reason } => {
                self.closing = Some((code, reason.clone()));
                fx.push(Effect::Closing(code, reason));
            }
            Frame::Ping { nonce } => fx.push(Effect::Send(Frame::Pong { nonce }.encode())),
            Frame::Pong { .. } => {}
            Frame::Input { .. }
            | Frame::InputAt { .. }
            | Frame::Resize { .. }
            | Frame::Signal { .. }
            | Frame::Refresh { .. }
            | Frame::SnapshotWanted
            | Frame::Credit { .. } => return Err(BrowserLinkError::Unexpected("a frame the room does not send")),
            // A fresh attach's screen: it replaces what the terminal shows, and the output continues
            // at its offset.
            Frame::Snapshot { offset, last, data } => {
                if !was_welcomed {
                    return Err(BrowserLinkError::Unexpected("a snapshot before the welcome"));
                }
                let first = !self.in_snapshot;
                self.in_snapshot = !last;
                (self.next, self.acked) = (Some(offset), offset);
                fx.push(Effect::Screen { data, first, last });
            }
        }
        Ok(())
    }

    fn on_text(&mut self, text: &str, now: Timestamp, fx: &mut Vec<Effect>) {
        let every = PROBE_EVERY.min(self.heartbeat / 3);
        let Connection::Open { last_heard, ping_sent_at, next_probe, .. } = &mut self.connection else { return };
        *last_heard = now;
        if text != PONG {
            return;
        }
        if let Some(sent) = ping_sent_at.take() {
            let rtt = now.since(sent).as_millis() as u64;
            *next_probe = Some(sent + every);
            self.rtt_ms = Some(rtt);
            fx.push(Effect::Rtt(rtt));
        }
    }

    /// The connection is gone (closed with `code`, or abandoned as 1006): reconnect, fetch a token, or
    /// stop, as the close-code table says.
    fn closed(&mut self, code: u16, now: Timestamp, fx: &mut Vec<Effect>) {
        let announced = self.closing.take();
        let ours = CloseCode::from_code(code).or(announced.as_ref().map(|(c, _)| *c));
        let reason = announced.map(|(_, r)| r).unwrap_or_default();
        // A ticket kept across a reload that the room no longer honours: attach afresh with the token.
        if self.restored && matches!(ours, Some(CloseCode::Unauthorized | CloseCode::ResumeFailed)) {
            self.restored = false;
            self.ticket = None;
            self.connection = Connection::Waiting { connect_at: now };
            return;
        }
        if let Some(status) = self.exit {
            self.set_status(Status::Ended, fx);
            let message = match status {
                ExitStatus::Code(c) => format!("The program exited with status {c}."),
                ExitStatus::Signaled(s) => format!("The program was ended by signal {s}."),
            };
            return self.stop(message, NextStep::NewSession, fx);
        }
        if ours == Some(CloseCode::InputOverflow) {
            fx.push(Effect::Notice(CloseCode::InputOverflow.explain(&reason)));
        }
        match ours.map_or(NextStep::Resume, CloseCode::next_step) {
            NextStep::Resume | NextStep::Later => {
                self.attempts += 1;
                if self.attempts > MAX_ATTEMPTS {
                    self.set_status(Status::Ended, fx);
                    let message = format!("Could not reconnect after {MAX_ATTEMPTS} attempts.");
                    return self.stop(message, NextStep::NewSession, fx);
                }
                let status = if self.ticket.is_some() { Status::Resuming } else { Status::Connecting };
                self.set_status(status, fx);
                let delay = BACKOFF.delay(self.attempts, self.jitter.next_u32());
                self.connection = Connection::Waiting { connect_at: now + delay };
                fx.push(Effect::ReconnectIn(delay));
            }
            NextStep::NewToken => {
                self.ticket = None;
                self.set_status(Status::Resuming, fx);
                self.connection = Connection::NeedToken;
                fx.push(Effect::NeedToken);
            }
            step @ (NextStep::NewSession | NextStep::GiveUp) => {
                let code = ours.unwrap_or(CloseCode::InternalError);
                let lost = code == CloseCode::RunnerLost || self.status == Status::RunnerLost;
                self.set_status(if lost { Status::RunnerLost } else { Status::Ended }, fx);
                self.stop(code.explain(&reason), step, fx);
            }
        }
    }

    fn stop(&mut self, message: String, next: NextStep, fx: &mut Vec<Effect>) {
        self.connection = Connection::Stopped;
        fx.push(Effect::Stop { message, next });
    }

    fn abandon(&mut self, why: String, now: Timestamp, fx: &mut Vec<Effect>) {
        fx.push(Effect::Abandon(why));
        self.closed(1006, now, fx);
    }

    fn silence_deadline(&self) -> Option<Timestamp> {
        match self.connection {
            // Silent for more than two heartbeat intervals.
            Connection::Open { welcomed: true, last_heard, .. } => {
                Some(last_heard + self.heartbeat * 2 + Duration::from_millis(1))
            }
            _ => None,
        }
    }
}

impl StateMachine for BrowserLink {
    type Event = Event;
    type Effect = Effect;

    fn handle_event(&mut self, event: Event, now: Timestamp) -> Vec<Effect> {
        // A message that arrives just as the silence deadline passes (a page timer throttled in a
        // background tab) proves the connection alive: it counts before the deadlines do.
        if let (Event::Binary(_) | Event::Text(_), Connection::Open { last_heard, .. }) = (&event, &mut self.connection)
        {
            *last_heard = now;
        }
        let mut fx = self.handle_timeout(now);
        if self.connection == Connection::Stopped {
            return fx;
        }
        match event {
            Event::Opened => {
                if self.connection == Connection::Connecting {
                    self.connection =
                        Connection::Open { welcomed: false, last_heard: now, ping_sent_at: None, next_probe: None };
                }
            }
            Event::Binary(bytes) => {
                if let Err(e) = self.on_binary(&bytes, now, &mut fx) {
                    self.abandon(e.to_string(), now, &mut fx);
                }
            }
            Event::Text(text) => self.on_text(&text, now, &mut fx),
            Event::Input(data) => self.input(&data, &mut fx),
            Event::Resize { cols, rows } => {
                // A zero size is refused by the room: not remembered, not sent.
                if cols > 0 && rows > 0 {
                    self.size = Some((cols, rows));
                    if self.welcomed() {
                        fx.push(Effect::Send(Frame::Resize { cols, rows }.encode()));
                    }
                }
            }
            Event::Refresh(token) => {
                // It also becomes the token for a later fresh attach.
                self.token = Secret::new(token);
                if matches!(self.connection, Connection::Open { .. }) {
                    fx.push(Effect::Send(Frame::Refresh { token: self.token.clone() }.encode()));
                }
            }
            Event::NewToken(token) => {
                self.token = Secret::new(token);
                self.ticket = None;
                if self.connection == Connection::NeedToken {
                    self.connect(&mut fx);
                }
            }
            Event::Closed { code } => {
                if matches!(self.connection, Connection::Open { .. } | Connection::Connecting) {
                    self.closed(code, now, &mut fx);
                }
            }
        }
        fx
    }

    fn handle_timeout(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut fx = Vec::new();
        match self.connection {
            Connection::Waiting { connect_at } if connect_at <= now => self.connect(&mut fx),
            Connection::Open { welcomed: true, last_heard, ping_sent_at, next_probe } => {
                if self.silence_deadline().is_some_and(|at| at <= now) {
                    let silent = now.since(last_heard).as_millis();
                    self.abandon(format!("no message from the room for {silent} ms"), now, &mut fx);
                } else if let (None, Some(at)) = (ping_sent_at, next_probe) {
                    // One probe in flight at a time; the next a few seconds after the answer.
                    if at <= now {
                        self.connection =
                            Connection::Open { welcomed: true, last_heard, ping_sent_at: Some(now), next_probe: None };
                        fx.push(Effect::SendText(PING));
                    }
                }
            }
            _ => {}
        }
        fx
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        match self.connection {
            Connection::Waiting { connect_at } => Some(connect_at),
            Connection::Open { welcomed: true, ping_sent_at, next_probe, .. } => {
                earliest([self.silence_deadline(), next_probe.filter(|_| ping_sent_at.is_none())])
            }
            _ => None,
        }
    }
}

impl core::fmt::Debug for BrowserLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BrowserLink")
            .field("session", &self.session)
            .field("next", &self.next)
            .field("acked", &self.acked)
            .field("status", &self.status)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

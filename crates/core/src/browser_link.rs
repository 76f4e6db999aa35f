//! The browser's side of the session protocol, sans-io: which credential and URL the next connection
//! uses, exactly-once terminal output across reconnects (overlap dropped, gaps reported), acks within the
//! room's window, text heartbeats with their round-trip time, the in-band token refresh, what each close
//! code means for the person at the terminal, and reconnect backoff with full jitter.
//!
//! The web client (`edge-gateway/web/client`, wasm) wraps it; the page only moves bytes between the
//! WebSocket, xterm.js and this state machine, and passes the clock and random numbers in.

use crate::protocol::{CloseCode, Credential, ExitStatus, Frame, FrameError, NextStep, Role, MAX_DATA_BYTES};

/// The text a browser sends as a heartbeat; the room's platform answers [`PONG`] without waking it.
pub const PING: &str = "ping";
/// The heartbeat answer.
pub const PONG: &str = "pong";
/// The first reconnect delay's upper bound, in milliseconds.
pub const BACKOFF_BASE_MS: u64 = 250;
/// The largest reconnect delay, in milliseconds.
pub const BACKOFF_CAP_MS: u64 = 15_000;
/// How often the round trip is measured while connected (at most; a third of the room's heartbeat
/// interval when that is shorter).
pub const PROBE_EVERY_MS: u64 = 5_000;
/// Input typed while no connection is live is kept up to this many bytes, and sent after the next
/// `Welcome`; beyond it, keystrokes are dropped.
pub const MAX_QUEUED_INPUT: usize = 64 * 1024;
/// Reconnect attempts without a `Welcome` in between before the link gives up.
pub const MAX_ATTEMPTS: u32 = 12;

/// What the person sees in the status bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Opening the first connection.
    Connecting,
    /// Attached; output flows.
    Live,
    /// The connection dropped; reconnecting to continue at the exact byte.
    Resuming,
    /// Attached, but the runner's connection dropped; the room waits out its grace period.
    RunnerAway,
    /// The runner did not come back: the session is gone.
    RunnerLost,
    /// The session is over (program exited, ended, or refused for good).
    Ended,
}

impl Status {
    /// A stable lowercase name (for the page's CSS classes and tests).
    pub fn name(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Live => "live",
            Status::Resuming => "resuming",
            Status::RunnerAway => "runner-away",
            Status::RunnerLost => "runner-lost",
            Status::Ended => "ended",
        }
    }
}

/// Something the page must do after feeding the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Write these bytes to the terminal (each output byte arrives here exactly once).
    Output(Vec<u8>),
    /// Output was lost between two connections (the resume point was no longer held): this many bytes.
    Gap(u64),
    /// Send this binary message.
    Send(Vec<u8>),
    /// The status changed.
    Status(Status),
    /// The program exited.
    Exited(ExitStatus),
    /// The attach token expires soon: fetch a fresh one and pass it to [`BrowserLink::refresh`].
    RefreshNeeded,
    /// The room announced a close, with the full reason.
    Closing(CloseCode, String),
}

/// What to do after a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterClose {
    /// Connect again after this many milliseconds (with [`BrowserLink::credential`]).
    Reconnect {
        /// The delay.
        delay_ms: u64,
    },
    /// Fetch a new attach token from the control plane, pass it to [`BrowserLink::new_token`], then
    /// connect again.
    NeedToken,
    /// Stop; show the message and offer what `next` says.
    Stop {
        /// What happened, for a person.
        message: String,
        /// What the page should offer.
        next: NextStep,
    },
}

/// Why a message from the room broke the protocol (the page closes the socket and reconnects).
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

/// The browser's protocol state for one session, across connections.
#[derive(Debug, Clone)]
pub struct BrowserLink {
    session: String,
    token: String,
    ticket: Option<String>,
    /// The next output byte the terminal has not shown; `None` until the first `Welcome`.
    next: Option<u64>,
    acked: u64,
    window: u32,
    heartbeat_ms: u64,
    expires_at: u64,
    status: Status,
    attempts: u32,
    welcomed: bool,
    ping_sent_at: Option<u64>,
    last_probe: Option<u64>,
    last_heard: u64,
    rtt_ms: Option<u64>,
    exit: Option<ExitStatus>,
    closing: Option<(CloseCode, String)>,
    size: Option<(u16, u16)>,
    queued: Vec<u8>,
}

impl BrowserLink {
    /// A link for `session` with its first attach token.
    pub fn new(session: impl Into<String>, token: impl Into<String>) -> BrowserLink {
        BrowserLink {
            session: session.into(),
            token: token.into(),
            ticket: None,
            next: None,
            acked: 0,
            window: 0,
            heartbeat_ms: 15_000,
            expires_at: 0,
            status: Status::Connecting,
            attempts: 0,
            welcomed: false,
            ping_sent_at: None,
            last_probe: None,
            last_heard: 0,
            rtt_ms: None,
            exit: None,
            closing: None,
            size: None,
            queued: Vec::new(),
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
            Some(ticket) => Credential::Resume(ticket.clone()),
            None => Credential::Token(self.token.clone()),
        }
    }

    /// The path and query to connect to (relative to the edge's origin).
    pub fn path(&self) -> String {
        match (&self.ticket, self.next) {
            (Some(_), Some(offset)) => format!("/sessions/{}/attach?offset={offset}", self.session),
            _ => format!("/sessions/{}/attach", self.session),
        }
    }

    /// Call when a connection opens at `now_ms`.
    pub fn opened(&mut self, now_ms: u64) {
        self.welcomed = false;
        self.ping_sent_at = None;
        self.last_probe = None;
        self.last_heard = now_ms;
    }

    /// Feeds a binary message from the room.
    pub fn on_binary(&mut self, bytes: &[u8], now_ms: u64) -> Result<Vec<Update>, BrowserLinkError> {
        self.last_heard = now_ms;
        let mut updates = Vec::new();
        match Frame::decode(bytes)? {
            Frame::Welcome(w) => {
                if w.role != Role::Browser {
                    return Err(BrowserLinkError::Unexpected("a welcome for a runner"));
                }
                self.welcomed = true;
                self.attempts = 0;
                self.ticket = Some(w.resume_ticket);
                self.window = w.window;
                self.heartbeat_ms = u64::from(w.heartbeat_ms.max(1000));
                self.expires_at = w.expires_at;
                match self.next {
                    // A fresh page shows the history from wherever the room starts it.
                    None => self.next = Some(w.offset),
                    // Reattached with a token after the resume point was dropped: report what was lost.
                    Some(next) if w.offset > next => {
                        updates.push(Update::Gap(w.offset - next));
                        self.next = Some(w.offset);
                    }
                    // Earlier or equal: the overlap is dropped as output arrives.
                    Some(_) => {}
                }
                // The room counts the browser as having what it resumed from.
                self.acked = w.offset;
                self.set_status(Status::Live, &mut updates);
                // Every connection starts with the terminal's size, then what was typed meanwhile.
                if let Some((cols, rows)) = self.size {
                    updates.push(Update::Send(Frame::Resize { cols, rows }.encode()));
                }
                let queued = core::mem::take(&mut self.queued);
                updates.extend(self.input(&queued).into_iter().map(Update::Send));
            }
            Frame::Output { offset, data } => {
                let next = self.next.ok_or(BrowserLinkError::Unexpected("output before welcome"))?;
                if offset > next {
                    return Err(BrowserLinkError::OutputGap { expected: next, got: offset });
                }
                let end = offset + data.len() as u64;
                if end > next {
                    let skip = (next - offset) as usize;
                    updates.push(Update::Output(data[skip..].to_vec()));
                    self.next = Some(end);
                }
                if self.window == 0 || self.offset() - self.acked >= u64::from(self.window / 2).max(1) {
                    self.acked = self.offset();
                    updates.push(Update::Send(Frame::Ack { offset: self.acked }.encode()));
                }
            }
            Frame::Exited { status } => {
                self.exit = Some(status);
                updates.push(Update::Exited(status));
            }
            Frame::RefreshNeeded { .. } => updates.push(Update::RefreshNeeded),
            Frame::RefreshAccepted { expires_at } => self.expires_at = expires_at,
            Frame::RunnerAway => self.set_status(Status::RunnerAway, &mut updates),
            Frame::RunnerBack => self.set_status(Status::Live, &mut updates),
            Frame::RunnerLost => self.set_status(Status::RunnerLost, &mut updates),
            Frame::Closing { code, reason } => {
                self.closing = Some((code, reason.clone()));
                updates.push(Update::Closing(code, reason));
            }
            Frame::Ping { nonce } => updates.push(Update::Send(Frame::Pong { nonce }.encode())),
            Frame::Pong { .. } => {}
            Frame::Input { .. }
            | Frame::Resize { .. }
            | Frame::Signal { .. }
            | Frame::Ack { .. }
            | Frame::Refresh { .. }
            | Frame::Credit { .. } => return Err(BrowserLinkError::Unexpected("a frame the room does not send")),
        }
        Ok(updates)
    }

    /// Feeds a text message (the heartbeat answer); returns the round trip when it is one.
    pub fn on_text(&mut self, text: &str, now_ms: u64) -> Option<u64> {
        self.last_heard = now_ms;
        if text != PONG {
            return None;
        }
        let sent = self.ping_sent_at.take()?;
        let rtt = now_ms.saturating_sub(sent);
        self.rtt_ms = Some(rtt);
        Some(rtt)
    }

    /// Call on a timer (every second or so): `Some(PING)` when a heartbeat is due, and `Err` when the
    /// connection has been silent for two heartbeat intervals (close it and reconnect).
    pub fn tick(&mut self, now_ms: u64) -> Result<Option<&'static str>, Silent> {
        if !self.welcomed {
            return Ok(None);
        }
        if now_ms.saturating_sub(self.last_heard) > 2 * self.heartbeat_ms {
            return Err(Silent { for_ms: now_ms - self.last_heard });
        }
        // The first probe right after the welcome, then every few seconds: the RTT stays fresh and the
        // room's heartbeat timeout never nears. One probe in flight at a time.
        let every = PROBE_EVERY_MS.min(self.heartbeat_ms / 3);
        let due = self.ping_sent_at.is_none() && self.last_probe.is_none_or(|at| now_ms.saturating_sub(at) >= every);
        if due {
            self.ping_sent_at = Some(now_ms);
            self.last_probe = Some(now_ms);
            return Ok(Some(PING));
        }
        Ok(None)
    }

    /// Keystrokes or pasted text as binary messages (split at the frame limit). Without a live
    /// connection they are queued (up to [`MAX_QUEUED_INPUT`]) and sent after the next `Welcome`.
    pub fn input(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        if !self.welcomed {
            if self.queued.len() + data.len() <= MAX_QUEUED_INPUT {
                self.queued.extend_from_slice(data);
            }
            return Vec::new();
        }
        data.chunks(MAX_DATA_BYTES).map(|chunk| Frame::Input { data: chunk.to_vec() }.encode()).collect()
    }

    /// A terminal size change: remembered for every later connection, and the message to send now if
    /// one is live (`None` otherwise, and for a zero size, which the room refuses).
    pub fn resize(&mut self, cols: u16, rows: u16) -> Option<Vec<u8>> {
        if cols == 0 || rows == 0 {
            return None;
        }
        self.size = Some((cols, rows));
        self.welcomed.then(|| Frame::Resize { cols, rows }.encode())
    }

    /// A fresh attach token for the in-band refresh: the message to send. It also becomes the token
    /// for a later fresh attach.
    pub fn refresh(&mut self, token: String) -> Vec<u8> {
        self.token = token.clone();
        Frame::Refresh { token }.encode()
    }

    /// A new attach token after [`AfterClose::NeedToken`]; the next connection attaches with it.
    pub fn new_token(&mut self, token: String) {
        self.token = token;
        self.ticket = None;
    }

    /// Call when a connection closed with `code` (1006 and other non-edgeshell codes for a dropped
    /// network); `random` in `[0, 1)` spreads the reconnects of many browsers.
    pub fn closed(&mut self, code: u16, random: f64) -> (AfterClose, Vec<Update>) {
        let mut updates = Vec::new();
        self.welcomed = false;
        let announced = self.closing.take();
        let ours = CloseCode::from_code(code).or(announced.as_ref().map(|(c, _)| *c));
        let reason = announced.map(|(_, r)| r).unwrap_or_default();
        if let Some(status) = self.exit {
            self.set_status(Status::Ended, &mut updates);
            let message = match status {
                ExitStatus::Code(c) => format!("The program exited with status {c}."),
                ExitStatus::Signaled(s) => format!("The program was ended by signal {s}."),
            };
            return (AfterClose::Stop { message, next: NextStep::NewSession }, updates);
        }
        let step = match ours {
            // An attach with a token that was already used is normal after a resume ticket expired
            // locally; anything else of ours follows the table.
            Some(code) => code.next_step(),
            None => NextStep::Resume,
        };
        let after = match step {
            NextStep::Resume | NextStep::Later => {
                self.attempts += 1;
                if self.attempts > MAX_ATTEMPTS {
                    let message = format!("Could not reconnect after {MAX_ATTEMPTS} attempts.");
                    self.set_status(Status::Ended, &mut updates);
                    return (AfterClose::Stop { message, next: NextStep::NewSession }, updates);
                }
                self.set_status(
                    if self.ticket.is_some() { Status::Resuming } else { Status::Connecting },
                    &mut updates,
                );
                AfterClose::Reconnect { delay_ms: backoff_ms(self.attempts, random) }
            }
            NextStep::NewToken => {
                self.ticket = None;
                self.set_status(Status::Resuming, &mut updates);
                AfterClose::NeedToken
            }
            NextStep::NewSession | NextStep::GiveUp => {
                let code = ours.unwrap_or(CloseCode::InternalError);
                let lost = code == CloseCode::RunnerLost || self.status == Status::RunnerLost;
                self.set_status(if lost { Status::RunnerLost } else { Status::Ended }, &mut updates);
                AfterClose::Stop { message: explain(code, &reason), next: step }
            }
        };
        (after, updates)
    }

    fn set_status(&mut self, status: Status, updates: &mut Vec<Update>) {
        if self.status != status {
            self.status = status;
            updates.push(Update::Status(status));
        }
    }
}

/// The connection was silent for too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no message from the room for {for_ms} ms")]
pub struct Silent {
    /// How long.
    pub for_ms: u64,
}

/// The delay before reconnect attempt `attempt` (1-based): "full jitter" over an exponential bound,
/// so a region's worth of browsers does not come back in lockstep.
pub fn backoff_ms(attempt: u32, random: f64) -> u64 {
    let bound = BACKOFF_BASE_MS.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(BACKOFF_CAP_MS);
    let random = if random.is_finite() { random.clamp(0.0, 1.0) } else { 0.5 };
    // At least 50 ms: an immediate retry would meet the same failure.
    ((bound as f64 * random) as u64).max(50)
}

/// What a close means, for a person.
pub fn explain(code: CloseCode, reason: &str) -> String {
    let text = match code {
        CloseCode::Normal => "The connection was closed.",
        CloseCode::ProtocolError => "The terminal and the server disagreed about the protocol; reload the page.",
        CloseCode::Unauthorized => "This session link is not valid; sign in again.",
        CloseCode::TokenExpired => "Your access to this session expired.",
        CloseCode::Forbidden => "You do not have access to this session.",
        CloseCode::SessionNotFound => "This session no longer exists.",
        CloseCode::Replayed => "This session link was already used; open the session from your list.",
        CloseCode::SessionEnded => "The session has ended.",
        CloseCode::RunnerLost => "The machine running this session stopped answering; the session is lost.",
        CloseCode::Superseded => "This session was opened in another tab or window.",
        CloseCode::Overloaded => "The service is busy; try again shortly.",
        CloseCode::HeartbeatTimeout => "The connection went quiet and was closed.",
        CloseCode::ResumeFailed => "The session could not continue where it left off.",
        CloseCode::InternalError => "Something went wrong on our side.",
    };
    if reason.is_empty() {
        text.to_owned()
    } else {
        format!("{text} ({reason})")
    }
}

#[cfg(test)]
mod tests;

//! What the browser link takes in and gives out: the [`Event`]s the page reports, the [`Effect`]s it
//! carries out, and the [`Status`] it shows.

use crate::protocol::{CloseCode, Credential, ExitStatus, NextStep};
use core::time::Duration;

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

/// Something that happened to the page's side of the session. Its `Debug` leaves tokens out.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// The WebSocket asked for by [`Effect::Connect`] opened.
    Opened,
    /// A binary message from the room.
    Binary(Vec<u8>),
    /// A text message from the room (the heartbeat answer).
    Text(String),
    /// Keystrokes or pasted text.
    Input(Vec<u8>),
    /// The terminal's size changed.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// A fresh attach token for the in-band refresh (after [`Effect::RefreshNeeded`]).
    Refresh(String),
    /// A new attach token after [`Effect::NeedToken`]: the next connection attaches with it.
    NewToken(String),
    /// The WebSocket closed with `code` (1006 and other non-edgeshell codes for a dropped network).
    Closed {
        /// The close code.
        code: u16,
    },
}

/// Something the page must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open a WebSocket to `path` (relative to the edge's origin) offering `credential`; report
    /// [`Event::Opened`], then messages, then [`Event::Closed`].
    Connect {
        /// The path and query.
        path: String,
        /// What to offer in `Sec-WebSocket-Protocol`.
        credential: Credential,
    },
    /// Write these bytes to the terminal (each output byte arrives here exactly once).
    Output(Vec<u8>),
    /// Draw the session's screen from a snapshot (a fresh attach): `first` clears the terminal first,
    /// `last` ends the drawing. What the terminal answers while drawing it is not the person's input:
    /// drop it.
    Screen {
        /// A part of the escape sequences that draw the screen.
        data: Vec<u8>,
        /// The first part: reset the terminal before it.
        first: bool,
        /// The last part.
        last: bool,
    },
    /// Output was lost between two connections (the resume point was no longer held): this many bytes.
    Gap(u64),
    /// Send this binary message.
    Send(Vec<u8>),
    /// Send this text message (the heartbeat).
    SendText(&'static str),
    /// The status changed.
    Status(Status),
    /// A heartbeat's round trip, in milliseconds.
    Rtt(u64),
    /// The program exited.
    Exited(ExitStatus),
    /// When the session ends (seconds since the epoch): on every attach, and again after an extension.
    Deadline(u64),
    /// The attach token expires soon: fetch a fresh one and pass it in as [`Event::Refresh`].
    RefreshNeeded,
    /// The room announced a close, with the full reason.
    Closing(CloseCode, String),
    /// Something the person should read in the terminal (input that was not delivered).
    Notice(String),
    /// Drop the connection without waiting for its close (it broke the protocol or went silent); no
    /// [`Event::Closed`] needs to follow. The link reconnects on its own.
    Abandon(String),
    /// The next connection is due in this long (for the status bar).
    ReconnectIn(Duration),
    /// Fetch a new attach token from the control plane and pass it in as [`Event::NewToken`].
    NeedToken,
    /// Stop; show the message and offer what `next` says.
    Stop {
        /// What happened, for a person.
        message: String,
        /// What the page should offer.
        next: NextStep,
    },
}

impl core::fmt::Debug for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Event::Opened => write!(f, "Opened"),
            Event::Binary(bytes) => write!(f, "Binary({} bytes)", bytes.len()),
            Event::Text(text) => write!(f, "Text({text:?})"),
            Event::Input(bytes) => write!(f, "Input({} bytes)", bytes.len()),
            Event::Resize { cols, rows } => write!(f, "Resize {{ cols: {cols}, rows: {rows} }}"),
            Event::Refresh(_) => write!(f, "Refresh(..)"),
            Event::NewToken(_) => write!(f, "NewToken(..)"),
            Event::Closed { code } => write!(f, "Closed {{ code: {code} }}"),
        }
    }
}

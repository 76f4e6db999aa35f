//! The session wire protocol spoken between browser, room (Durable Object) and runner: one binary
//! WebSocket message per [`Frame`], versioned, with hard size limits.
//!
//! Layout: `[version u8][type u8][fields]`, integers big-endian, strings as `u16 length + UTF-8`, byte
//! payloads (input, output) running to the end of the message. Output carries the byte offset of its first
//! byte in the session's output stream; acks and credits are offsets too, which is what makes exact
//! resume possible: a reconnecting peer says where it is, and the stream continues at that byte.

mod close;
mod handshake;

use crate::secret::Secret;
pub use close::{close_reason, CloseCode, NextStep, ALL_CLOSE_CODES};
pub use handshake::{answered_subprotocol, Credential, HandshakeError, Upgrade, UpgradeRefused, SUBPROTOCOL};

/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// The most bytes of terminal data in one input or output frame.
pub const MAX_DATA_BYTES: usize = 64 * 1024;
/// Input bytes a browser may have sent on one connection (as `InputAt`) that the room has not yet
/// passed on to the runner. The room acks (`Ack`, room to browser: the connection's input offset passed
/// on) each time half of it has gone, so a paste of any size flows at the program's pace and never
/// overruns the room (see `RoomConfig::max_pending_input`).
pub const INPUT_CREDIT: u32 = 16 * 1024;
/// The most bytes of a string field (tokens, tickets, reasons).
pub const MAX_TEXT_BYTES: usize = 8 * 1024;
/// The largest encoded frame.
pub const MAX_FRAME_BYTES: usize = MAX_DATA_BYTES + 16;
/// How often the room and the runner exchange heartbeats (the room's `Welcome` tells its peers).
pub const HEARTBEAT_INTERVAL: core::time::Duration = core::time::Duration::from_secs(30);

/// How long a connection may stay silent before it counts as dead: three missed heartbeats and a
/// timeout (docs/requirements.md#r-heartbeat).
pub const fn silence_limit(heartbeat: core::time::Duration) -> core::time::Duration {
    core::time::Duration::from_millis(heartbeat.as_millis() as u64 * 3 + 10_000)
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// A browser showing the terminal.
    Browser,
    /// The runner owning the PTY.
    Runner,
}

/// Signals a browser may deliver to the session's program (besides Ctrl-C typed as input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGHUP.
    Hangup,
    /// SIGINT.
    Interrupt,
    /// SIGQUIT.
    Quit,
    /// SIGTERM.
    Terminate,
    /// SIGKILL.
    Kill,
}

impl Signal {
    /// The POSIX signal number.
    pub fn number(self) -> u8 {
        match self {
            Signal::Hangup => 1,
            Signal::Interrupt => 2,
            Signal::Quit => 3,
            Signal::Kill => 9,
            Signal::Terminate => 15,
        }
    }

    fn from_number(n: u8) -> Option<Signal> {
        [Signal::Hangup, Signal::Interrupt, Signal::Quit, Signal::Kill, Signal::Terminate]
            .into_iter()
            .find(|s| s.number() == n)
    }
}

/// How the session's program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal number.
    Signaled(u8),
}

/// Sent by the room to a peer right after it is admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The role the peer was admitted as.
    pub role: Role,
    /// The session.
    pub session: String,
    /// Browser: the offset of the first output byte that follows. Runner: the offset the room has
    /// stored up to, from which the runner must (re)send.
    pub offset: u64,
    /// The ticket for resuming this connection without a token; each resume returns a new one.
    pub resume_ticket: Secret,
    /// Browser: bytes it may have unacknowledged. Runner: bytes of credit beyond `offset`.
    pub window: u32,
    /// When the peer's authorization expires, seconds since the epoch (0: with the session).
    pub expires_at: u64,
    /// The heartbeat interval the room expects, in milliseconds.
    pub heartbeat_ms: u32,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Heartbeat request; answered with `Pong` carrying the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Heartbeat answer.
    Pong {
        /// The nonce of the `Ping`.
        nonce: u64,
    },
    /// Keystrokes or pasted text for the program (browser -> room -> runner).
    Input {
        /// Raw bytes for the PTY.
        data: Vec<u8>,
    },
    /// Keystrokes or pasted text from a browser that keeps to its input credit (browser -> room; the
    /// room passes the data on as `Input`): `offset` counts this connection's input bytes before
    /// `data`, and the room acks (`Ack`, room -> browser) the offset up to which it passed input on.
    InputAt {
        /// This connection's input bytes before `data`.
        offset: u64,
        /// Raw bytes for the PTY.
        data: Vec<u8>,
    },
    /// Terminal size change (browser -> room -> runner).
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Deliver a signal to the program's process group (browser -> room -> runner).
    Signal {
        /// Which signal.
        signal: Signal,
    },
    /// The browser has received output up to (not including) this offset.
    Ack {
        /// Offset of the next byte it expects.
        offset: u64,
    },
    /// A fresh attach token, sent in-band before the current one expires (browser -> room).
    Refresh {
        /// The compact JWS.
        token: Secret,
    },
    /// Program output (runner -> room -> browser).
    Output {
        /// Offset of `data[0]` in the session's output stream.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The program exited (runner -> room -> browser), sent after its last output.
    Exited {
        /// How.
        status: ExitStatus,
    },
    /// The terminal's screen as it stood after output byte `offset` (exclusive): the escape sequences
    /// that draw it on a blank terminal (runner -> room, and room -> a browser attaching afresh, before
    /// the output from `offset`). Sent in parts of at most [`MAX_DATA_BYTES`]; `last` marks the final one.
    Snapshot {
        /// The output offset the screen stands at.
        offset: u64,
        /// Whether this is the last part.
        last: bool,
        /// A part of the drawing.
        data: Vec<u8>,
    },
    /// The room wants a fresh snapshot of the screen (room -> runner).
    SnapshotWanted,
    /// Flow control from the room to the runner.
    Credit {
        /// The room has stored output up to here; the runner may forget it.
        acked: u64,
        /// The runner may send output up to (not including) this offset.
        limit: u64,
    },
    /// Admission (room -> peer).
    Welcome(Welcome),
    /// The attach token expires soon; send a `Refresh` (room -> browser).
    RefreshNeeded {
        /// Expiry, seconds since the epoch.
        expires_at: u64,
    },
    /// The refresh was accepted (room -> browser).
    RefreshAccepted {
        /// New expiry, seconds since the epoch.
        expires_at: u64,
    },
    /// The runner's connection dropped; it has the grace period to come back (room -> browser).
    RunnerAway,
    /// The runner is back (room -> browser).
    RunnerBack,
    /// The runner did not come back: the session is lost (room -> browser).
    RunnerLost,
    /// The session's deadline, sent after each `Welcome` and whenever an extension moves it (room ->
    /// browser, room -> runner).
    Deadline {
        /// Seconds since the epoch.
        ends_at: u64,
    },
    /// The room is about to close this connection; carries the full reason (WebSocket close reasons are
    /// limited to 123 bytes).
    Closing {
        /// The close code that follows.
        code: CloseCode,
        /// Human-readable reason.
        reason: String,
    },
}

/// Why bytes did not decode to a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Empty message.
    #[error("empty frame")]
    Empty,
    /// Larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// Another protocol version.
    #[error("protocol version {0} is not supported (this side speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// Unknown frame type.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// Ended before a field did.
    #[error("frame ends inside field {0}")]
    Truncated(&'static str),
    /// Bytes after the last field.
    #[error("{0} unexpected bytes after the frame")]
    TrailingBytes(usize),
    /// A field holds a value outside its domain.
    #[error("invalid value for {0}")]
    InvalidValue(&'static str),
}

mod tag {
    pub(super) const PING: u8 = 0x01;
    pub(super) const PONG: u8 = 0x02;
    pub(super) const INPUT: u8 = 0x10;
    pub(super) const RESIZE: u8 = 0x11;
    pub(super) const SIGNAL: u8 = 0x12;
    pub(super) const ACK: u8 = 0x13;
    pub(super) const REFRESH: u8 = 0x14;
    pub(super) const INPUT_AT: u8 = 0x15;
    pub(super) const OUTPUT: u8 = 0x20;
    pub(super) const EXITED: u8 = 0x21;
    pub(super) const CREDIT: u8 = 0x22;
    pub(super) const SNAPSHOT: u8 = 0x23;
    pub(super) const WELCOME: u8 = 0x30;
    pub(super) const REFRESH_NEEDED: u8 = 0x31;
    pub(super) const REFRESH_ACCEPTED: u8 = 0x32;
    pub(super) const RUNNER_AWAY: u8 = 0x33;
    pub(super) const RUNNER_BACK: u8 = 0x34;
    pub(super) const RUNNER_LOST: u8 = 0x35;
    pub(super) const CLOSING: u8 = 0x36;
    pub(super) const DEADLINE: u8 = 0x37;
    pub(super) const SNAPSHOT_WANTED: u8 = 0x38;
}

impl Frame {
    /// A short name for logs and close reasons.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Ping { .. } => "ping",
            Frame::Pong { .. } => "pong",
            Frame::Input { .. } => "input",
            Frame::InputAt { .. } => "input at",
            Frame::Resize { .. } => "resize",
            Frame::Signal { .. } => "signal",
            Frame::Ack { .. } => "ack",
            Frame::Refresh { .. } => "refresh",
            Frame::Output { .. } => "output",
            Frame::Exited { .. } => "exited",
            Frame::Credit { .. } => "credit",
            Frame::Welcome(_) => "welcome",
            Frame::RefreshNeeded { .. } => "refresh-needed",
            Frame::RefreshAccepted { .. } => "refresh-accepted",
            Frame::RunnerAway => "runner-away",
            Frame::RunnerBack => "runner-back",
            Frame::RunnerLost => "runner-lost",
            Frame::Closing { .. } => "closing",
            Frame::Deadline { .. } => "deadline",
            Frame::Snapshot { .. } => "snapshot",
            Frame::SnapshotWanted => "snapshot-wanted",
        }
    }

    /// A screen snapshot as the `Snapshot` frames that carry it: parts of at most [`MAX_DATA_BYTES`],
    /// the last one marked (one empty part for an empty drawing).
    pub fn snapshot_parts(offset: u64, data: &[u8]) -> impl Iterator<Item = Frame> + '_ {
        let count = data.len().div_ceil(MAX_DATA_BYTES).max(1);
        (0..count).map(move |i| {
            let part = &data[(i * MAX_DATA_BYTES).min(data.len())..((i + 1) * MAX_DATA_BYTES).min(data.len())];
            Frame::Snapshot { offset, last: i + 1 == count, data: part.to_vec() }
        })
    }

    /// Encodes into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.payload_len());
        self.encode_into(&mut out);
        out
    }

    fn payload_len(&self) -> usize {
        match self {
            Frame::Input { data }
            | Frame::InputAt { data, .. }
            | Frame::Output { data, .. }
            | Frame::Snapshot { data, .. } => data.len(),
            Frame::Refresh { token } => token.expose().len(),
            Frame::Welcome(w) => w.session.len() + w.resume_ticket.expose().len() + 32,
            Frame::Closing { reason, .. } => reason.len(),
            _ => 0,
        }
    }

    /// Appends the encoding to `out`. Data and text longer than the limits is the caller's bug; the
    /// decoder on the other side refuses it.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        match self {
            Frame::Ping { nonce } => tagged_u64(out, tag::PING, *nonce),
            Frame::Pong { nonce } => tagged_u64(out, tag::PONG, *nonce),
            Frame::Input { data } => {
                out.push(tag::INPUT);
                out.extend_from_slice(data);
            }
            Frame::InputAt { offset, data } => {
                tagged_u64(out, tag::INPUT_AT, *offset);
                out.extend_from_slice(data);
            }
            Frame::Resize { cols, rows } => {
                out.push(tag::RESIZE);
                out.extend_from_slice(&cols.to_be_bytes());
                out.extend_from_slice(&rows.to_be_bytes());
            }
            Frame::Signal { signal } => {
                out.push(tag::SIGNAL);
                out.push(signal.number());
            }
            Frame::Ack { offset } => tagged_u64(out, tag::ACK, *offset),
            Frame::Refresh { token } => {
                out.push(tag::REFRESH);
                put_str(out, token.expose());
            }
            Frame::Output { offset, data } => {
                tagged_u64(out, tag::OUTPUT, *offset);
                out.extend_from_slice(data);
            }
            Frame::Exited { status } => {
                out.push(tag::EXITED);
                match status {
                    ExitStatus::Code(code) => {
                        out.push(0);
                        out.extend_from_slice(&code.to_be_bytes());
                    }
                    ExitStatus::Signaled(sig) => {
                        out.push(1);
                        out.push(*sig);
                    }
                }
            }
            Frame::Snapshot { offset, last, data } => {
                tagged_u64(out, tag::SNAPSHOT, *offset);
                out.push(u8::from(*last));
                out.extend_from_slice(data);
            }
            Frame::SnapshotWanted => out.push(tag::SNAPSHOT_WANTED),
            Frame::Credit { acked, limit } => {
                tagged_u64(out, tag::CREDIT, *acked);
                out.extend_from_slice(&limit.to_be_bytes());
            }
            Frame::Welcome(w) => {
                out.push(tag::WELCOME);
                out.push(match w.role {
                    Role::Browser => 1,
                    Role::Runner => 2,
                });
                put_str(out, &w.session);
                out.extend_from_slice(&w.offset.to_be_bytes());
                put_str(out, w.resume_ticket.expose());
                out.extend_from_slice(&w.window.to_be_bytes());
                out.extend_from_slice(&w.expires_at.to_be_bytes());
                out.extend_from_slice(&w.heartbeat_ms.to_be_bytes());
            }
            Frame::RefreshNeeded { expires_at } => tagged_u64(out, tag::REFRESH_NEEDED, *expires_at),
            Frame::RefreshAccepted { expires_at } => tagged_u64(out, tag::REFRESH_ACCEPTED, *expires_at),
            Frame::RunnerAway => out.push(tag::RUNNER_AWAY),
            Frame::RunnerBack => out.push(tag::RUNNER_BACK),
            Frame::RunnerLost => out.push(tag::RUNNER_LOST),
            Frame::Deadline { ends_at } => tagged_u64(out, tag::DEADLINE, *ends_at),
            Frame::Closing { code, reason } => {
                out.push(tag::CLOSING);
                out.extend_from_slice(&code.code().to_be_bytes());
                put_str(out, reason);
            }
        }
    }

    /// Decodes one message, refusing anything not exactly one well-formed frame.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        let mut r = Reader { bytes };
        let version = r.u8("version").map_err(|_| FrameError::Empty)?;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let frame = match r.u8("type")? {
            tag::PING => Frame::Ping { nonce: r.u64("nonce")? },
            tag::PONG => Frame::Pong { nonce: r.u64("nonce")? },
            tag::INPUT => Frame::Input { data: r.data()? },
            tag::INPUT_AT => Frame::InputAt { offset: r.u64("offset")?, data: r.data()? },
            tag::RESIZE => {
                let cols = r.u16("cols")?;
                let rows = r.u16("rows")?;
                if cols == 0 || rows == 0 {
                    return Err(FrameError::InvalidValue("terminal size"));
                }
                Frame::Resize { cols, rows }
            }
            tag::SIGNAL => Frame::Signal {
                signal: Signal::from_number(r.u8("signal")?).ok_or(FrameError::InvalidValue("signal"))?,
            },
            tag::ACK => Frame::Ack { offset: r.u64("offset")? },
            tag::REFRESH => Frame::Refresh { token: Secret::new(r.string("token")?) },
            tag::OUTPUT => {
                let offset = r.u64("offset")?;
                let data = r.data()?;
                if offset.checked_add(data.len() as u64).is_none() {
                    return Err(FrameError::InvalidValue("offset"));
                }
                Frame::Output { offset, data }
            }
            tag::EXITED => {
                let status = match r.u8("exit kind")? {
                    0 => ExitStatus::Code(r.u32("exit code")? as i32),
                    1 => ExitStatus::Signaled(r.u8("exit signal")?),
                    _ => return Err(FrameError::InvalidValue("exit kind")),
                };
                Frame::Exited { status }
            }
            tag::SNAPSHOT => {
                let offset = r.u64("offset")?;
                let last = match r.u8("last")? {
                    0 => false,
                    1 => true,
                    _ => return Err(FrameError::InvalidValue("last")),
                };
                Frame::Snapshot { offset, last, data: r.data()? }
            }
            tag::SNAPSHOT_WANTED => Frame::SnapshotWanted,
            tag::CREDIT => {
                let acked = r.u64("acked")?;
                let limit = r.u64("limit")?;
                if limit < acked {
                    return Err(FrameError::InvalidValue("credit limit"));
                }
                Frame::Credit { acked, limit }
            }
            tag::WELCOME => {
                let role = match r.u8("role")? {
                    1 => Role::Browser,
                    2 => Role::Runner,
                    _ => return Err(FrameError::InvalidValue("role")),
                };
                Frame::Welcome(Welcome {
                    role,
                    session: r.string("session")?,
                    offset: r.u64("offset")?,
                    resume_ticket: Secret::new(r.string("resume_ticket")?),
                    window: r.u32("window")?,
                    expires_at: r.u64("expires_at")?,
                    heartbeat_ms: r.u32("heartbeat_ms")?,
                })
            }
            tag::REFRESH_NEEDED => Frame::RefreshNeeded { expires_at: r.u64("expires_at")? },
            tag::REFRESH_ACCEPTED => Frame::RefreshAccepted { expires_at: r.u64("expires_at")? },
            tag::RUNNER_AWAY => Frame::RunnerAway,
            tag::RUNNER_BACK => Frame::RunnerBack,
            tag::RUNNER_LOST => Frame::RunnerLost,
            tag::DEADLINE => Frame::Deadline { ends_at: r.u64("ends_at")? },
            tag::CLOSING => {
                let code = CloseCode::from_code(r.u16("code")?).ok_or(FrameError::InvalidValue("close code"))?;
                Frame::Closing { code, reason: r.string("reason")? }
            }
            other => return Err(FrameError::UnknownType(other)),
        };
        if !r.bytes.is_empty() {
            return Err(FrameError::TrailingBytes(r.bytes.len()));
        }
        Ok(frame)
    }
}

fn tagged_u64(out: &mut Vec<u8>, tag: u8, value: u64) {
    out.push(tag);
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FrameError> {
        let (head, rest) = self.bytes.split_first_chunk::<N>().ok_or(FrameError::Truncated(field))?;
        self.bytes = rest;
        Ok(*head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, FrameError> {
        Ok(self.take::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, FrameError> {
        self.take(field).map(u16::from_be_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, FrameError> {
        self.take(field).map(u32::from_be_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, FrameError> {
        self.take(field).map(u64::from_be_bytes)
    }

    fn string(&mut self, field: &'static str) -> Result<String, FrameError> {
        let len = usize::from(self.u16(field)?);
        if len > MAX_TEXT_BYTES {
            return Err(FrameError::InvalidValue(field));
        }
        if self.bytes.len() < len {
            return Err(FrameError::Truncated(field));
        }
        let (text, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|_| FrameError::InvalidValue(field))
    }

    fn data(&mut self) -> Result<Vec<u8>, FrameError> {
        if self.bytes.len() > MAX_DATA_BYTES {
            return Err(FrameError::InvalidValue("data length"));
        }
        Ok(core::mem::take(&mut self.bytes).to_vec())
    }
}

#[cfg(test)]
mod tests;

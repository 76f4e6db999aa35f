//! What the runner link takes in and gives out: the [`Event`]s the runner binary reports, the
//! [`Effect`]s it carries out, and the [`Outcome`] a session ends with.

use crate::protocol::{CloseCode, Credential, ExitStatus, Signal};

/// Something that happened to the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The connection asked for by [`Effect::Dial`] is open.
    Connected,
    /// The dial failed; `permanent` when the edge looked at the credential and said no.
    DialFailed {
        /// Whether retrying cannot help.
        permanent: bool,
        /// What happened, for the outcome and the log.
        reason: String,
    },
    /// A binary message from the room.
    Message(Vec<u8>),
    /// The connection closed (`code` when the room sent one) or failed.
    Closed {
        /// The WebSocket close code, if any.
        code: Option<u16>,
        /// The close reason or the error.
        reason: String,
    },
    /// Output read from the PTY (at most [`RunnerLink::read_budget`](super::RunnerLink::read_budget) bytes).
    Output(Vec<u8>),
    /// This many input bytes were written to the PTY (or dropped because the terminal closed).
    InputWritten(usize),
    /// The PTY reached its end (every process holding it has gone).
    PtyClosed,
    /// The program exited.
    ProgramExited(ExitStatus),
    /// The runner was told to stop (its pool agent's SIGTERM).
    Stop,
    /// The screen after output byte `offset` (what [`Effect::TakeSnapshot`] asked for): the escape
    /// sequences that draw it on a blank terminal.
    Snapshot {
        /// The output offset it stands at (the bytes read from the PTY so far).
        offset: u64,
        /// The drawing, at most [`MAX_SNAPSHOT_BYTES`](crate::room::MAX_SNAPSHOT_BYTES).
        data: Vec<u8>,
    },
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open a connection to the room offering this credential; report [`Event::Connected`] or
    /// [`Event::DialFailed`].
    Dial(Credential),
    /// The room welcomed the join: start the session's program now (once, and never before: the
    /// program cannot see a join that has not happened).
    StartProgram,
    /// Send this encoded frame on the open connection.
    Send(Vec<u8>),
    /// Close the open connection (the program exited and the room has everything).
    CloseNormally(String),
    /// Drop the open connection without a word (it went silent or broke the protocol); no
    /// [`Event::Closed`] needs to follow.
    Abandon(String),
    /// Write these bytes to the PTY.
    WriteInput(Vec<u8>),
    /// Resize the PTY.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Signal the program's process group.
    Signal(Signal),
    /// The program exited but something it started still holds the terminal: kill the program's
    /// whole tree so the terminal closes.
    KillLeftovers,
    /// The session is over for the runner: kill whatever is left of the program and exit.
    Finish(Outcome),
    /// Snapshot the screen as it stands after all output read so far, and report it as
    /// [`Event::Snapshot`].
    TakeSnapshot,
}

/// How a runner's session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The program exited and the room received its status.
    Exited(ExitStatus),
    /// The room ended the session (the program was stopped).
    Ended(CloseCode, String),
    /// The session's deadline passed and the room did not end it (the program was stopped).
    DeadlinePassed,
    /// The room refused the runner (bad, used or expired join token).
    Refused(String),
    /// The room stayed unreachable for the offline limit.
    Unreachable(String),
    /// The runner was told to stop.
    Stopped,
}

impl Outcome {
    /// The runner process's exit code: 0 when the session ran its course.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(_) | Outcome::Ended(..) | Outcome::Stopped => 0,
            Outcome::DeadlinePassed => 3,
            Outcome::Refused(_) => 4,
            Outcome::Unreachable(_) => 5,
        }
    }
}

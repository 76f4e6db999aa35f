//! The edgeshell runner: owns one session's PTY and streams it to the session's room at the edge, and
//! installs the CLI bundle the image runs (see `bundle`). The binary is `edgeshell-runner`.
//!
//! - [`pty`]: the program on a real pseudo-terminal.
//! - [`relay`]: the main loop between the PTY and the room, over the core's `RunnerLink`.
//! - [`dial`]: opening the WebSocket with the join token or resume ticket.
//! - [`lease`]: ending the session when the local pool agent that started it is gone for good.
//! - [`process_tree`]: finding and killing everything a program started.
//! - [`screen`]: the terminal's screen state, for the snapshots a fresh browser is drawn from.
//! - [`screen_keeper`]: the screen kept on a thread of its own, off the relay's path.
//! - [`settings`]: the runner's configuration from its environment.
//! - [`cli`]: the command line.
//! - [`bundle`]: download, verification and safe extraction of the CLI bundle.
//! - [`workspace`]: the session's repository, cloned before the program starts.
//! - [`files`]: files out: `edgeshell-files put` through the runner's socket, and the outbox.

pub mod bundle;
pub mod cli;
pub mod dial;
pub mod files;
pub mod lease;
pub mod process_tree;
pub mod pty;
pub mod relay;
pub mod screen;
pub mod screen_keeper;
pub mod settings;
pub mod workspace;

//! The runner's main loop: the program on its PTY on one side, the session's room on the other, and the
//! core's [`RunnerLink`] between them deciding what to send and how much output may be read. A dropped
//! connection is redialled with the resume ticket, and output continues at the exact byte the room
//! stored; the PTY is simply not read while nothing may be sent, so the program waits instead of losing
//! output.

use crate::dial::{dial, Backoff, Socket};
use crate::process_tree;
use crate::pty::{exit_status, os_signal, Program, Pty, ReadResult};
use edgeshell_core::protocol::{CloseCode, Credential, ExitStatus, Frame, NextStep, MAX_DATA_BYTES};
use edgeshell_core::runner_link::{Instruction, RunnerLink};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// How the runner reaches its room and how long it may run.
#[derive(Clone)]
pub struct Settings {
    /// `wss://<edge>/sessions/<id>/join`.
    pub join_url: String,
    /// The one-time join token.
    pub join_token: String,
    /// The session's hard deadline.
    pub deadline: Option<SystemTime>,
    /// The session ends after this long without input or output.
    pub idle_timeout: Duration,
    /// Give up when the room has been unreachable for this long.
    pub max_offline: Duration,
    /// One connection attempt's limit.
    pub connect_timeout: Duration,
    /// Where to record the program's process id and start time (for the pool agent's reaping after
    /// a crash), if anywhere.
    pub status_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("join_url", &self.join_url)
            .field("deadline", &self.deadline)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// How a runner's session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The program exited and the room received its status.
    Exited(ExitStatus),
    /// The room ended the session (the program was stopped).
    Ended(CloseCode, String),
    /// The session's deadline passed (the program was stopped).
    DeadlinePassed,
    /// Nothing happened for the idle timeout (the program was stopped).
    Idle,
    /// The room refused the runner (bad, used or expired join token).
    Refused(String),
    /// The room stayed unreachable for the offline limit.
    Unreachable(String),
    /// The runner was told to stop (SIGTERM from its pool agent).
    Stopped,
}

impl Outcome {
    /// The runner process's exit code: 0 when the session ran its course.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(_) | Outcome::Ended(..) | Outcome::Idle | Outcome::Stopped => 0,
            Outcome::DeadlinePassed => 3,
            Outcome::Refused(_) => 4,
            Outcome::Unreachable(_) => 5,
        }
    }
}

/// Input bytes queued for the PTY beyond which the runner stops reading from the room.
const MAX_QUEUED_INPUT: usize = 256 * 1024;
/// After the program exits, how long the PTY may stay open (held by leftover children) before those
/// are killed.
const EXIT_DRAIN: Duration = Duration::from_millis(300);

/// Runs `program` for the session until it ends; always leaves no process of the program behind.
pub async fn run(settings: Settings, program: Program) -> anyhow::Result<Outcome> {
    run_until(settings, program, std::future::pending()).await
}

/// [`run`], ending early with [`Outcome::Stopped`] when `stop` completes.
pub async fn run_until(
    settings: Settings,
    program: Program,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Outcome> {
    let (pty, child) = Pty::spawn(&program)?;
    let group = pty.pid().as_raw_nonzero().get();
    tracing::info!(pid = group, command = %program.command, "program started");
    if let Some(path) = &settings.status_file {
        let start_time = process_tree::stat(group).map_or(0, |s| s.start_time);
        let status = serde_json::json!({ "program_pid": group, "start_time": start_time });
        std::fs::write(path, status.to_string())?;
    }
    let (exit_tx, exit_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut child = child;
        let _ = exit_tx.send(child.wait().await.map(exit_status).unwrap_or(ExitStatus::Code(-1)));
    });
    let mut relay = Relay {
        pty,
        link: RunnerLink::new(),
        input: VecDeque::new(),
        exit_rx,
        exit: None,
        exit_seen: None,
        pty_closed: false,
        leftovers_killed: false,
        last_activity: Instant::now(),
        settings: settings.clone(),
        next_nonce: 1,
    };
    let outcome = tokio::select! {
        outcome = relay.run() => outcome,
        _ = stop => Outcome::Stopped,
    };
    let killed = process_tree::kill_all(&[group]).await;
    tracing::info!(?outcome, killed, "session over");
    Ok(outcome)
}

struct Relay {
    pty: Pty,
    link: RunnerLink,
    input: VecDeque<u8>,
    exit_rx: oneshot::Receiver<ExitStatus>,
    exit: Option<ExitStatus>,
    exit_seen: Option<Instant>,
    pty_closed: bool,
    leftovers_killed: bool,
    last_activity: Instant,
    settings: Settings,
    next_nonce: u64,
}

/// How one connection ended.
enum Dropped {
    /// The session is over.
    Finished(Outcome),
    /// The connection was lost; resume.
    Lost(String),
}

impl Relay {
    async fn run(&mut self) -> Outcome {
        let mut backoff = Backoff::new();
        let mut offline_since = Instant::now();
        loop {
            let credential = match self.link.resume_ticket() {
                Some(ticket) => Credential::Resume(ticket.to_owned()),
                None => Credential::Token(self.settings.join_token.clone()),
            };
            match dial(&self.settings.join_url, &credential, self.settings.connect_timeout).await {
                Ok(socket) => {
                    backoff.reset();
                    match self.connected(socket).await {
                        Dropped::Finished(outcome) => return outcome,
                        Dropped::Lost(why) => {
                            tracing::warn!(%why, "connection to the room lost; resuming");
                            self.link.disconnected();
                            offline_since = Instant::now();
                        }
                    }
                }
                Err(e) if e.is_permanent() => return Outcome::Refused(e.to_string()),
                Err(e) => tracing::warn!(error = %e, "dial failed"),
            }
            if offline_since.elapsed() >= self.settings.max_offline {
                return Outcome::Unreachable(format!("no connection for {:?}", self.settings.max_offline));
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = sleep_until_deadline(self.settings.deadline) => return Outcome::DeadlinePassed,
            }
        }
    }

    async fn connected(&mut self, socket: Socket) -> Dropped {
        let (mut sink, mut stream) = socket.split();
        let mut buf = vec![0u8; MAX_DATA_BYTES / 2];
        let mut heartbeat = Duration::from_secs(30);
        let mut next_ping = tokio::time::Instant::now() + heartbeat;
        let mut last_received = Instant::now();
        loop {
            while let Some(frame) = self.link.next_frame() {
                if let Err(e) = sink.feed(Message::Binary(frame.encode().into())).await {
                    return Dropped::Lost(e.to_string());
                }
            }
            if let Err(e) = sink.flush().await {
                return Dropped::Lost(e.to_string());
            }
            if self.link.finished() {
                let status = self.exit.unwrap_or(ExitStatus::Code(-1));
                let _ = sink.send(Message::Close(Some(normal_close()))).await;
                return Dropped::Finished(Outcome::Exited(status));
            }
            let budget = self.link.read_budget().min(buf.len());
            let draining = self.exit.is_some() && !self.pty_closed && budget > 0;
            let drain_until = self.exit_seen.map_or_else(Instant::now, |t| t + EXIT_DRAIN);
            let idle_at = self.last_activity + self.settings.idle_timeout;
            tokio::select! {
                read = self.pty.read(&mut buf[..budget]), if budget > 0 && !self.pty_closed => match read {
                    Ok(ReadResult::Data(n)) => {
                        self.link.push_output(&buf[..n]);
                        self.last_activity = Instant::now();
                    }
                    Ok(ReadResult::Closed) | Err(_) => self.pty_closed(),
                },
                written = self.pty.write(self.input.make_contiguous()), if !self.input.is_empty() => match written {
                    Ok(n) => drop(self.input.drain(..n)),
                    // The program closed its terminal; its input has nowhere to go.
                    Err(_) => self.input.clear(),
                },
                message = stream.next(), if self.input.len() < MAX_QUEUED_INPUT => {
                    last_received = Instant::now();
                    match message {
                        Some(Ok(Message::Binary(bytes))) => {
                            if let Some(end) = self.on_message(&bytes, &mut heartbeat, &mut sink).await {
                                return end;
                            }
                        }
                        Some(Ok(Message::Close(close))) => return self.on_close(close),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Dropped::Lost(e.to_string()),
                        None => return Dropped::Lost("connection closed".into()),
                    }
                }
                status = &mut self.exit_rx, if self.exit.is_none() => {
                    self.exit = Some(status.unwrap_or(ExitStatus::Code(-1)));
                    self.exit_seen = Some(Instant::now());
                    self.maybe_exited();
                }
                _ = tokio::time::sleep_until(drain_until.into()), if draining => self.kill_leftovers().await,
                _ = tokio::time::sleep_until(next_ping) => {
                    if last_received.elapsed() > heartbeat * 3 + Duration::from_secs(10) {
                        return Dropped::Lost("the room stopped answering heartbeats".into());
                    }
                    let ping = Frame::Ping { nonce: self.next_nonce };
                    self.next_nonce += 1;
                    if let Err(e) = sink.send(Message::Binary(ping.encode().into())).await {
                        return Dropped::Lost(e.to_string());
                    }
                    next_ping = tokio::time::Instant::now() + heartbeat;
                }
                _ = tokio::time::sleep_until(idle_at.into()) => return Dropped::Finished(Outcome::Idle),
                _ = sleep_until_deadline(self.settings.deadline) => return Dropped::Finished(Outcome::DeadlinePassed),
            }
        }
    }

    /// Handles one binary message; `Some` ends the connection.
    async fn on_message(
        &mut self,
        bytes: &[u8],
        heartbeat: &mut Duration,
        sink: &mut (impl SinkExt<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin),
    ) -> Option<Dropped> {
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(e) => return Some(Dropped::Lost(format!("undecodable frame from the room: {e}"))),
        };
        if let Frame::Welcome(w) = &frame {
            *heartbeat = Duration::from_millis(u64::from(w.heartbeat_ms.max(1_000)));
            tracing::info!(offset = w.offset, window = w.window, "joined the room");
        }
        let instruction = match self.link.on_frame(frame) {
            Ok(i) => i,
            Err(e) => return Some(Dropped::Lost(format!("protocol error: {e}"))),
        };
        match instruction {
            Instruction::Input(data) => {
                self.input.extend(data);
                self.last_activity = Instant::now();
            }
            Instruction::Resize { cols, rows } => {
                if let Err(e) = self.pty.resize(cols, rows) {
                    tracing::warn!(error = %e, "resize failed");
                }
                self.last_activity = Instant::now();
            }
            Instruction::Signal(signal) => {
                if let Err(e) = self.pty.signal(os_signal(signal)) {
                    tracing::warn!(error = %e, ?signal, "signal failed");
                }
                self.last_activity = Instant::now();
            }
            Instruction::Reply(frame) => {
                if let Err(e) = sink.send(Message::Binary(frame.encode().into())).await {
                    return Some(Dropped::Lost(e.to_string()));
                }
            }
            Instruction::Closing(code, reason) => {
                if code.next_step() != NextStep::Resume {
                    return Some(Dropped::Finished(Outcome::Ended(code, reason)));
                }
            }
            Instruction::Nothing => {}
        }
        None
    }

    fn on_close(&self, close: Option<CloseFrame>) -> Dropped {
        let Some(close) = close else { return Dropped::Lost("closed without a code".into()) };
        let reason = close.reason.to_string();
        match CloseCode::from_code(u16::from(close.code)) {
            Some(code) if matches!(code.next_step(), NextStep::Resume | NextStep::Later) => Dropped::Lost(reason),
            Some(code) => Dropped::Finished(Outcome::Ended(code, reason)),
            None => Dropped::Lost(format!("close code {}: {reason}", u16::from(close.code))),
        }
    }

    fn pty_closed(&mut self) {
        self.pty_closed = true;
        self.maybe_exited();
    }

    /// The exit is reported once the program has exited and its last output was read.
    fn maybe_exited(&mut self) {
        if let (true, Some(status)) = (self.pty_closed, self.exit) {
            self.link.exited(status);
        }
    }

    /// The program exited but something it started still holds the terminal: end those, so the
    /// terminal closes and the exit can be reported.
    async fn kill_leftovers(&mut self) {
        if self.leftovers_killed {
            // Killed already and still open: stop waiting for output.
            self.pty_closed();
            return;
        }
        self.leftovers_killed = true;
        self.exit_seen = Some(Instant::now());
        let group = self.pty.pid().as_raw_nonzero().get();
        let killed = process_tree::kill_all(&[group]).await;
        tracing::info!(killed, "stopped processes left behind by the program");
    }
}

fn normal_close() -> CloseFrame {
    CloseFrame { code: WsCloseCode::Normal, reason: "the program exited".into() }
}

async fn sleep_until_deadline(deadline: Option<SystemTime>) {
    match deadline {
        Some(at) => tokio::time::sleep(at.duration_since(SystemTime::now()).unwrap_or_default()).await,
        None => std::future::pending().await,
    }
}

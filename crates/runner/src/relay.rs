//! The runner's main loop: the host of the core's [`RunnerLink`] state machine. It owns the I/O (the
//! program on its PTY, the WebSocket to the session's room, one timer) and carries out what the link
//! decides: when to dial and with which credential, what to send, how much PTY output may be read (the
//! PTY is simply not read while nothing may be sent, so the program waits instead of losing output),
//! heartbeats, the idle timeout, the deadline, reconnect backoff and when the session is over.

use crate::dial::{dial, Socket};
use crate::files::{Files, FilesAccess, Flushed};
use crate::process_tree;
use crate::pty::{exit_status, os_signal, Program, Pty, ReadResult};
use crate::workspace::{notice, Workspace};
use edgeshell_core::machine::StateMachine;
use edgeshell_core::protocol::{ExitStatus, MAX_DATA_BYTES};
use edgeshell_core::runner_link::{Effect, Event, LinkConfig, RunnerLink, MAX_QUEUED_INPUT};
use edgeshell_core::secret::Secret;
use edgeshell_platform::clock;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub use edgeshell_core::runner_link::Outcome;

/// How the runner reaches its room and how long it may run.
#[derive(Clone)]
pub struct Settings {
    /// `wss://<edge>/sessions/<id>/join`.
    pub join_url: String,
    /// The one-time join token.
    pub join_token: Secret,
    /// The session's deadline (the room ends the session then; the runner a backstop later).
    pub deadline: Option<SystemTime>,
    /// Give up when the room has been unreachable for this long.
    pub max_offline: Duration,
    /// One connection attempt's limit.
    pub connect_timeout: Duration,
    /// Where to record the program's process id and start time (for the pool agent's reaping after
    /// a crash), if anywhere.
    pub status_file: Option<std::path::PathBuf>,
    /// Keep the terminal's screen for the room's snapshots (`EDGESHELL_SCREEN`).
    pub screen: bool,
    /// A repository to clone before the program starts.
    pub workspace: Option<Workspace>,
    /// The session's right to upload artifacts: `edgeshell-files` and the outbox ([`crate::files`]).
    pub files: Option<FilesAccess>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("join_url", &self.join_url)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// How soon to ask again for a snapshot the screen thread could not give yet.
const SNAPSHOT_RETRY: Duration = Duration::from_millis(50);

/// Runs `program` for the session until it ends; always leaves no process of the program behind.
pub async fn run(settings: Settings, program: Program) -> anyhow::Result<Outcome> {
    run_until(settings, program, std::future::pending()).await
}

/// [`run`], ending early with [`Outcome::Stopped`] when `stop` completes. The program starts only once
/// the room has welcomed the join: a refused join runs nothing, and nothing of the session runs while
/// the join token is still of use.
pub async fn run_until(
    settings: Settings,
    program: Program,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Outcome> {
    let config = LinkConfig { max_offline: settings.max_offline, ..LinkConfig::DEFAULT };
    let link = RunnerLink::new(
        config,
        settings.join_token.clone(),
        settings.deadline.map(clock::timestamp),
        rand::random(),
        clock::now(),
    );
    let mut settings = settings;
    settings.join_token = Secret::default();
    let mut program = program;
    let files = settings.files.take().and_then(|access| match start_files(&settings.join_url, access, &program) {
        Ok(files) => {
            program.env.push((crate::files::client::SOCKET_VAR.to_owned(), files.socket().display().to_string()));
            Some(files)
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "files out are not available in this session");
            None
        }
    });
    let mut host = Host {
        program,
        pty: None,
        group: None,
        exit_rx: None,
        link,
        settings,
        input: VecDeque::new(),
        sink: None,
        stream: None,
        screen: None,
        snapshot: None,
        snapshot_wanted: false,
        cloning: None,
        files,
        exiting: None,
    };
    // The stop is raced against the whole loop, so it also ends a dial or a send that is waiting on the
    // network.
    let outcome = tokio::select! {
        outcome = host.run() => outcome,
        _ = stop => Ok(Outcome::Stopped),
    };
    if let Some(group) = host.group {
        let mut killed = process_tree::kill_all(&[group]).await;
        // The session's own user (the local backend's): whatever it detached ends with it too, even
        // with no agent left to see to it.
        if let Some(uid) = host.program.user {
            match process_tree::kill_user(uid).await {
                Ok(n) => killed += n,
                Err(e) => tracing::error!(uid, error = %e, "could not kill the session user's processes"),
            }
        }
        tracing::info!(?outcome, killed, "session over");
    }
    outcome
}

/// The link's I/O.
struct Host {
    program: Program,
    /// The program's terminal, once it started.
    pty: Option<Pty>,
    /// The program's process group, once it started.
    group: Option<i32>,
    /// The program's exit, while it runs.
    exit_rx: Option<tokio::sync::oneshot::Receiver<ExitStatus>>,
    link: RunnerLink,
    settings: Settings,
    /// Typed input waiting for the PTY.
    input: VecDeque<u8>,
    sink: Option<SplitSink<Socket, Message>>,
    stream: Option<SplitStream<Socket>>,
    /// The terminal's screen, fed every output byte on a thread of its own (once the program runs).
    screen: Option<crate::screen_keeper::ScreenKeeper>,
    /// A snapshot on its way from the screen thread.
    snapshot: Option<tokio::sync::oneshot::Receiver<crate::screen_keeper::Snapshot>>,
    /// The link asked for a snapshot while the screen thread was catching up.
    snapshot_wanted: bool,
    /// The repository's clone, while it runs on the PTY before the program.
    cloning: Option<Cloning>,
    /// Files out, when the session may upload.
    files: Option<Files>,
    /// The program's exit, held back while the outbox is flushed.
    exiting: Option<(ExitStatus, tokio::sync::oneshot::Receiver<Flushed>)>,
}

fn start_files(join_url: &str, access: FilesAccess, program: &Program) -> anyhow::Result<Files> {
    let uploader = crate::files::upload::Uploader::new(join_url, access.session, access.token)?;
    Files::start(uploader, &program.cwd, program.user)
}

/// A clone on the PTY.
struct Cloning {
    workspace: Workspace,
    started: std::time::Instant,
    /// Its exit, once `git` has ended (the PTY is then read to its end before the program starts).
    exit: Option<ExitStatus>,
    /// Why it was stopped, if it was.
    stopped: Option<String>,
}

/// How often a clone's size and time are checked.
const CLONE_CHECK: Duration = Duration::from_millis(250);

impl Host {
    async fn run(&mut self) -> anyhow::Result<Outcome> {
        let mut buf = vec![0u8; MAX_DATA_BYTES / 2];
        let mut effects: VecDeque<Effect> = VecDeque::new();
        loop {
            while let Some(effect) = effects.pop_front() {
                if let Some(outcome) = self.carry_out(effect, &mut effects).await? {
                    return Ok(outcome);
                }
            }
            if let Some(sink) = &mut self.sink {
                if let Err(e) = sink.flush().await {
                    effects.extend(self.lost(e.to_string()));
                    continue;
                }
            }
            let budget = self.link.read_budget().min(buf.len());
            let timer = self.link.poll_timeout().map(clock::until);
            let reading_room = self.stream.is_some() && self.input.len() < MAX_QUEUED_INPUT;
            let event = tokio::select! {
                read = read_pty(self.pty.as_ref(), &mut buf[..budget]), if budget > 0 && self.pty.is_some() => match read {
                    Ok(ReadResult::Data(n)) => self.output(buf[..n].to_vec()),
                    Ok(ReadResult::Closed) | Err(_) if self.cloning.is_some() => {
                        // The clone's terminal is drained: the program starts, or the session ends.
                        let events = self.clone_ended().await?;
                        for event in events {
                            effects.extend(self.link.handle_event(event, clock::now()));
                        }
                        continue;
                    }
                    Ok(ReadResult::Closed) | Err(_) => Event::PtyClosed,
                },
                written = write_pty(self.pty.as_ref(), self.input.make_contiguous()), if !self.input.is_empty() && self.pty.is_some() => {
                    let n = match written {
                        Ok(n) => n,
                        // The program closed its terminal; its input has nowhere to go.
                        Err(_) => self.input.len(),
                    };
                    drop(self.input.drain(..n));
                    Event::InputWritten(n)
                }
                message = next_message(&mut self.stream), if reading_room => match message {
                    Some(Ok(Message::Binary(bytes))) => Event::Message(bytes.to_vec()),
                    Some(Ok(Message::Close(close))) => {
                        self.drop_connection();
                        let (code, reason) = close.map_or((None, String::new()), |c| (Some(u16::from(c.code)), c.reason.to_string()));
                        Event::Closed { code, reason }
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        self.drop_connection();
                        Event::Closed { code: None, reason: e.to_string() }
                    }
                    None => {
                        self.drop_connection();
                        Event::Closed { code: None, reason: "connection closed".into() }
                    }
                },
                status = async { self.exit_rx.as_mut().expect("guarded").await }, if self.exit_rx.is_some() => {
                    self.exit_rx = None;
                    let status = status.unwrap_or(ExitStatus::Code(-1));
                    if let Some(cloning) = &mut self.cloning {
                        cloning.exit = Some(status);
                        continue;
                    }
                    match &self.files {
                        // The outbox goes out before the exit is reported (and the session ends).
                        Some(files) => {
                            self.exiting = Some((status, files.flush()));
                            continue;
                        }
                        None => Event::ProgramExited(status),
                    }
                }
                flushed = async { (&mut self.exiting.as_mut().expect("guarded").1).await }, if self.exiting.is_some() => {
                    let (status, _) = self.exiting.take().expect("guarded");
                    let mut events: Vec<Event> = flushed.map(|f| self.flush_notices(&f)).unwrap_or_default();
                    events.push(Event::ProgramExited(status));
                    for event in events {
                        effects.extend(self.link.handle_event(event, clock::now()));
                    }
                    continue;
                }
                _ = tokio::time::sleep(CLONE_CHECK), if self.cloning.as_ref().is_some_and(|c| c.exit.is_none() && c.stopped.is_none()) => {
                    self.check_clone().await;
                    continue;
                }
                snapshot = async { self.snapshot.as_mut().expect("guarded").await }, if self.snapshot.is_some() => {
                    self.snapshot = None;
                    match snapshot {
                        Ok((offset, data)) => Event::Snapshot { offset, data },
                        Err(_) => continue,
                    }
                }
                // The screen thread was catching up when the link asked: ask again shortly.
                _ = tokio::time::sleep(SNAPSHOT_RETRY), if self.snapshot_wanted => {
                    self.ask_for_snapshot();
                    continue;
                }
                _ = tokio::time::sleep(timer.unwrap_or_default()), if timer.is_some() => {
                    effects.extend(self.link.handle_timeout(clock::now()));
                    continue;
                }
            };
            effects.extend(self.link.handle_event(event, clock::now()));
        }
    }

    /// Starts the program on its PTY and records its process for the pool agent.
    /// Starts the session: the repository's clone first when there is one, else the program.
    fn start_program(&mut self) -> anyhow::Result<()> {
        match self.settings.workspace.take() {
            Some(workspace) => {
                tracing::info!(url = %workspace.url, dir = %workspace.dir, "cloning the session's repository");
                let clone = workspace.clone_program(&self.program);
                self.cloning =
                    Some(Cloning { workspace, started: std::time::Instant::now(), exit: None, stopped: None });
                self.spawn(&clone)
            }
            None => self.spawn(&self.program.clone()),
        }
    }

    /// The clone ended and its terminal is drained: the program starts in the clone, or the session
    /// ends with the reason on the terminal and nothing of the clone left.
    async fn clone_ended(&mut self) -> anyhow::Result<Vec<Event>> {
        let Some(mut cloning) = self.cloning.take() else { return Ok(Vec::new()) };
        self.pty = None;
        // The terminal can close a moment before `git`'s exit is reaped.
        if let (None, Some(exit)) = (cloning.exit, self.exit_rx.take()) {
            cloning.exit = Some(exit.await.unwrap_or(ExitStatus::Code(-1)));
        }
        let workdir = self.program.cwd.clone();
        // A clone quicker than the checks is measured once more before it takes its place.
        if cloning.stopped.is_none() {
            let size = cloning.workspace.size(&workdir);
            cloning.stopped = cloning.workspace.limits.exceeded(std::time::Duration::ZERO, size);
        }
        let ok = cloning.stopped.is_none() && cloning.exit == Some(ExitStatus::Code(0));
        let finished =
            if ok { cloning.workspace.finish(&workdir).map_err(|e| e.to_string()) } else { Err(String::new()) };
        match finished {
            Ok(dest) => {
                tracing::info!(dir = %dest.display(), "repository cloned");
                let line = notice(&format!("cloned {} into ~/{}", cloning.workspace.url, cloning.workspace.dir));
                self.program.cwd = dest;
                self.spawn(&self.program.clone())?;
                Ok(vec![self.output(line)])
            }
            Err(why) => {
                cloning.workspace.discard(&workdir);
                let why = match (cloning.stopped, why.is_empty()) {
                    (Some(stopped), _) => stopped,
                    (None, false) => why,
                    (None, true) => match cloning.exit {
                        Some(ExitStatus::Code(code)) => format!("git exited with {code} (its output is above)"),
                        Some(ExitStatus::Signaled(signal)) => format!("git was killed by signal {signal}"),
                        None => "git's exit is unknown".to_owned(),
                    },
                };
                tracing::warn!(%why, "the repository could not be cloned");
                let line = notice(&format!("the repository {} could not be cloned: {why}", cloning.workspace.url));
                // The session is over: no program, and no more output.
                Ok(vec![self.output(line), Event::ProgramExited(ExitStatus::Code(1)), Event::PtyClosed])
            }
        }
    }

    /// Stops a clone past its time or size (its terminal then closes, and `clone_ended` follows).
    async fn check_clone(&mut self) {
        let Some(cloning) = &mut self.cloning else { return };
        let size = cloning.workspace.size(&self.program.cwd);
        if let Some(why) = cloning.workspace.limits.exceeded(cloning.started.elapsed(), size) {
            cloning.stopped = Some(why);
            let killed = process_tree::kill_all(self.group.as_slice()).await;
            tracing::warn!(killed, "clone stopped");
        }
    }

    /// What the terminal says of a flush of the outbox, if anything happened.
    fn flush_notices(&mut self, flushed: &Flushed) -> Vec<Event> {
        let mut lines = Vec::new();
        if !flushed.stored.is_empty() {
            lines.push(notice(&format!("uploaded from ~/outbox: {}", flushed.stored.join(", "))));
        }
        for (path, why) in &flushed.failed {
            lines.push(notice(&format!("{path} was not uploaded: {why}")));
        }
        lines.into_iter().map(|line| self.output(line)).collect()
    }

    /// Output for the link, fed to the screen first.
    fn output(&mut self, bytes: Vec<u8>) -> Event {
        if let Some(screen) = &mut self.screen {
            screen.output(&bytes);
        }
        Event::Output(bytes)
    }

    /// Starts `program` on a new PTY and records its process for the pool agent.
    fn spawn(&mut self, program: &Program) -> anyhow::Result<()> {
        let (pty, child) = Pty::spawn(program)?;
        let group = pty.pid().as_raw_nonzero().get();
        tracing::info!(pid = group, command = %program.command, "program started");
        (self.pty, self.group) = (Some(pty), Some(group));
        if self.settings.screen && self.screen.is_none() {
            let (cols, rows) = self.program.size;
            self.screen = Some(crate::screen_keeper::ScreenKeeper::start(cols, rows)?);
        }
        if let Some(path) = &self.settings.status_file {
            let start_time = process_tree::stat(group).map_or(0, |s| s.start_time);
            let status = serde_json::json!({ "program_pid": group, "start_time": start_time });
            std::fs::write(path, status.to_string())?;
        }
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut child = child;
            let _ = exit_tx.send(child.wait().await.map(exit_status).unwrap_or(ExitStatus::Code(-1)));
        });
        self.exit_rx = Some(exit_rx);
        Ok(())
    }

    /// Carries out one effect; `Some` when the session is over.
    async fn carry_out(&mut self, effect: Effect, more: &mut VecDeque<Effect>) -> anyhow::Result<Option<Outcome>> {
        match effect {
            Effect::StartProgram => self.start_program()?,
            Effect::Dial(credential) => {
                let event = match dial(&self.settings.join_url, &credential, self.settings.connect_timeout).await {
                    Ok(socket) => {
                        let (sink, stream) = socket.split();
                        (self.sink, self.stream) = (Some(sink), Some(stream));
                        tracing::info!("connected to the room");
                        Event::Connected
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "dial failed");
                        Event::DialFailed { permanent: e.is_permanent(), reason: e.to_string() }
                    }
                };
                more.extend(self.link.handle_event(event, clock::now()));
            }
            Effect::Send(bytes) => {
                if let Some(sink) = &mut self.sink {
                    if let Err(e) = sink.feed(Message::Binary(bytes.into())).await {
                        more.extend(self.lost(e.to_string()));
                    }
                }
            }
            Effect::CloseNormally(reason) => {
                if let Some(mut sink) = self.sink.take() {
                    let close = CloseFrame { code: WsCloseCode::Normal, reason: reason.into() };
                    let _ = sink.send(Message::Close(Some(close))).await;
                }
                self.stream = None;
            }
            Effect::Abandon(why) => {
                tracing::warn!(%why, "connection to the room dropped; resuming");
                self.drop_connection();
            }
            Effect::WriteInput(data) => self.input.extend(data),
            Effect::Resize { cols, rows } => {
                // The program started after a clone starts at the latest size.
                self.program.size = (cols, rows);
                if let Some(Err(e)) = self.pty.as_ref().map(|pty| pty.resize(cols, rows)) {
                    tracing::warn!(error = %e, "resize failed");
                }
                if let Some(screen) = &mut self.screen {
                    screen.resize(cols, rows);
                }
            }
            Effect::TakeSnapshot => self.ask_for_snapshot(),
            Effect::Signal(signal) => {
                if let Some(Err(e)) = self.pty.as_ref().map(|pty| pty.signal(os_signal(signal))) {
                    tracing::warn!(error = %e, ?signal, "signal failed");
                }
            }
            Effect::KillLeftovers => {
                let killed = process_tree::kill_all(self.group.as_slice()).await;
                tracing::info!(killed, "stopped processes left behind by the program");
            }
            Effect::Finish(outcome) => return Ok(Some(outcome)),
        }
        Ok(None)
    }

    /// Asks the screen thread for a snapshot; the answer arrives in the loop.
    fn ask_for_snapshot(&mut self) {
        let Some(screen) = &mut self.screen else { return };
        match screen.snapshot() {
            Some(answer) => (self.snapshot, self.snapshot_wanted) = (Some(answer), false),
            None => self.snapshot_wanted = true,
        }
    }

    /// A write or flush failed: the connection is gone.
    fn lost(&mut self, why: String) -> Vec<Effect> {
        tracing::warn!(%why, "connection to the room lost; resuming");
        self.drop_connection();
        self.link.handle_event(Event::Closed { code: None, reason: why }, clock::now())
    }

    fn drop_connection(&mut self) {
        self.sink = None;
        self.stream = None;
    }
}

async fn read_pty(pty: Option<&Pty>, buf: &mut [u8]) -> std::io::Result<ReadResult> {
    match pty {
        Some(pty) => pty.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn write_pty(pty: Option<&Pty>, data: &[u8]) -> std::io::Result<usize> {
    match pty {
        Some(pty) => pty.write(data).await,
        None => std::future::pending().await,
    }
}

/// The next message of the connection, if there is one.
async fn next_message(
    stream: &mut Option<SplitStream<Socket>>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

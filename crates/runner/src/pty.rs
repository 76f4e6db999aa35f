//! A real pseudo-terminal with the session's program on its slave side: the program is a session leader
//! with the PTY as its controlling terminal (so Ctrl-C typed as input interrupts its foreground job, as in
//! any terminal) and every signal at its default action, dies with the runner (parent-death signal), and
//! is started with an explicit environment (the runner's own secrets never reach it).

use rustix::fd::{AsFd, OwnedFd};
use rustix::process::{Pid, Resource, Rlimit, Signal};
use rustix::termios::Winsize;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::unix::AsyncFd;

/// What to run in the PTY, and under which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The executable (looked up in `PATH` of `env` when it has no slash).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory.
    pub cwd: PathBuf,
    /// Its complete environment.
    pub env: Vec<(String, String)>,
    /// Initial size: columns, rows.
    pub size: (u16, u16),
    /// Address-space limit in bytes (`RLIMIT_AS`), if any.
    pub memory_limit: Option<u64>,
    /// Process limit (`RLIMIT_NPROC`: counted per user, so it bounds one session only when the
    /// session has a user of its own; not enforced for root), if any.
    pub process_limit: Option<u64>,
    /// The user (and group) id to run as, if not the runner's: the local backend's per-session user.
    /// Needs a runner started as root; the terminal is handed to that user too.
    pub user: Option<u32>,
}

/// The master side of the PTY a program runs on. The program's [`tokio::process::Child`] is returned
/// beside it by [`Pty::spawn`], so waiting for the exit and reading output can go on at once.
#[derive(Debug)]
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    pid: Pid,
}

/// One read from the PTY.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// This many bytes were read into the buffer.
    Data(usize),
    /// Every holder of the slave side closed it: no more output will come.
    Closed,
}

/// Gives every signal its default action, as a terminal's login does. A signal the runner was
/// started with ignored (SIGINT and SIGQUIT under `nohup` or a shell's background job, SIGHUP under
/// `nohup`) stays ignored across `exec`, so without this the session's program, and every job it
/// starts, would ignore the Ctrl-C typed into the terminal. (Caught signals revert at `exec`; std
/// already empties the signal mask.) Async-signal-safe: only `signal(2)`.
fn default_signal_dispositions() {
    for signal in 1..=libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            #[allow(unsafe_code)]
            // SAFETY: setting a disposition to SIG_DFL installs no handler; numbers the C library
            // reserves are refused with an error, which changes nothing.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
    }
}

fn winsize((cols, rows): (u16, u16)) -> Winsize {
    Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

impl Pty {
    /// Opens a PTY and starts `program` on it. Call within a Tokio runtime, on a thread that lives as
    /// long as the program: the parent-death signal fires when the spawning thread ends.
    pub fn spawn(program: &Program) -> io::Result<(Pty, tokio::process::Child)> {
        use rustix::fs::{Mode, OFlags};
        use rustix::pty::OpenptFlags;
        let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
        rustix::termios::tcsetwinsize(&slave, winsize(program.size))?;
        if let Some(id) = program.user {
            // Programs that reopen their terminal by name (`tty`, password prompts) can.
            let (uid, gid) = (rustix::fs::Uid::from_raw(id), rustix::fs::Gid::from_raw(id));
            rustix::fs::chown(name.as_c_str(), Some(uid), Some(gid))?;
        }

        let mut command = tokio::process::Command::new(&program.command);
        command
            .args(&program.args)
            .current_dir(&program.cwd)
            .env_clear()
            .envs(program.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        if let Some(id) = program.user {
            // The standard library switches the group, drops supplementary groups and then the user
            // in the child, before the closure below runs (so the parent-death signal set there
            // survives: changing credentials clears it).
            command.uid(id).gid(id);
        }
        let limits = (program.memory_limit, program.process_limit);
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the forked child before exec and makes only raw system calls
        // (signal, setsid, ioctl, prctl, setrlimit), through rustix and libc, which neither allocate nor
        // take locks, so it is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                default_signal_dispositions();
                rustix::process::setsid()?;
                // fd 0 is the slave: make it the controlling terminal of the new session.
                rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                if let Some(bytes) = limits.0 {
                    let limit = Rlimit { current: Some(bytes), maximum: Some(bytes) };
                    rustix::process::setrlimit(Resource::As, limit)?;
                }
                if let Some(count) = limits.1 {
                    let limit = Rlimit { current: Some(count), maximum: Some(count) };
                    rustix::process::setrlimit(Resource::Nproc, limit)?;
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        let pid = child.id().and_then(|id| Pid::from_raw(id as i32)).ok_or_else(|| io::Error::other("no child pid"))?;
        set_nonblocking(&master)?;
        #[allow(unsafe_code)]
        // SAFETY: `master` is an open descriptor owned by the `AsyncFd` from here on; `OwnedFd` always
        // returns that same descriptor and closes it only when dropped.
        let master = unsafe { AsyncFd::register(master) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok((Pty { master, pid }, child))
    }

    /// The program's process id, which is also its session and process group id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Reads output into `buf` when some is ready, taking everything that is ready at once (up to
    /// `buf`'s size) so bulk output travels in few large frames; a lone keystroke's echo is returned as
    /// soon as it is read, without waiting for more.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<ReadResult> {
        let first = loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| read_once(fd.get_ref(), &mut *buf)) {
                Ok(result) => break result?,
                Err(_would_block) => continue,
            }
        };
        let Some(mut filled) = first else { return Ok(ReadResult::Closed) };
        // The kernel hands PTY output over in pieces of about 4 KiB; take what else is already there.
        while filled < buf.len() {
            match read_once(self.master.get_ref(), &mut buf[filled..]) {
                Ok(Some(n)) => filled += n,
                // Closed or nothing more yet: the next read reports it.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(ReadResult::Data(filled))
    }

    /// Writes as much of `data` as the PTY takes now, waiting until it takes at least one byte.
    pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sets the terminal size; the program gets `SIGWINCH`.
    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        rustix::termios::tcsetwinsize(self.master.get_ref(), winsize((cols, rows))).map_err(io::Error::from)
    }

    /// Delivers `signal` to the terminal's foreground process group (the job a user would interrupt),
    /// or to the program's group when there is none.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        let group = rustix::termios::tcgetpgrp(self.master.get_ref()).unwrap_or(self.pid);
        rustix::process::kill_process_group(group, signal).map_err(io::Error::from)
    }
}

/// One non-blocking read: `Some(n)` bytes (n > 0), `None` when the terminal is closed (end of file, or
/// EIO, as Linux reports a master whose slave is closed everywhere), `WouldBlock` when nothing is ready.
fn read_once(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match rustix::io::read(fd, buf) {
        Ok(0) | Err(rustix::io::Errno::IO) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(e) => Err(io::Error::from(e)),
    }
}

fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    use rustix::fs::OFlags;
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

/// The protocol's view of an exit status.
pub fn exit_status(status: std::process::ExitStatus) -> edgeshell_core::protocol::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => edgeshell_core::protocol::ExitStatus::Code(code),
        (None, Some(sig)) => edgeshell_core::protocol::ExitStatus::Signaled(sig.clamp(0, 255) as u8),
        (None, None) => edgeshell_core::protocol::ExitStatus::Code(-1),
    }
}

/// The OS signal for a protocol signal.
pub fn os_signal(signal: edgeshell_core::protocol::Signal) -> Signal {
    use edgeshell_core::protocol::Signal as S;
    match signal {
        S::Hangup => Signal::HUP,
        S::Interrupt => Signal::INT,
        S::Quit => Signal::QUIT,
        S::Terminate => Signal::TERM,
        S::Kill => Signal::KILL,
    }
}

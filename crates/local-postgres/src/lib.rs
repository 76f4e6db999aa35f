//! A private PostgreSQL cluster for tests and `cargo xtask dev`: `initdb` into a temporary directory,
//! `postgres` on a free loopback port, stopped and deleted on drop (sshx's `TestServer` pattern).
//!
//! PostgreSQL refuses to run as root; when this process is root, the cluster runs as the `postgres`
//! system user (created by Debian's package) through `runuser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the cluster could not be started or controlled.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No PostgreSQL server binaries were found.
    #[error("PostgreSQL server binaries not found (install Debian's `postgresql`, or set EDGESHELL_PG_BINDIR)")]
    NotInstalled,
    /// A command failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// What was run.
        command: String,
        /// Its output or error.
        detail: String,
    },
    /// The server did not accept connections in time.
    #[error("PostgreSQL did not become ready within {0:?}; log:\n{1}")]
    NotReady(Duration, String),
}

/// A running private cluster. The superuser is `edgeshell`, authentication is `trust` on loopback only.
#[derive(Debug)]
pub struct LocalPostgres {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
    child: Option<Child>,
}

/// The superuser created by `initdb`.
pub const SUPERUSER: &str = "edgeshell";

impl LocalPostgres {
    /// Creates and starts a cluster in a new temporary directory.
    pub fn start() -> Result<Self, PgError> {
        let bindir = find_bindir().ok_or(PgError::NotInstalled)?;
        let run_as = if is_root() { Some("postgres") } else { None };
        let dir = std::env::temp_dir().join(format!("edgeshell-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|e| cmd_err("create data directory", e))?;
        if let Some(user) = run_as {
            run(Command::new("chown").arg(format!("{user}:{user}")).arg(&dir), "chown")?;
        }
        let data = dir.join("data");
        let mut initdb = command(run_as, &bindir.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]);
        run(&mut initdb, "initdb")?;
        let mut pg = LocalPostgres { bindir, dir, port: free_port()?, run_as, child: None };
        pg.launch()?;
        Ok(pg)
    }

    /// Starts `postgres` on `self.port`, appending to the cluster's log.
    fn launch(&mut self) -> Result<(), PgError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| cmd_err("open log", e))?;
        if let Some(user) = self.run_as {
            run(Command::new("chown").arg(format!("{user}:{user}")).arg(self.log_path()), "chown")?;
        }
        let mut postgres = command(self.run_as, &self.bindir.join("postgres"));
        postgres
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            // With the default (1 MB), the WAL writer writes the log but flushes it only every 200 ms, so
            // each asynchronous commit finds the log unflushed and wakes the writer with a signal: one
            // `kill` and one WAL writer cycle per commit, a fifth of a one-time JTI check's cost in the
            // server. With fsync off a flush costs nothing, so flush whatever is written.
            .args(["-c", "wal_writer_flush_after=0"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=64MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = postgres.spawn().map_err(|e| cmd_err("postgres", e))?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), PgError> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                break; // exited: report with the log below
            }
            let ready = Command::new(self.bindir.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER, "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(PgError::NotReady(limit, std::fs::read_to_string(self.log_path()).unwrap_or_default()))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db` (`postgres` always exists).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database.
    pub fn create_database(&self, name: &str) -> Result<(), PgError> {
        let mut c = Command::new(self.bindir.join("createdb"));
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER, name]);
        run(&mut c, "createdb")
    }

    /// Stops the server (fast shutdown), keeping the data: [`LocalPostgres::restart`] brings it back.
    pub fn stop(&mut self) -> Result<(), PgError> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let mut ctl = command(self.run_as, &self.bindir.join("pg_ctl"));
        ctl.arg("-D").arg(self.dir.join("data")).args(["stop", "-m", "fast", "-w"]);
        let stopped = run(&mut ctl, "pg_ctl stop");
        if stopped.is_err() {
            let _ = child.kill();
        }
        let _ = child.wait();
        stopped
    }

    /// Starts a stopped server again, on the same port so clients' URLs stay valid.
    pub fn restart(&mut self) -> Result<(), PgError> {
        if self.child.is_some() {
            return Ok(());
        }
        self.launch()
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn command(run_as: Option<&str>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(c: &mut Command, name: &str) -> Result<(), PgError> {
    let out = c.stdin(Stdio::null()).output().map_err(|e| cmd_err(name, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PgError::Command {
            command: name.to_owned(),
            detail: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        })
    }
}

fn cmd_err(name: &str, e: std::io::Error) -> PgError {
    PgError::Command { command: name.to_owned(), detail: e.to_string() }
}

fn free_port() -> Result<u16, PgError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| cmd_err("bind", e))?;
    let port = listener.local_addr().map_err(|e| cmd_err("local_addr", e))?.port();
    drop(listener);
    Ok(port)
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The server binaries: `EDGESHELL_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`, else
/// `pg_config --bindir`.
fn find_bindir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var(name).ok();
    let settings = edgeshell_core::settings::Reader::new(edgeshell_core::settings::Program::Dev, &env);
    if let Ok(Some(dir)) = settings.text("EDGESHELL_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        dir.join("postgres").exists().then_some(dir)
    })
}

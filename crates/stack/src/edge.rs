//! The edge gateway under `wrangler dev` (workerd) on a loopback port, from the repository's
//! `wrangler.toml` and the Worker `cargo xtask edge-build` built. Wrangler and Node 22 are found through
//! `EDGESHELL_WRANGLER` and `EDGESHELL_NODE_BIN` (set by `cargo xtask test`), else in
//! `edge-gateway/node_modules`. The process group is killed on drop, workerd included. Vars and secrets
//! are given in an env file, overriding `wrangler.toml`'s `[vars]`; the Worker's logs (`console.log`)
//! are shown with `EDGESHELL_TEST_LOGS` set.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// A running `wrangler dev`.
pub struct EdgeGateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
    child: tokio::process::Child,
    state: PathBuf,
}

impl Drop for EdgeGateway {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl EdgeGateway {
    /// A free loopback port to start on, for peers that must know the edge's URL first.
    pub fn free_port() -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
    }

    /// The resident memory of `wrangler dev` and everything it started (its proxy and the workerd
    /// serving the Worker and its Durable Objects), in bytes, from `/proc`.
    pub fn resident_bytes(&self) -> u64 {
        let Some(root) = self.child.id() else { return 0 };
        let mut family = vec![root];
        let mut total = 0;
        while let Some(pid) = family.pop() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
            total += kib * 1024;
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            family.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        total
    }

    /// Everything `wrangler dev` printed so far (its request log and the Worker's own log lines).
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.state.join("wrangler.log")).unwrap_or_default()).into_owned()
    }

    /// Every file under the local R2 that `wrangler dev` persists (the objects' bodies among them), for
    /// tests that look at what the bucket holds.
    pub fn r2_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![self.state.join("data/v3/r2")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }

    /// What the session rooms have stored, read from the SQLite files `wrangler dev` persists: how
    /// many objects hold a table of their own, and how many alarms are scheduled. Miniflare writes
    /// its own `__miniflare_do_name` table into every object it instantiates, which is local
    /// bookkeeping (production has no such write) and not counted.
    pub fn stored_rooms(&self) -> anyhow::Result<StoredRooms> {
        use rusqlite::{Connection, OpenFlags};
        let dir = self.state.join("data/v3/do/edgeshell-edge-SessionRoom");
        let open = |path: &std::path::Path| Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY);
        let mut stored = StoredRooms::default();
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(stored) };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !name.ends_with(".sqlite") {
                continue;
            }
            let db = open(&path)?;
            if name == "metadata.sqlite" {
                let has_alarms: bool =
                    db.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE name = '_cf_ALARM'", [], |r| r.get(0))?;
                if has_alarms {
                    let n: i64 = db.query_row("SELECT count(*) FROM _cf_ALARM", [], |r| r.get(0))?;
                    stored.alarms = usize::try_from(n)?;
                }
                continue;
            }
            let own: i64 = db.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE '\\_\\_miniflare%' ESCAPE '\\'",
                [],
                |r| r.get(0),
            )?;
            stored.objects += usize::from(own > 0);
        }
        Ok(stored)
    }

    /// Starts `wrangler dev` on a free port with `wrangler.toml`'s vars.
    pub async fn start() -> anyhow::Result<EdgeGateway> {
        EdgeGateway::start_on(EdgeGateway::free_port()?, &[]).await
    }

    /// Starts `wrangler dev` on `port` with `vars` (vars and secrets alike) and waits until `/healthz`
    /// answers.
    pub async fn start_on(port: u16, vars: &[(&str, String)]) -> anyhow::Result<EdgeGateway> {
        let root = crate::paths::repo_root();
        if !root.join("edge-gateway/build/index.js").exists() {
            anyhow::bail!("the Worker is not built: run `cargo xtask edge-build` (or `cargo xtask test`)");
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let state = std::env::temp_dir().join(format!("edgeshell-wrangler-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&state)?;
        let mut lines = String::new();
        for (name, value) in vars {
            anyhow::ensure!(!value.contains(['\n', '"']), "var {name} holds a newline or quote");
            lines.push_str(&format!("{name}=\"{value}\"\n"));
        }
        std::fs::write(state.join("vars.env"), lines)?;
        let child = spawn(port, &state)?;
        let mut edge = EdgeGateway { url: format!("http://127.0.0.1:{port}"), port, child, state };
        edge.wait_healthy().await?;
        Ok(edge)
    }

    /// Kills `wrangler dev` (every connection drops) and starts it again on the same port with the same
    /// vars and the same persisted state, as a restarted or moved edge location would come back.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.restart_after(|_| Ok(())).await
    }

    /// What the pool rooms have stored: (kind, key) of each row of their ledgers, read from the SQLite
    /// files `wrangler dev` persists.
    pub fn pool_ledger_rows(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut rows = Vec::new();
        for path in self.pool_room_files()? {
            let db = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            let tables = tables(&db)?;
            if tables.iter().any(|t| t == "pool_ledger_rows") {
                let mut query = db.prepare("SELECT kind, key FROM pool_ledger_rows")?;
                let found = query.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.extend(found.collect::<Result<Vec<(String, String)>, _>>()?);
            }
        }
        Ok(rows)
    }

    /// The tables of the pool rooms' SQLite files (each object's, together).
    pub fn pool_room_tables(&self) -> anyhow::Result<Vec<String>> {
        let mut all = Vec::new();
        for path in self.pool_room_files()? {
            let db = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            all.extend(tables(&db)?);
        }
        Ok(all)
    }

    /// Restarts `wrangler dev` after making every pool room hold `ledger_json` as rooms stored their
    /// ledger before they stored it by rows (one JSON row in `pool_ledger`, no rows), as an upgrade
    /// finds an older room.
    pub async fn restart_with_whole_pool_ledger(&mut self, ledger_json: &str) -> anyhow::Result<()> {
        self.restart_after(|edge| {
            for path in edge.pool_room_files()? {
                let db = rusqlite::Connection::open(&path)?;
                db.execute_batch(
                    "DROP TABLE IF EXISTS pool_ledger_rows; \
                     CREATE TABLE pool_ledger (id INTEGER PRIMARY KEY CHECK (id = 1), ledger TEXT NOT NULL);",
                )?;
                db.execute("INSERT INTO pool_ledger (id, ledger) VALUES (1, ?1)", [ledger_json])?;
            }
            Ok(())
        })
        .await
    }

    fn pool_room_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let dir = self.state.join("data/v3/do/edgeshell-edge-PoolRoom");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut files = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".sqlite") && name != "metadata.sqlite" {
                files.push(path);
            }
        }
        Ok(files)
    }

    /// Kills `wrangler dev`, runs `while_stopped`, and starts it again on the same port with the same
    /// vars and persisted state.
    async fn restart_after(
        &mut self,
        while_stopped: impl FnOnce(&EdgeGateway) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.kill();
        let _ = self.child.wait().await;
        while_stopped(self)?;
        // The port is free again once workerd is gone.
        for _ in 0..100 {
            if std::net::TcpListener::bind(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.child = spawn(self.port, &self.state)?;
        self.wait_healthy().await
    }

    fn kill(&self) {
        if let Some(pid) = self.child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            // wrangler starts workerd as a child: end the whole group.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!("wrangler dev exited: {status}");
            }
            if healthy(self.port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("wrangler dev did not answer /healthz within 60 s")
    }
}

/// `wrangler dev` on `port` with the vars and persisted data under `state`.
fn spawn(port: u16, state: &std::path::Path) -> anyhow::Result<tokio::process::Child> {
    let root = crate::paths::repo_root();
    let wrangler = crate::paths::wrangler();
    let node_bin = crate::paths::node_bin_dir();
    let path = format!("{}:{}", node_bin.display(), std::env::var("PATH").unwrap_or_default());
    // Kept in the state directory (see `EdgeGateway::logs`), or shown with EDGESHELL_TEST_LOGS.
    let file = std::fs::OpenOptions::new().create(true).append(true).open(state.join("wrangler.log"))?;
    let shown = crate::dev_setting("EDGESHELL_TEST_LOGS").is_some();
    let logs = |file: &std::fs::File| -> std::io::Result<Stdio> {
        Ok(if shown { Stdio::inherit() } else { Stdio::from(file.try_clone()?) })
    };
    let child = tokio::process::Command::new(&wrangler)
        .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string(), "--env-file"])
        .arg(state.join("vars.env"))
        .arg("--persist-to")
        .arg(state.join("data"))
        .current_dir(&root)
        .env("PATH", path)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CI", "true")
        .stdin(Stdio::null())
        .stdout(logs(&file)?)
        .stderr(logs(&file)?)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    Ok(child)
}

/// One raw HTTP/1.1 request to `/healthz`.
async fn healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return false };
    let request = "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// Storage held by session rooms under `wrangler dev` (see [`EdgeGateway::stored_rooms`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoredRooms {
    /// Objects whose database holds a table of ours (or of workerd's: `_cf_KV` and the like).
    pub objects: usize,
    /// Alarms scheduled across all session rooms.
    pub alarms: usize,
}

fn tables(db: &rusqlite::Connection) -> anyhow::Result<Vec<String>> {
    let mut query = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let names = query.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

//! Files out of the session (`docs/files.md`): the runner holds the session's `artifact:put` token
//! and uploads for the program, which never sees it.
//!
//! - A local socket (`EDGESHELL_FILES_SOCKET` in the program's environment, in a directory only the
//!   session's user may enter) takes one [`PutRequest`] per connection followed by the bytes, streams
//!   them to the edge and answers a [`PutReply`]: `edgeshell-files put` ([`client`]) is its client.
//!   The client opens the file as the user; the runner never opens a path a client names.
//! - The outbox (`~/outbox`, [`outbox`]) is looked at every [`SCAN_EVERY`]; the core's
//!   [`Outbox`] rules say which files are due. When the program exits, the relay asks for a
//!   [`Files::flush`] before it reports the exit: everything not yet uploaded is, within
//!   [`FLUSH_LIMIT`].
//! - [`upload`]: one upload, streamed in chunks with its SHA-256 checked against the edge's.

pub mod client;
pub mod outbox;
pub mod upload;

use edgeshell_core::api_error::ErrorCode;
use edgeshell_core::artifacts::ArtifactPath;
use edgeshell_core::files::{Finished, Outbox, PutReply, PutRequest, Seen, MAX_REQUEST_LINE, OUTBOX_PREFIX};
use outbox::OutboxDir;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use upload::Uploader;

/// How often the outbox is looked at.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);

/// The longest a flush at the program's exit may hold the exit back.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(120);

/// Uploads through the socket at once; more connections wait.
const CONCURRENT_PUTS: usize = 4;

/// How long a client has to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The session's right to upload: its id and `artifact:put` token.
#[derive(Clone)]
pub struct FilesAccess {
    /// The session.
    pub session: edgeshell_core::ids::SessionId,
    /// Its upload token (a secret).
    pub token: edgeshell_core::secret::Secret,
}

impl std::fmt::Debug for FilesAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesAccess").field("session", &self.session).finish_non_exhaustive()
    }
}

/// What a flush uploaded and what it could not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// Artifact paths stored.
    pub stored: Vec<String>,
    /// Artifact paths not stored, with why.
    pub failed: Vec<(String, String)>,
}

/// The running file service of a session; its tasks end and its socket goes when it is dropped.
pub struct Files {
    socket: PathBuf,
    dir: PathBuf,
    flushes: mpsc::Sender<oneshot::Sender<Flushed>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").field("socket", &self.socket).finish_non_exhaustive()
    }
}

impl Files {
    /// Starts the socket and the outbox of a program working in `workdir` as `user` (the runner's
    /// own user when `None`). Needs a Tokio runtime.
    pub fn start(uploader: Uploader, workdir: &Path, user: Option<u32>) -> anyhow::Result<Files> {
        let outbox = OutboxDir::prepare(workdir, user)?;
        let (dir, socket, listener) = listen(user)?;
        let (flushes, flush_rx) = mpsc::channel(1);
        let runner_uid = rustix::process::geteuid().as_raw();
        let allowed = [user.unwrap_or(runner_uid), runner_uid];
        let tasks = vec![
            tokio::spawn(serve(listener, uploader.clone(), allowed)),
            tokio::spawn(watch(outbox, uploader, flush_rx)),
        ];
        Ok(Files { socket, dir, flushes, tasks })
    }

    /// The socket's path, for the program's `EDGESHELL_FILES_SOCKET`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Uploads everything of the outbox not uploaded yet; the answer comes within [`FLUSH_LIMIT`].
    pub fn flush(&self) -> oneshot::Receiver<Flushed> {
        let (tx, rx) = oneshot::channel();
        // A full channel means a flush is under way; this one then answers nothing (and is not needed).
        let _ = self.flushes.try_send(tx);
        rx
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A fresh private directory with the socket in it, both the session user's.
fn listen(user: Option<u32>) -> anyhow::Result<(PathBuf, PathBuf, UnixListener)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir()
        .join(format!("edgeshell-files-{}", edgeshell_core::bundles::hex(&rand::random::<[u8; 8]>())));
    std::fs::create_dir(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let socket = dir.join("files.sock");
    let listener = UnixListener::bind(&socket)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    if let Some(uid) = user {
        std::os::unix::fs::chown(&socket, Some(uid), Some(uid))?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(uid))?;
    }
    Ok((dir, socket, listener))
}

/// Serves the socket: one upload per connection, a few at once, from the session's user only.
async fn serve(listener: UnixListener, uploader: Uploader, allowed: [u32; 2]) {
    let limit = Arc::new(Semaphore::new(CONCURRENT_PUTS));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let peer = stream.peer_cred().map(|c| c.uid());
        if !peer.as_ref().is_ok_and(|uid| allowed.contains(uid)) {
            tracing::warn!(?peer, "a connection to the files socket from another user was refused");
            continue;
        }
        let Ok(permit) = limit.clone().acquire_owned().await else { return };
        let uploader = uploader.clone();
        tokio::spawn(async move {
            put(stream, &uploader).await;
            drop(permit);
        });
    }
}

/// One connection: the request line, the bytes, the reply line.
async fn put(stream: UnixStream, uploader: &Uploader) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let limit = MAX_REQUEST_LINE as u64 + 1;
    let read = tokio::time::timeout(REQUEST_TIMEOUT, (&mut reader).take(limit).read_until(b'\n', &mut line)).await;
    let reply = match read {
        Ok(Ok(_)) if line.ends_with(b"\n") => match PutRequest::parse(&line[..line.len() - 1]) {
            Ok((request, path)) => {
                let reply = uploader.put(&path, request.size, request.replace, reader).await;
                log(&reply);
                reply
            }
            Err(e) => bad_request(e.to_string()),
        },
        Ok(_) => bad_request(format!("send one request line (at most {MAX_REQUEST_LINE} bytes) first")),
        Err(_) => bad_request("no request line within 10 s".into()),
    };
    let _ = write.write_all(&reply.line()).await;
    let _ = write.shutdown().await;
}

fn bad_request(message: String) -> PutReply {
    PutReply::Refused { code: ErrorCode::BadRequest.name().to_owned(), message }
}

fn log(reply: &PutReply) {
    match reply {
        PutReply::Stored { path, size, sha256 } => tracing::info!(path, size, sha256, "artifact uploaded"),
        PutReply::Refused { code, message } => tracing::warn!(code, message, "artifact not uploaded"),
    }
}

/// Looks at the outbox every [`SCAN_EVERY`] and uploads what is due; a flush uploads everything.
async fn watch(dir: OutboxDir, uploader: Uploader, mut flushes: mpsc::Receiver<oneshot::Sender<Flushed>>) {
    let mut outbox = Outbox::new();
    let started = Instant::now();
    let mut reported = BTreeSet::new();
    let mut tick = tokio::time::interval(SCAN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flush = tokio::select! {
            _ = tick.tick() => None,
            asked = flushes.recv() => match asked {
                Some(answer) => Some(answer),
                None => return,
            },
        };
        let flushing = flush.is_some();
        let pass = look(&dir, &uploader, &mut outbox, &mut reported, started, flushing);
        let flushed = if flushing {
            tokio::time::timeout(FLUSH_LIMIT, pass).await.unwrap_or_else(|_| Flushed {
                stored: Vec::new(),
                failed: vec![(OUTBOX_PREFIX.to_owned(), format!("the uploads took over {} s", FLUSH_LIMIT.as_secs()))],
            })
        } else {
            pass.await
        };
        if let Some(answer) = flush {
            let _ = answer.send(flushed);
        }
    }
}

/// One look at the outbox: its files observed, those due uploaded one after another.
async fn look(
    dir: &OutboxDir,
    uploader: &Uploader,
    outbox: &mut Outbox,
    reported: &mut BTreeSet<String>,
    started: Instant,
    flushing: bool,
) -> Flushed {
    let scanning = dir.clone();
    let files = tokio::task::spawn_blocking(move || scanning.scan()).await.unwrap_or_default();
    for skipped in outbox.observe(files, started.elapsed()) {
        if reported.insert(skipped.name.clone()) {
            tracing::warn!(name = skipped.name, why = skipped.why, "an outbox file is not uploaded");
        }
    }
    let mut flushed = Flushed::default();
    for (path, seen) in outbox.due(started.elapsed(), flushing) {
        let (how, reply) = upload_one(dir, uploader, &path, seen).await;
        log(&reply);
        match reply {
            PutReply::Stored { path, .. } => flushed.stored.push(path),
            PutReply::Refused { message, .. } => flushed.failed.push((path.as_str().to_owned(), message)),
        }
        if let Some(how) = how {
            outbox.finished(&path, seen, how, started.elapsed());
        }
    }
    flushed
}

/// Uploads the outbox's file at `path` if it is still as it was `seen`; `None` when it changed since
/// (it settles again first).
async fn upload_one(
    dir: &OutboxDir,
    uploader: &Uploader,
    path: &ArtifactPath,
    seen: Seen,
) -> (Option<Finished>, PutReply) {
    let relative = path.as_str().strip_prefix(OUTBOX_PREFIX).unwrap_or_default().trim_start_matches('/');
    let refused = |code: ErrorCode, message: String| PutReply::Refused { code: code.name().to_owned(), message };
    let (file, now) = match dir.open(relative) {
        Ok(opened) => opened,
        Err(e) => return (Some(Finished::Refused), refused(ErrorCode::BadPath, e.to_string())),
    };
    if now != seen {
        return (None, refused(ErrorCode::ContentMismatch, "it changed while being looked at".into()));
    }
    let reply = uploader.put(path, seen.size, true, tokio::fs::File::from_std(file)).await;
    let how = match &reply {
        PutReply::Stored { .. } => Finished::Stored,
        PutReply::Refused { code, .. } if upload::may_pass(code) => Finished::Failed,
        PutReply::Refused { .. } => Finished::Refused,
    };
    (Some(how), reply)
}

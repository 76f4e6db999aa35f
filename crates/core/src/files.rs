//! Files out of a session: the rules of `edgeshell-files put` and of the `~/outbox` directory, which
//! the runner uploads as artifacts through the edge with the session's `artifact:put` token
//! (`docs/files.md`).
//!
//! - [`PutRequest`] / [`PutReply`]: the runner's local socket protocol. A client (run by the session's
//!   user, who opens the file) sends one JSON line naming the artifact, its size and whether an
//!   artifact of that name may be replaced, then exactly that many bytes; the runner streams them to
//!   the edge and answers one JSON line. The runner never opens a path a client names.
//! - [`Outbox`]: which files of the outbox are due for upload. A file is uploaded once it has been
//!   unchanged for [`OUTBOX_SETTLE`] and again whenever it changes (the new version replaces the old);
//!   when the program exits, everything not yet uploaded is (a flush).
//! - [`RunnerTokens`]: the join token and the upload token, as the pool agent hands them to the runner
//!   (one pipe or file, never the environment).
//! - [`upload_url`]: where an artifact is uploaded, from the runner's join URL.

use crate::artifacts::{download_path, ArtifactPath};
use crate::ids::SessionId;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The longest request line a client may send (JSON, newline-terminated).
pub const MAX_REQUEST_LINE: usize = 4096;

/// The artifact path prefix of the outbox's files: `~/outbox/report.txt` is `outbox/report.txt`.
pub const OUTBOX_PREFIX: &str = "outbox";

/// How long a file of the outbox must stay unchanged before it is uploaded (a program still writing it
/// keeps changing its size or modification time).
pub const OUTBOX_SETTLE: Duration = Duration::from_secs(1);

/// The most files the outbox holds; more are reported, not uploaded.
pub const MAX_OUTBOX_FILES: usize = 1000;

/// How deep the outbox's directories may nest.
pub const MAX_OUTBOX_DEPTH: usize = 8;

/// One upload asked of the runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    /// The artifact's path (an [`ArtifactPath`]).
    pub path: String,
    /// The bytes that follow the request line.
    pub size: u64,
    /// Replace an artifact already stored at `path`; without it such an upload is refused.
    #[serde(default)]
    pub replace: bool,
}

/// Why a request is refused before any byte is uploaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutRefusal {
    /// The line is not a request.
    #[error("not an upload request: {0}")]
    Malformed(String),
    /// The path is not an artifact path.
    #[error("{0}")]
    BadPath(String),
}

impl PutRequest {
    /// Reads a request line (without its newline) and checks its path.
    pub fn parse(line: &[u8]) -> Result<(PutRequest, ArtifactPath), PutRefusal> {
        if line.len() > MAX_REQUEST_LINE {
            return Err(PutRefusal::Malformed(format!("the request line is over {MAX_REQUEST_LINE} bytes")));
        }
        let request: PutRequest = serde_json::from_slice(line).map_err(|e| PutRefusal::Malformed(e.to_string()))?;
        let path = ArtifactPath::new(&request.path).map_err(|e| PutRefusal::BadPath(e.to_string()))?;
        Ok((request, path))
    }

    /// The request line, newline-terminated.
    pub fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// The runner's answer to a [`PutRequest`], one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum PutReply {
    /// Stored: what the edge counted while streaming it, which the runner checked against its own count.
    Stored {
        /// The artifact's path.
        path: String,
        /// Its bytes.
        size: u64,
        /// Their SHA-256, hex.
        sha256: String,
    },
    /// Not stored (nothing of it is kept).
    Refused {
        /// The stable error code (`docs/errors.md`), or `bad_request` for a request the runner refused.
        code: String,
        /// What went wrong, for a person.
        message: String,
    },
}

impl PutReply {
    /// The reply line, newline-terminated.
    pub fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// A file's state at one look: a change of either is a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Its size.
    pub size: u64,
    /// Its modification time, nanoseconds since the epoch.
    pub modified_ns: i128,
}

/// What the outbox knows of one file.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    seen: Seen,
    /// When `seen` was first seen (time since the outbox was made).
    since: Duration,
    /// The version last uploaded, or last refused for good (an upload of it would be refused again).
    done: Option<Seen>,
    /// A failure that may pass: not before this time.
    retry_at: Option<Duration>,
}

/// What became of an upload, for [`Outbox::finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Stored.
    Stored,
    /// Refused for this version (too big, over a limit): tried again only when the file changes.
    Refused,
    /// Failed in a way that may pass (the edge unreachable): tried again after a while.
    Failed,
}

/// How long a failed upload waits before it is tried again.
pub const OUTBOX_RETRY: Duration = Duration::from_secs(10);

/// The outbox's files and what was uploaded of them. Times are durations since the outbox was made
/// (the caller's monotonic clock).
#[derive(Debug, Default)]
pub struct Outbox {
    files: BTreeMap<ArtifactPath, Tracked>,
}

/// A file of the outbox the rules refuse, reported once per name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its path under the outbox.
    pub name: String,
    /// Why.
    pub why: String,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// The artifact path of a file at `relative` (`/`-separated) under the outbox.
    pub fn artifact_path(relative: &str) -> Result<ArtifactPath, String> {
        ArtifactPath::new(&format!("{OUTBOX_PREFIX}/{relative}")).map_err(|e| e.to_string())
    }

    /// Takes one look at the outbox: every regular file under it with its state. Files no longer there
    /// are forgotten (their artifacts stay). Returns the names refused (not artifact paths, or beyond
    /// [`MAX_OUTBOX_FILES`]).
    pub fn observe(&mut self, files: impl IntoIterator<Item = (String, Seen)>, now: Duration) -> Vec<Skipped> {
        let mut skipped = Vec::new();
        let mut present = BTreeMap::new();
        for (name, seen) in files {
            let path = match Outbox::artifact_path(&name) {
                Ok(path) => path,
                Err(why) => {
                    skipped.push(Skipped { name, why });
                    continue;
                }
            };
            if present.len() >= MAX_OUTBOX_FILES {
                skipped.push(Skipped { name, why: format!("the outbox holds more than {MAX_OUTBOX_FILES} files") });
                continue;
            }
            let tracked = match self.files.get(&path) {
                Some(t) if t.seen == seen => *t,
                Some(t) => Tracked { seen, since: now, done: t.done, retry_at: None },
                None => Tracked { seen, since: now, done: None, retry_at: None },
            };
            present.insert(path, tracked);
        }
        self.files = present;
        skipped
    }

    /// The files to upload now: changed since their last upload, settled (or `flushing`: the program
    /// has exited), and not waiting to retry a failure (unless flushing).
    pub fn due(&self, now: Duration, flushing: bool) -> Vec<(ArtifactPath, Seen)> {
        self.files
            .iter()
            .filter(|(_, t)| t.done != Some(t.seen))
            .filter(|(_, t)| flushing || now.saturating_sub(t.since) >= OUTBOX_SETTLE)
            .filter(|(_, t)| flushing || t.retry_at.is_none_or(|at| now >= at))
            .map(|(path, t)| (path.clone(), t.seen))
            .collect()
    }

    /// Records what became of uploading `path` as it was `seen`.
    pub fn finished(&mut self, path: &ArtifactPath, seen: Seen, how: Finished, now: Duration) {
        let Some(t) = self.files.get_mut(path) else { return };
        match how {
            Finished::Stored | Finished::Refused => {
                t.done = Some(seen);
                t.retry_at = None;
            }
            Finished::Failed => t.retry_at = Some(now + OUTBOX_RETRY),
        }
    }
}

/// The tokens the pool agent hands the runner in one pipe or file: the join token, and on a second
/// line the session's `artifact:put` token when it has one.
#[derive(Clone)]
pub struct RunnerTokens {
    /// The one-time join token.
    pub join: Secret,
    /// The upload token, if the session may upload artifacts.
    pub upload: Option<Secret>,
}

impl core::fmt::Debug for RunnerTokens {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RunnerTokens").field("upload", &self.upload.is_some()).finish_non_exhaustive()
    }
}

impl RunnerTokens {
    /// The text to hand over.
    pub fn encode(&self) -> String {
        match &self.upload {
            Some(upload) => format!("{}\n{}\n", self.join.expose(), upload.expose()),
            None => format!("{}\n", self.join.expose()),
        }
    }

    /// Reads what [`RunnerTokens::encode`] made (a lone join token too); `None` without a join token
    /// or with more than two lines.
    pub fn parse(text: &str) -> Option<RunnerTokens> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let join = lines.next()?;
        let upload = lines.next();
        if lines.next().is_some() {
            return None;
        }
        Some(RunnerTokens { join: Secret::new(join.to_owned()), upload: upload.map(|u| Secret::new(u.to_owned())) })
    }
}

/// The URL an artifact at `path` of `session` is uploaded to (`PUT`), from the runner's join URL
/// (`wss://edge/sessions/{id}/join`): the same edge, over HTTPS (HTTP only where the join URL is
/// `ws://` to this machine: the token travels with every upload).
pub fn upload_url(join_url: &str, session: &SessionId, path: &ArtifactPath) -> Result<String, String> {
    let (scheme, rest) = match (join_url.strip_prefix("wss://"), join_url.strip_prefix("ws://")) {
        (Some(rest), _) => ("https", rest),
        (None, Some(rest)) => ("http", rest),
        (None, None) => return Err(format!("{join_url:?} is not a ws:// or wss:// URL")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    crate::settings::service_url(&format!("{scheme}://{authority}{}", download_path(session, path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(size: u64, modified_ns: i128) -> Seen {
        Seen { size, modified_ns }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn requests_round_trip_and_refuse_bad_paths_and_fields() {
        let request = PutRequest { path: "out/report.txt".into(), size: 12, replace: false };
        let line = request.line();
        assert_eq!(line.last(), Some(&b'\n'));
        let (parsed, path) = PutRequest::parse(&line[..line.len() - 1]).unwrap();
        assert_eq!((parsed, path.as_str()), (request, "out/report.txt"));
        assert!(matches!(PutRequest::parse(br#"{"path":"../x","size":1}"#), Err(PutRefusal::BadPath(_))));
        assert!(matches!(PutRequest::parse(br#"{"path":"x","size":-1}"#), Err(PutRefusal::Malformed(_))));
        assert!(matches!(PutRequest::parse(br#"{"path":"x","size":1,"mode":7}"#), Err(PutRefusal::Malformed(_))));
        assert!(matches!(PutRequest::parse(&[b' '; MAX_REQUEST_LINE + 1]), Err(PutRefusal::Malformed(_))));
        let reply = PutReply::Refused { code: "artifact_exists".into(), message: "m".into() };
        let line = reply.line();
        assert_eq!(serde_json::from_slice::<PutReply>(&line).unwrap(), reply);
    }

    #[test]
    fn a_file_is_uploaded_once_settled_and_again_when_it_changes() {
        let mut outbox = Outbox::new();
        assert!(outbox.observe([("a.txt".to_owned(), seen(5, 1))], Duration::ZERO).is_empty());
        assert!(outbox.due(Duration::from_millis(500), false).is_empty(), "still settling");
        // Still being written: it changed, so it settles again from now.
        outbox.observe([("a.txt".to_owned(), seen(9, 2))], Duration::from_millis(900));
        assert!(outbox.due(Duration::from_millis(1500), false).is_empty());
        let due = outbox.due(Duration::from_millis(1900), false);
        let path = Outbox::artifact_path("a.txt").unwrap();
        assert_eq!(due, vec![(path.clone(), seen(9, 2))]);
        assert_eq!(path.as_str(), "outbox/a.txt");
        outbox.finished(&path, seen(9, 2), Finished::Stored, 2 * S);
        outbox.observe([("a.txt".to_owned(), seen(9, 2))], 3 * S);
        assert!(outbox.due(4 * S, false).is_empty(), "uploaded and unchanged");
        assert!(outbox.due(4 * S, true).is_empty(), "a flush uploads nothing twice either");
        outbox.observe([("a.txt".to_owned(), seen(9, 3))], 5 * S);
        assert_eq!(outbox.due(6 * S, false).len(), 1, "changed: uploaded again");
    }

    #[test]
    fn a_flush_takes_unsettled_files_and_failures_wait_to_retry() {
        let mut outbox = Outbox::new();
        outbox.observe([("new.txt".to_owned(), seen(1, 1)), ("bad.txt".to_owned(), seen(1, 1))], Duration::ZERO);
        assert_eq!(outbox.due(Duration::ZERO, true).len(), 2);
        let bad = Outbox::artifact_path("bad.txt").unwrap();
        outbox.finished(&bad, seen(1, 1), Finished::Failed, 2 * S);
        assert_eq!(outbox.due(3 * S, false).len(), 1, "the failure waits");
        assert_eq!(outbox.due(2 * S + OUTBOX_RETRY, false).len(), 2, "then it is tried again");
        outbox.finished(&bad, seen(1, 1), Finished::Refused, 20 * S);
        assert_eq!(outbox.due(30 * S, true).len(), 1, "a refused version is not tried again");
    }

    #[test]
    fn names_that_are_no_artifact_paths_and_too_many_files_are_skipped() {
        let mut outbox = Outbox::new();
        let skipped =
            outbox.observe([("ok.txt".to_owned(), seen(1, 1)), ("b?d".to_owned(), seen(1, 1))], Duration::ZERO);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].name, "b?d");
        let many = (0..MAX_OUTBOX_FILES + 3).map(|i| (format!("f{i}"), seen(1, 1)));
        assert_eq!(outbox.observe(many, S).len(), 3);
        assert_eq!(outbox.due(3 * S, false).len(), MAX_OUTBOX_FILES);
        outbox.observe(Vec::new(), 4 * S);
        assert!(outbox.due(5 * S, true).is_empty(), "files gone are forgotten");
    }

    #[test]
    fn runner_tokens_round_trip_and_a_lone_join_token_still_reads() {
        let both = RunnerTokens { join: Secret::new("j.w.t"), upload: Some(Secret::new("u.p.t")) };
        let parsed = RunnerTokens::parse(&both.encode()).unwrap();
        assert_eq!((parsed.join.expose(), parsed.upload.as_ref().map(Secret::expose)), ("j.w.t", Some("u.p.t")));
        let lone = RunnerTokens::parse("j.w.t\n").unwrap();
        assert!(lone.upload.is_none());
        assert!(RunnerTokens::parse("").is_none());
        assert!(RunnerTokens::parse("a\nb\nc").is_none());
        assert!(!format!("{both:?}").contains("u.p.t"));
    }

    #[test]
    fn uploads_go_to_the_join_urls_edge() {
        let sid = SessionId::new("s_1").unwrap();
        let path = ArtifactPath::new("outbox/a b.txt").unwrap();
        assert_eq!(
            upload_url("wss://edge.example/sessions/s_1/join", &sid, &path).as_deref(),
            Ok("https://edge.example/artifacts/s_1/outbox/a%20b.txt")
        );
        assert_eq!(
            upload_url("ws://127.0.0.1:8787/sessions/s_1/join", &sid, &path).as_deref(),
            Ok("http://127.0.0.1:8787/artifacts/s_1/outbox/a%20b.txt")
        );
        for bad in ["https://edge/sessions/s_1/join", "wss:///x", "ws://edge.example/sessions/s_1/join"] {
            assert!(upload_url(bad, &sid, &path).is_err(), "{bad}");
        }
    }
}

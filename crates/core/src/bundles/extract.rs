//! Safe extraction, entry by entry: the archive reader (the runner) reports each entry's header to
//! [`ExtractionPlan::admit`], which decides whether and where it is written, and feeds every
//! decompressed byte (metadata included) through [`ExtractionPlan::check_stream`] before buffering it,
//! so the archive is refused the moment a limit is passed.
//!
//! Refused: absolute paths, `..`, control characters, entries under a symlink, symlinks whose target
//! leaves the root lexically or through any chain of earlier symlinks (and symlinks placed where an
//! earlier one's target passes), hardlinks to anything but an earlier file, device files and fifos,
//! duplicate paths, and bombs (entries, bytes, ratio, metadata). Accepted and skipped: the archive's
//! root directory (`./`, as `tar -C dir .` writes it) and global PAX headers (as `git archive` writes
//! them).

use super::BundleError;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Limits applied while extracting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractionLimits {
    /// Entries in the archive.
    pub max_entries: u64,
    /// Bytes of all files together.
    pub max_total_bytes: u64,
    /// Bytes of one file.
    pub max_entry_bytes: u64,
    /// Uncompressed bytes per compressed byte.
    pub max_ratio: u64,
    /// Bytes of one path.
    pub max_path_bytes: usize,
    /// Directory depth.
    pub max_depth: usize,
    /// Bytes read between two entries' contents: headers, PAX records, GNU long names, global headers,
    /// the padding and whatever content of the previous entry was not read. Archive readers buffer
    /// metadata whole, so this bounds their memory.
    pub max_metadata_bytes: u64,
}

impl Default for ExtractionLimits {
    fn default() -> Self {
        ExtractionLimits {
            max_entries: 20_000,
            max_total_bytes: 1024 * 1024 * 1024,
            max_entry_bytes: 512 * 1024 * 1024,
            max_ratio: 100,
            max_path_bytes: 1024,
            max_depth: 32,
            max_metadata_bytes: 64 * 1024,
        }
    }
}

/// Links followed when resolving one symlink chain, as the kernel's `MAXSYMLINKS`.
const MAX_LINK_HOPS: usize = 40;

/// The type of an archive entry, as the archive reader reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link to `target`.
    Symlink {
        /// The link text.
        target: Vec<u8>,
    },
    /// A hard link to an earlier entry.
    Hardlink {
        /// The earlier entry's path.
        target: Vec<u8>,
    },
    /// A global PAX header (`git archive` records its commit in one): metadata, never extracted.
    GlobalHeader,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Anything else (sockets, vendor extensions).
    Other,
}

/// What the archive reader saw of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader<'a> {
    /// The raw path.
    pub path: &'a [u8],
    /// The type.
    pub kind: EntryKind,
    /// Bytes of content (files).
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
}

/// An entry admitted for extraction, with a normalized relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SafeEntry {
    /// Write a file of `size` bytes at `path`, with permission bits `mode` (setuid/setgid/sticky cleared,
    /// group/other write cleared).
    File {
        /// Relative path.
        path: String,
        /// Permission bits to apply.
        mode: u32,
        /// Declared size; the extractor must stop at it.
        size: u64,
    },
    /// Create directory `path`.
    Dir {
        /// Relative path.
        path: String,
    },
    /// Create a symlink at `path` with link text `target` (relative, stays inside).
    Symlink {
        /// Relative path.
        path: String,
        /// Link text.
        target: String,
    },
    /// Hard-link `path` to the earlier regular file `target`.
    Hardlink {
        /// Relative path.
        path: String,
        /// Relative path of the earlier file.
        target: String,
    },
    /// Nothing to write (the root directory itself, a global header).
    Skip,
}

/// Decides entry by entry; keeps what it needs to catch escapes through earlier entries.
#[derive(Debug, Clone)]
pub struct ExtractionPlan {
    limits: ExtractionLimits,
    entries: u64,
    total_bytes: u64,
    paths: BTreeSet<String>,
    files: BTreeSet<String>,
    /// Symlinks admitted: path to link text.
    symlinks: BTreeMap<String, String>,
    /// Every path an admitted symlink's target passes through on the way to its end: a symlink may
    /// not be placed there later (it would change where the earlier one leads).
    passed: BTreeSet<String>,
    /// Decompressed bytes seen, and where the current stretch of metadata began.
    streamed: u64,
    metadata_from: Option<u64>,
}

impl ExtractionPlan {
    /// A plan with these limits.
    pub fn new(limits: ExtractionLimits) -> Self {
        ExtractionPlan {
            limits,
            entries: 0,
            total_bytes: 0,
            paths: BTreeSet::new(),
            files: BTreeSet::new(),
            symlinks: BTreeMap::new(),
            passed: BTreeSet::new(),
            streamed: 0,
            metadata_from: Some(0),
        }
    }

    /// Entries admitted so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Accounts for `n` more decompressed bytes (of any kind) after `compressed_bytes` were read, before
    /// the reader hands them on: refuses past the total, the ratio, or (between contents) the metadata
    /// limit.
    pub fn check_stream(&mut self, n: u64, compressed_bytes: u64) -> Result<(), BundleError> {
        self.streamed = self.streamed.saturating_add(n);
        // Everything an archive may hold: its files, plus metadata for every entry.
        let slack = self.limits.max_metadata_bytes.saturating_mul(self.limits.max_entries.saturating_add(1));
        let most = self.limits.max_total_bytes.saturating_add(slack);
        if self.streamed > most {
            return Err(BundleError::Bomb { what: "decompressed size", value: self.streamed, limit: most });
        }
        if let Some(from) = self.metadata_from {
            let metadata = self.streamed - from;
            if metadata > self.limits.max_metadata_bytes {
                return Err(BundleError::Bomb {
                    what: "metadata size",
                    value: metadata,
                    limit: self.limits.max_metadata_bytes,
                });
            }
        }
        self.check_ratio(compressed_bytes, self.streamed)
    }

    /// The reader is about to read an entry's content (metadata ends here).
    pub fn content_begins(&mut self) {
        self.metadata_from = None;
    }

    /// The reader is done with an entry's content (what follows, up to the next content, is metadata).
    pub fn content_ends(&mut self) {
        self.metadata_from = Some(self.streamed);
    }

    /// Decides whether `entry` may be extracted, and where.
    pub fn admit(&mut self, entry: &EntryHeader<'_>) -> Result<SafeEntry, BundleError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(BundleError::Bomb { what: "entry count", value: self.entries, limit: self.limits.max_entries });
        }
        if entry.kind == EntryKind::GlobalHeader {
            return Ok(SafeEntry::Skip);
        }
        let parts = self.components(entry.path)?;
        if parts.is_empty() {
            // `./`: the root, which the extractor creates itself.
            return match entry.kind {
                EntryKind::Dir => Ok(SafeEntry::Skip),
                _ => Err(unsafe_path(entry.path, "empty path")),
            };
        }
        let path = parts.join("/");
        let shown = path.clone();
        if let Some(kind) = forbidden_kind(&entry.kind) {
            return Err(BundleError::ForbiddenType { path: shown, kind });
        }
        // Nothing may be written through a symlink an earlier entry created.
        if let Some(link) = self.symlinks.keys().find(|l| path == **l || path.starts_with(&format!("{l}/"))) {
            return Err(BundleError::UnsafePath {
                path: format!("{path} (under symlink {link})"),
                reason: "path goes through a symlink",
            });
        }
        if !matches!(entry.kind, EntryKind::Dir) && !self.paths.insert(path.clone()) {
            return Err(BundleError::UnsafePath { path, reason: "duplicate entry would overwrite an earlier one" });
        }
        match &entry.kind {
            EntryKind::File => {
                if entry.size > self.limits.max_entry_bytes {
                    return Err(BundleError::Bomb {
                        what: "file size",
                        value: entry.size,
                        limit: self.limits.max_entry_bytes,
                    });
                }
                self.total_bytes = self.total_bytes.saturating_add(entry.size);
                if self.total_bytes > self.limits.max_total_bytes {
                    return Err(BundleError::Bomb {
                        what: "total size",
                        value: self.total_bytes,
                        limit: self.limits.max_total_bytes,
                    });
                }
                self.files.insert(path.clone());
                Ok(SafeEntry::File { path, mode: entry.mode & 0o755, size: entry.size })
            }
            EntryKind::Dir => Ok(SafeEntry::Dir { path }),
            EntryKind::Symlink { target } => self.admit_symlink(path, target),
            EntryKind::Hardlink { target } => {
                let escape = || BundleError::LinkEscape {
                    kind: "hardlink",
                    path: path.clone(),
                    target: String::from_utf8_lossy(target).into_owned(),
                };
                let target = self.components(target).map_err(|_| escape())?.join("/");
                if !self.files.contains(&target) {
                    return Err(escape());
                }
                Ok(SafeEntry::Hardlink { path, target })
            }
            special => {
                Err(BundleError::ForbiddenType { path, kind: forbidden_kind(special).unwrap_or("special file") })
            }
        }
    }

    fn admit_symlink(&mut self, path: String, target: &[u8]) -> Result<SafeEntry, BundleError> {
        let text = String::from_utf8(target.to_vec())
            .map_err(|_| BundleError::UnsafePath { path: path.clone(), reason: "symlink target is not UTF-8" })?;
        let escape = || BundleError::LinkEscape { kind: "symlink", path: path.clone(), target: text.clone() };
        if text.starts_with('/') || text.is_empty() || text.chars().any(char::is_control) || text.contains('\\') {
            return Err(escape());
        }
        if self.passed.contains(&path) {
            return Err(BundleError::UnsafePath {
                path: format!("{path} (an earlier symlink's target passes here)"),
                reason: "symlink would redirect an earlier symlink",
            });
        }
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        let passed = self.resolve(parent, &text).ok_or_else(escape)?;
        self.passed.extend(passed);
        self.symlinks.insert(path.clone(), text.clone());
        Ok(SafeEntry::Symlink { path, target: text })
    }

    /// Walks `target` from directory `base` as the kernel would once everything is extracted, following
    /// the symlinks admitted so far: `None` if the walk climbs above the root or loops. Returns the
    /// paths it passed through (not its end).
    fn resolve(&self, base: &str, target: &str) -> Option<Vec<String>> {
        let mut at: Vec<String> = base.split('/').filter(|p| !p.is_empty()).map(str::to_owned).collect();
        let mut pending: VecDeque<String> = target.split('/').map(str::to_owned).collect();
        let mut passed = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    at.pop()?;
                }
                name => at.push(name.to_owned()),
            }
            let here = at.join("/");
            let last = pending.iter().all(|p| p.is_empty() || p == ".");
            if let Some(link) = self.symlinks.get(&here) {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return None;
                }
                at.pop();
                for part in link.split('/').rev() {
                    pending.push_front(part.to_owned());
                }
            } else if !last && !here.is_empty() {
                passed.push(here);
            }
        }
        Some(passed)
    }

    /// Checks the compression ratio so far: call as compressed bytes are read and content is written.
    pub fn check_ratio(&self, compressed_bytes: u64, uncompressed_bytes: u64) -> Result<(), BundleError> {
        // Small inputs are allowed any ratio (a few zeros compress very well); bombs are large.
        let floor = 1024 * 1024;
        let allowed = compressed_bytes.max(1).saturating_mul(self.limits.max_ratio).max(floor);
        if uncompressed_bytes > allowed {
            return Err(BundleError::Bomb {
                what: "compression ratio",
                value: uncompressed_bytes / compressed_bytes.max(1),
                limit: self.limits.max_ratio,
            });
        }
        Ok(())
    }

    /// A raw path's components (`.` and empty ones dropped), or why it is unsafe.
    fn components<'a>(&self, raw: &'a [u8]) -> Result<Vec<&'a str>, BundleError> {
        let bad = |reason| unsafe_path(raw, reason);
        if raw.len() > self.limits.max_path_bytes {
            return Err(bad("path too long"));
        }
        let text = core::str::from_utf8(raw).map_err(|_| bad("path is not UTF-8"))?;
        if text.contains('\0') || text.chars().any(char::is_control) {
            return Err(bad("control character in path"));
        }
        if text.contains('\\') {
            return Err(bad("backslash in path"));
        }
        if text.starts_with('/') || (text.len() >= 2 && text.as_bytes()[1] == b':') {
            return Err(bad("absolute path"));
        }
        let mut parts = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(bad("parent directory (..) in path")),
                p => parts.push(p),
            }
        }
        if parts.len() > self.limits.max_depth {
            return Err(bad("path too deep"));
        }
        Ok(parts)
    }
}

fn unsafe_path(raw: &[u8], reason: &'static str) -> BundleError {
    BundleError::UnsafePath { path: printable(&String::from_utf8_lossy(&raw[..raw.len().min(120)])), reason }
}

/// `text` with every control character escaped (`\u{1b}`), for messages that quote an archive's bytes:
/// nothing from a bundle reaches a terminal as an escape sequence.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// The name of an entry type that is never extracted, or `None` for files, directories and links.
fn forbidden_kind(kind: &EntryKind) -> Option<&'static str> {
    match kind {
        EntryKind::CharDevice => Some("character device"),
        EntryKind::BlockDevice => Some("block device"),
        EntryKind::Fifo => Some("fifo"),
        EntryKind::Other => Some("special file"),
        EntryKind::File
        | EntryKind::Dir
        | EntryKind::Symlink { .. }
        | EntryKind::Hardlink { .. }
        | EntryKind::GlobalHeader => None,
    }
}

//! CLI bundle verification: where a bundle may come from, which digests are allowed, how large it may be,
//! and a safe-extraction policy over archive entries. The runner image reads the archive; this module
//! decides, entry by entry, whether and where each one may be written.
//!
//! Extraction refuses absolute paths, `..`, entries under a symlink, symlinks and hardlinks that leave the
//! target directory, device files and fifos, duplicate paths, too many entries, too many bytes, and a
//! suspicious compression ratio.

use std::collections::BTreeSet;

/// Why a bundle or one of its entries was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The URL is not `https://` on an allowed host.
    #[error("bundle URL refused: {0}")]
    UrlRefused(String),
    /// The download is larger than allowed.
    #[error("bundle is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The SHA-256 is not in the allowlist.
    #[error("bundle digest {0} is not in the allowlist")]
    DigestNotAllowed(String),
    /// An allowlist entry is not a SHA-256 hex digest.
    #[error("allowlist entry {0:?} is not a SHA-256 hex digest")]
    BadAllowlistEntry(String),
    /// An entry's path is unsafe.
    #[error("entry {path:?}: {reason}")]
    UnsafePath {
        /// The path as found in the archive (lossy, truncated).
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An entry type that is never extracted.
    #[error("entry {path:?} is a {kind}, which bundles may not contain")]
    ForbiddenType {
        /// The path.
        path: String,
        /// The type.
        kind: &'static str,
    },
    /// A link pointing outside the target directory.
    #[error("{kind} {path:?} points outside the bundle ({target:?})")]
    LinkEscape {
        /// Symlink or hardlink.
        kind: &'static str,
        /// The link's path.
        path: String,
        /// Where it points.
        target: String,
    },
    /// Too many entries, bytes, or too high a compression ratio.
    #[error("bundle exceeds the {what} limit ({value} > {limit})")]
    Bomb {
        /// Which limit.
        what: &'static str,
        /// The value reached.
        value: u64,
        /// The limit.
        limit: u64,
    },
}

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

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
        }
    }
}

/// Where bundles may come from and what they may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundlePolicy {
    allowed_hosts: Vec<String>,
    allowlist: Vec<Sha256Digest>,
    /// Bytes the download may have.
    pub max_download_bytes: u64,
    /// Extraction limits.
    pub limits: ExtractionLimits,
}

/// The largest bundle download unless configured (`EDGESHELL_BUNDLE_MAX_MB`).
pub const DEFAULT_MAX_DOWNLOAD_MB: u64 = 256;

impl BundlePolicy {
    /// A policy from host names (`host` for port 443, or `host:port`) and hex SHA-256 digests (an
    /// optional `sha256:` prefix is accepted).
    pub fn new<H: AsRef<str>, D: AsRef<str>>(allowed_hosts: &[H], allowlist: &[D]) -> Result<Self, BundleError> {
        let allowlist = allowlist.iter().map(|d| parse_digest(d.as_ref())).collect::<Result<_, _>>()?;
        Ok(BundlePolicy {
            allowed_hosts: allowed_hosts.iter().map(|h| h.as_ref().to_ascii_lowercase()).collect(),
            allowlist,
            max_download_bytes: DEFAULT_MAX_DOWNLOAD_MB * 1024 * 1024,
            limits: ExtractionLimits::default(),
        })
    }

    /// Accepts only `https://host[:port]/...` with no user info, where the allowed list names `host`
    /// (then only port 443 is allowed) or exactly `host:port`.
    pub fn check_url(&self, url: &str) -> Result<(), BundleError> {
        let refuse =
            |why: &str| Err(BundleError::UrlRefused(format!("{why}: {}", url.chars().take(120).collect::<String>())));
        let Some(rest) = url.strip_prefix("https://") else {
            return refuse("not https");
        };
        if !url.is_ascii() || url.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return refuse("non-ASCII, control or space characters");
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default().to_ascii_lowercase();
        if authority.contains('@') {
            return refuse("user info in URL");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (authority.as_str(), "443"),
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return refuse("malformed host or port");
        }
        let allowed = self.allowed_hosts.iter().any(|entry| match entry.rsplit_once(':') {
            Some((h, p)) => h == host && p == port,
            None => entry == host && port == "443",
        });
        if !allowed {
            return refuse("host not allowed");
        }
        Ok(())
    }

    /// Checks a finished download's size and digest.
    pub fn check_download(&self, size: u64, digest: &Sha256Digest) -> Result<(), BundleError> {
        if size > self.max_download_bytes {
            return Err(BundleError::TooLarge { limit: self.max_download_bytes });
        }
        // Digests are public; a constant-time comparison still costs nothing here.
        let allowed = self
            .allowlist
            .iter()
            .fold(subtle::Choice::from(0), |acc, d| acc | subtle::ConstantTimeEq::ct_eq(&d[..], &digest[..]));
        if bool::from(allowed) {
            Ok(())
        } else {
            Err(BundleError::DigestNotAllowed(hex(digest)))
        }
    }

    /// A fresh extraction plan under this policy's limits.
    pub fn extraction(&self) -> ExtractionPlan {
        ExtractionPlan::new(self.limits)
    }
}

fn parse_digest(text: &str) -> Result<Sha256Digest, BundleError> {
    let bad = || BundleError::BadAllowlistEntry(text.to_owned());
    let hex_text = text.strip_prefix("sha256:").unwrap_or(text);
    if hex_text.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex_text.as_bytes().chunks(2).enumerate() {
        let s = core::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
}

/// Decides entry by entry; keeps what it needs to catch escapes through earlier entries.
#[derive(Debug, Clone)]
pub struct ExtractionPlan {
    limits: ExtractionLimits,
    entries: u64,
    total_bytes: u64,
    paths: BTreeSet<String>,
    files: BTreeSet<String>,
    symlinks: BTreeSet<String>,
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
            symlinks: BTreeSet::new(),
        }
    }

    /// Entries admitted so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Decides whether `entry` may be extracted, and where.
    pub fn admit(&mut self, entry: &EntryHeader<'_>) -> Result<SafeEntry, BundleError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(BundleError::Bomb { what: "entry count", value: self.entries, limit: self.limits.max_entries });
        }
        let path = self.normalize(entry.path)?;
        let shown = path.clone();
        if let Some(kind) = forbidden_kind(&entry.kind) {
            return Err(BundleError::ForbiddenType { path: shown, kind });
        }
        // Nothing may be written through a symlink an earlier entry created.
        if let Some(link) = self.symlinks.iter().find(|l| path == **l || path.starts_with(&format!("{l}/"))) {
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
            EntryKind::Symlink { target } => {
                let text = String::from_utf8(target.clone()).map_err(|_| BundleError::UnsafePath {
                    path: path.clone(),
                    reason: "symlink target is not UTF-8",
                })?;
                let escape = || BundleError::LinkEscape { kind: "symlink", path: path.clone(), target: text.clone() };
                if text.starts_with('/') || text.is_empty() || text.contains('\0') || text.contains('\\') {
                    return Err(escape());
                }
                let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                resolve_within(parent, &text).ok_or_else(escape)?;
                self.symlinks.insert(path.clone());
                Ok(SafeEntry::Symlink { path, target: text })
            }
            EntryKind::Hardlink { target } => {
                let target = self.normalize(target).map_err(|_| BundleError::LinkEscape {
                    kind: "hardlink",
                    path: path.clone(),
                    target: String::from_utf8_lossy(target).into_owned(),
                })?;
                if !self.files.contains(&target) {
                    return Err(BundleError::LinkEscape { kind: "hardlink", path, target });
                }
                Ok(SafeEntry::Hardlink { path, target })
            }
            special => {
                Err(BundleError::ForbiddenType { path, kind: forbidden_kind(special).unwrap_or("special file") })
            }
        }
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

    fn normalize(&self, raw: &[u8]) -> Result<String, BundleError> {
        let shown = || String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
        let bad = |reason| BundleError::UnsafePath { path: shown(), reason };
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
        if parts.is_empty() {
            return Err(bad("empty path"));
        }
        if parts.len() > self.limits.max_depth {
            return Err(bad("path too deep"));
        }
        Ok(parts.join("/"))
    }
}

/// The name of an entry type that is never extracted, or `None` for files, directories and links.
fn forbidden_kind(kind: &EntryKind) -> Option<&'static str> {
    match kind {
        EntryKind::CharDevice => Some("character device"),
        EntryKind::BlockDevice => Some("block device"),
        EntryKind::Fifo => Some("fifo"),
        EntryKind::Other => Some("special file"),
        EntryKind::File | EntryKind::Dir | EntryKind::Symlink { .. } | EntryKind::Hardlink { .. } => None,
    }
}

/// Resolves `target` relative to directory `base` lexically; `None` if it climbs above the root.
fn resolve_within(base: &str, target: &str) -> Option<String> {
    let mut stack: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            p => stack.push(p),
        }
    }
    Some(stack.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn policy() -> BundlePolicy {
        BundlePolicy::new(&["bundles.example.com"], &[format!("sha256:{DIGEST}")]).unwrap()
    }

    fn check_url(url: &str, ok: bool) {
        assert_eq!(policy().check_url(url).is_ok(), ok, "{url}");
    }

    #[test]
    fn urls() {
        check_url("https://bundles.example.com/cli-1.2.tar.gz", true);
        check_url("https://BUNDLES.example.com:443/x", true);
        check_url("http://bundles.example.com/x", false);
        check_url("https://bundles.example.com.evil.net/x", false);
        check_url("https://evil.net/bundles.example.com", false);
        check_url("https://bundles.example.com@evil.net/x", false);
        check_url("https://bundles.example.com:8443/x", false);
        check_url("https://bundles.example.com:/x", false);
        let ported = BundlePolicy::new(&["mirror.example.com:8443"], &[DIGEST]).unwrap();
        assert!(ported.check_url("https://mirror.example.com:8443/x").is_ok());
        assert!(ported.check_url("https://mirror.example.com/x").is_err());
        assert!(ported.check_url("https://mirror.example.com:9443/x").is_err());
        check_url("https://bundles.example.com\n/x", false);
        check_url("file:///etc/passwd", false);
    }

    #[test]
    fn digests() {
        let p = policy();
        let mut d = parse_digest(DIGEST).unwrap();
        assert_eq!(p.check_download(10, &d), Ok(()));
        d[0] ^= 1;
        assert!(matches!(p.check_download(10, &d), Err(BundleError::DigestNotAllowed(_))));
        assert!(matches!(p.check_download(p.max_download_bytes + 1, &d), Err(BundleError::TooLarge { .. })));
        assert!(BundlePolicy::new(&["h"], &["abc"]).is_err());
        assert!(BundlePolicy::new(&["h"], &[&"zz".repeat(32)]).is_err());
    }

    fn file(path: &str) -> EntryHeader<'_> {
        EntryHeader { path: path.as_bytes(), kind: EntryKind::File, size: 10, mode: 0o4777 }
    }

    fn link<'a>(path: &'a str, target: &str, hard: bool) -> EntryHeader<'a> {
        let target = target.as_bytes().to_vec();
        let kind = if hard { EntryKind::Hardlink { target } } else { EntryKind::Symlink { target } };
        EntryHeader { path: path.as_bytes(), kind, size: 0, mode: 0o777 }
    }

    fn check(entries: &[EntryHeader<'_>], expected: Result<usize, &str>) {
        let mut plan = ExtractionPlan::new(ExtractionLimits { max_entries: 5, ..ExtractionLimits::default() });
        let got = entries.iter().try_fold(0, |n, e| plan.admit(e).map(|_| n + 1)).map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(n), Ok(m)) => assert_eq!(*n, m),
            (Err(g), Err(w)) => assert!(g.contains(w), "got {g:?}, want {w:?}"),
            _ => panic!("got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn attack_corpus() {
        check(&[file("bin/cli"), file("./lib/x.js")], Ok(2));
        check(&[file("../escape")], Err("parent directory"));
        check(&[file("a/../../escape")], Err("parent directory"));
        check(&[file("/etc/passwd")], Err("absolute path"));
        check(&[file("C:/x")], Err("absolute path"));
        check(&[file("a\\..\\x")], Err("backslash"));
        check(&[file("a\u{1b}[2J")], Err("control character"));
        check(&[link("l", "/etc", false)], Err("points outside"));
        check(&[link("a/l", "../../etc", false)], Err("points outside"));
        check(&[link("a/l", "../b", false)], Ok(1));
        check(&[link("l", "a", false), file("l/passwd")], Err("through a symlink"));
        check(&[link("l", "a", false), file("l")], Err("through a symlink"));
        check(&[link("h", "/etc/shadow", true)], Err("points outside"));
        check(&[link("h", "../x", true)], Err("points outside"));
        check(&[link("h", "not-yet", true)], Err("points outside"));
        check(&[file("x"), link("h", "x", true)], Ok(2));
        check(&[file("x"), file("x")], Err("duplicate"));
        for (kind, name) in [
            (EntryKind::CharDevice, "character device"),
            (EntryKind::BlockDevice, "block device"),
            (EntryKind::Fifo, "fifo"),
        ] {
            check(&[EntryHeader { path: b"dev", kind, size: 0, mode: 0 }], Err(name));
        }
        check(&[file("1"), file("2"), file("3"), file("4"), file("5"), file("6")], Err("entry count"));
        check(&[EntryHeader { path: b"big", kind: EntryKind::File, size: u64::MAX, mode: 0 }], Err("file size"));
    }

    #[test]
    fn modes_are_sanitized_and_bombs_caught() {
        let mut plan = policy().extraction();
        assert_eq!(plan.admit(&file("x")).unwrap(), SafeEntry::File { path: "x".into(), mode: 0o755, size: 10 });
        assert!(plan.check_ratio(1000, 1024 * 1024).is_ok());
        assert!(plan.check_ratio(100_000, 100 * 100_000).is_ok());
        assert!(matches!(
            plan.check_ratio(100_000, 101 * 100_000),
            Err(BundleError::Bomb { what: "compression ratio", .. })
        ));
        let mut total = ExtractionPlan::new(ExtractionLimits { max_total_bytes: 15, ..ExtractionLimits::default() });
        assert!(total.admit(&file("a")).is_ok());
        assert!(matches!(total.admit(&file("b")), Err(BundleError::Bomb { what: "total size", .. })));
    }
}

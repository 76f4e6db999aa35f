//! CLI bundle verification: where a bundle may come from, which digests are allowed, how large it may be,
//! and a safe-extraction policy over archive entries. The runner image reads the archive; this module
//! decides, entry by entry, whether and where each one may be written.
//!
//! Extraction ([`ExtractionPlan`], in `extract`) refuses absolute paths, `..`, entries under a symlink,
//! symlinks that leave the target directory through any chain of links, hardlinks to anything but an
//! earlier file, device files and fifos, duplicate paths, and bombs (entries, bytes, ratio, and metadata
//! before it is buffered); it accepts what `tar -C dir .` and `git archive` write. Error text quoting an
//! archive's bytes is escaped ([`printable`]).

mod extract;

pub use extract::{printable, EntryHeader, EntryKind, ExtractionLimits, ExtractionPlan, SafeEntry};

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
    parse_hex32(text.strip_prefix("sha256:").unwrap_or(text))
        .ok_or_else(|| BundleError::BadAllowlistEntry(text.to_owned()))
}

/// A SHA-256 written as 64 hex digits (either case); `None` for anything else. The one parser of
/// digests as text: bundle allowlists, declared upload digests, pool key hashes.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(core::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;

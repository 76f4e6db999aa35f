//! Installing the CLI bundle a runner image runs: download over HTTPS from an allowed host (redirects
//! checked hop by hop), stop at the size limit, check the SHA-256 against the allowlist, then extract
//! the tar (optionally gzip) archive entry by entry under the core's safe-extraction policy
//! ([`edgeshell_core::bundles`]). Files are created fresh (never through an existing path), inside a
//! new directory that is removed again if anything is refused.

use edgeshell_core::bundles::{
    hex, printable, BundleError, BundlePolicy, EntryHeader, EntryKind, ExtractionPlan, SafeEntry,
};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Why a bundle was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The policy refused the URL, the download or an entry.
    #[error(transparent)]
    Refused(#[from] BundleError),
    /// The server answered with an error.
    #[error("bundle download failed with HTTP {0}")]
    Http(u16),
    /// Network or TLS failure.
    #[error("bundle download failed: {0}")]
    Fetch(String),
    /// The archive is not a readable tar or tar.gz.
    #[error("bundle is not a valid tar archive: {0}")]
    Archive(String),
    /// The target exists or could not be written.
    #[error("cannot install into {path}: {error}")]
    Target {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
}

/// A successful install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Bytes downloaded.
    pub size: u64,
    /// Their SHA-256, hex.
    pub sha256: String,
    /// Entries extracted.
    pub entries: u64,
}

/// Most redirects followed (each target is checked against the policy).
const MAX_REDIRECTS: usize = 3;

/// An HTTPS client for bundles: rustls with the webpki roots plus `extra_roots` (PEM), redirects only
/// to allowed hosts.
pub fn client(policy: &BundlePolicy, extra_roots: &[u8]) -> Result<reqwest::Client, InstallError> {
    client_builder(policy, extra_roots)?.build().map_err(|e| InstallError::Fetch(e.to_string()))
}

/// The builder behind [`client`], for callers that add settings (tests resolve names to loopback).
pub fn client_builder(policy: &BundlePolicy, extra_roots: &[u8]) -> Result<reqwest::ClientBuilder, InstallError> {
    let checker = policy.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if let Err(e) = checker.check_url(attempt.url().as_str()) {
            attempt.error(e.to_string())
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .redirect(redirects)
        .https_only(true)
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(300));
    if !extra_roots.is_empty() {
        for cert in
            reqwest::Certificate::from_pem_bundle(extra_roots).map_err(|e| InstallError::Fetch(e.to_string()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// Downloads, verifies and extracts the bundle at `url` into `dest`, which must not exist yet.
pub async fn install(
    client: &reqwest::Client,
    policy: &BundlePolicy,
    url: &str,
    dest: &Path,
) -> Result<Installed, InstallError> {
    policy.check_url(url)?;
    if dest.symlink_metadata().is_ok() {
        return Err(target(dest, io::Error::new(io::ErrorKind::AlreadyExists, "the target already exists")));
    }
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut download = tempfile_in(parent)?;
    let (size, digest) = fetch(client, policy, url, &mut download.1).await?;
    policy.check_download(size, &digest)?;
    download.1.rewind().map_err(|e| InstallError::Archive(e.to_string()))?;
    let file = download.1.try_clone().map_err(|e| target(parent, e))?;
    let policy = policy.clone();
    let dest = dest.to_owned();
    let entries = tokio::task::spawn_blocking(move || extract_fresh(file, &policy, &dest))
        .await
        .map_err(|e| InstallError::Archive(e.to_string()))??;
    drop(download);
    Ok(Installed { size, sha256: hex(&digest), entries })
}

/// A temporary download file that is removed on drop.
struct TempFile(PathBuf, File);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn tempfile_in(dir: &Path) -> Result<TempFile, InstallError> {
    let name = dir.join(format!(".bundle-{}.download", hex(&rand::random::<[u8; 8]>())));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&name)
        .map_err(|e| target(dir, e))?;
    Ok(TempFile(name, file))
}

fn target(path: &Path, error: io::Error) -> InstallError {
    InstallError::Target { path: path.to_owned(), error }
}

async fn fetch(
    client: &reqwest::Client,
    policy: &BundlePolicy,
    url: &str,
    out: &mut File,
) -> Result<(u64, [u8; 32]), InstallError> {
    let mut response = client.get(url).send().await.map_err(|e| InstallError::Fetch(describe(&e)))?;
    if !response.status().is_success() {
        return Err(InstallError::Http(response.status().as_u16()));
    }
    if response.content_length().is_some_and(|n| n > policy.max_download_bytes) {
        return Err(BundleError::TooLarge { limit: policy.max_download_bytes }.into());
    }
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| InstallError::Fetch(describe(&e)))? {
        size += chunk.len() as u64;
        if size > policy.max_download_bytes {
            return Err(BundleError::TooLarge { limit: policy.max_download_bytes }.into());
        }
        hasher.update(&chunk);
        out.write_all(&chunk).map_err(|e| InstallError::Fetch(e.to_string()))?;
    }
    Ok((size, hasher.finalize().into()))
}

/// The error with its causes (reqwest's own message hides the redirect or TLS reason).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Extracts into `dest`, created here; removes it again when anything is refused.
pub fn extract_fresh(archive: File, policy: &BundlePolicy, dest: &Path) -> Result<u64, InstallError> {
    fs::create_dir(dest).map_err(|e| target(dest, e))?;
    let result = extract(archive, policy, dest);
    if result.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    result
}

/// What the readers and the extraction loop share: the plan sees every decompressed byte before the
/// tar reader buffers it (metadata included), and a refusal raised inside a read is kept here, since
/// the tar reader reports it only as an I/O error.
struct Shared {
    plan: ExtractionPlan,
    compressed: u64,
    refused: Option<BundleError>,
}

type SharedRef = Rc<RefCell<Shared>>;

/// Counts the compressed bytes read, for the ratio check.
struct Counting<R> {
    inner: R,
    shared: SharedRef,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.shared.borrow_mut().compressed += n as u64;
        Ok(n)
    }
}

/// Hands decompressed bytes on only once the plan has accounted for them.
struct Checked<R> {
    inner: R,
    shared: SharedRef,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut shared = self.shared.borrow_mut();
        let compressed = shared.compressed;
        if let Err(refused) = shared.plan.check_stream(n as u64, compressed) {
            let message = refused.to_string();
            shared.refused = Some(refused);
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

fn extract(mut archive: File, policy: &BundlePolicy, dest: &Path) -> Result<u64, InstallError> {
    let mut magic = [0u8; 2];
    let gzip = archive.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    archive.rewind().map_err(|e| InstallError::Archive(e.to_string()))?;
    let shared = Rc::new(RefCell::new(Shared { plan: policy.extraction(), compressed: 0, refused: None }));
    let counting = Counting { inner: io::BufReader::new(archive), shared: shared.clone() };
    let decompressed: Box<dyn Read> =
        if gzip { Box::new(flate2::read::MultiGzDecoder::new(counting)) } else { Box::new(counting) };
    let mut tar = tar::Archive::new(Checked { inner: decompressed, shared: shared.clone() });
    // A refusal raised inside a read wins over the I/O error the tar reader made of it; other errors
    // quote archive bytes, escaped.
    let bad = |e: io::Error| match shared.borrow_mut().refused.take() {
        Some(refused) => InstallError::Refused(refused),
        None => InstallError::Archive(printable(&e.to_string())),
    };
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => {
                EntryKind::Symlink { target: entry.link_name_bytes().map(|b| b.into_owned()).unwrap_or_default() }
            }
            tar::EntryType::Link => {
                EntryKind::Hardlink { target: entry.link_name_bytes().map(|b| b.into_owned()).unwrap_or_default() }
            }
            tar::EntryType::XGlobalHeader => EntryKind::GlobalHeader,
            tar::EntryType::Char => EntryKind::CharDevice,
            tar::EntryType::Block => EntryKind::BlockDevice,
            tar::EntryType::Fifo => EntryKind::Fifo,
            _ => EntryKind::Other,
        };
        let size = header.size().map_err(bad)?;
        let mode = header.mode().unwrap_or(0o644);
        let path = entry.path_bytes().into_owned();
        let admitted = shared.borrow_mut().plan.admit(&EntryHeader { path: &path, kind, size, mode })?;
        match admitted {
            SafeEntry::Skip => {}
            SafeEntry::Dir { path } => fs::create_dir_all(dest.join(&path)).map_err(|e| target(dest, e))?,
            SafeEntry::File { path, mode, size } => {
                let at = dest.join(&path);
                if let Some(dir) = at.parent() {
                    fs::create_dir_all(dir).map_err(|e| target(dest, e))?;
                }
                // create_new: never through a path that exists (O_EXCL also refuses a symlink there).
                let mut file =
                    OpenOptions::new().write(true).create_new(true).mode(mode).open(&at).map_err(|e| target(&at, e))?;
                let mut buf = [0u8; 64 * 1024];
                let mut copied = 0u64;
                shared.borrow_mut().plan.content_begins();
                loop {
                    let n = entry.read(&mut buf).map_err(bad)?;
                    if n == 0 {
                        break;
                    }
                    copied += n as u64;
                    if copied > size {
                        return Err(InstallError::Archive(format!("{path}: more content than its header says")));
                    }
                    file.write_all(&buf[..n]).map_err(|e| target(&at, e))?;
                }
                shared.borrow_mut().plan.content_ends();
            }
            SafeEntry::Symlink { path, target: link } => {
                let at = dest.join(&path);
                if let Some(dir) = at.parent() {
                    fs::create_dir_all(dir).map_err(|e| target(dest, e))?;
                }
                std::os::unix::fs::symlink(&link, &at).map_err(|e| target(&at, e))?;
            }
            SafeEntry::Hardlink { path, target: original } => {
                let at = dest.join(&path);
                if let Some(dir) = at.parent() {
                    fs::create_dir_all(dir).map_err(|e| target(dest, e))?;
                }
                fs::hard_link(dest.join(&original), &at).map_err(|e| target(&at, e))?;
            }
        }
    }
    let entries = shared.borrow().plan.entries();
    Ok(entries)
}

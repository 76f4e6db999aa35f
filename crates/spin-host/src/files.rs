//! A component's `files`, as Spin gives them to it (`spin up`'s copy strategy, `spin-loader`): at load,
//! every file the manifest names is copied into a directory of the component's own, which each of its
//! instances sees, read-only, as `/`. Copying (not mounting the application directory) means a guest
//! sees only what its manifest names, and later edits to the sources do not reach a running host.
//!
//! The manifest's forms, with Spin's rules and messages:
//!
//! - `"path/file.txt"`: that file, at `/path/file.txt`;
//! - `"path/dir"`: every file below it, at `/path/dir/...`;
//! - `"static/**/*.html"`: a glob (`*`, `?`, `[`), each match at its path from the application directory;
//! - `{ source = "assets", destination = "/www" }`: a directory's files below `destination`, or one file
//!   at `destination`.
//!
//! `exclude_files` globs, matched against paths from the application directory, leave files out. A
//! pattern ending in `.` or `..`, a path that does not exist and is no glob, and a match outside the
//! application directory are refused.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One entry of a component's `files`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FilesMount {
    /// A file, a directory or a glob, relative to the application directory.
    Pattern(String),
    /// A file or directory of the application placed at a guest path.
    Placement {
        /// Relative to the application directory.
        source: String,
        /// Where the guest sees it.
        destination: String,
    },
}

/// Where Spin's documentation explains these forms.
const LEARN_MORE: &str = "Learn more: https://spinframework.dev/writing-apps#including-files-with-components";

/// Copies what `mounts` name, from `app_root`, into `dest_root`, leaving out what `exclude` matches.
pub fn assemble(app_root: &Path, mounts: &[FilesMount], exclude: &[String], dest_root: &Path) -> Result<()> {
    let app_root =
        app_root.canonicalize().with_context(|| format!("the application directory {}", app_root.display()))?;
    let exclude = exclude
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("Invalid exclude_files glob pattern {p:?}")))
        .collect::<Result<Vec<_>>>()?;
    let copier = Copier { app_root: &app_root, exclude: &exclude, dest: dest_root };
    std::fs::create_dir_all(dest_root).with_context(|| format!("creating {}", dest_root.display()))?;
    for mount in mounts {
        match mount {
            FilesMount::Pattern(pattern) => copier.pattern(pattern)?,
            FilesMount::Placement { source, destination } => {
                let dest = dest_root.join(destination.trim_start_matches('/'));
                copier.placement(Path::new(source), &dest, destination)?;
            }
        }
    }
    Ok(())
}

struct Copier<'a> {
    app_root: &'a Path,
    exclude: &'a [glob::Pattern],
    dest: &'a Path,
}

impl Copier<'_> {
    fn pattern(&self, pattern: &str) -> Result<()> {
        if pattern == ".." || pattern.ends_with("/..") {
            bail!(
                "A file pattern can't end in a parent directory path (..)\nIf you want to include a directory, use \
                 source-destination form, or a glob pattern ending in **/*.\n{LEARN_MORE}"
            );
        }
        if pattern == "." || pattern.ends_with("/.") {
            bail!(
                "A file pattern can't end in a current directory path (.)\nIf you want to include a directory, use \
                 source-destination form, or a glob pattern ending in **/*.\n{LEARN_MORE}"
            );
        }
        let path = self.app_root.join(pattern);
        if path.exists() {
            let dest = self.dest.join(pattern);
            if path.is_dir() {
                self.glob(&path.join("**/*"), self.app_root, self.dest)
            } else {
                self.file(&path, &dest, pattern)
            }
        } else if pattern.contains(['*', '?', '[']) {
            self.glob(&path, self.app_root, self.dest)
        } else {
            bail!("{pattern:?} does not exist and doesn't appear to be a glob pattern")
        }
    }

    fn placement(&self, source: &Path, dest: &Path, guest_dest: &str) -> Result<()> {
        let src = self.app_root.join(source);
        let meta =
            std::fs::metadata(&src).with_context(|| format!("invalid file mount source {}", source.display()))?;
        if meta.is_dir() {
            self.glob(&src.join("**/*"), &src, dest)
        } else {
            self.file(&src, dest, guest_dest)
        }
    }

    /// Every file matching `pattern`, at its path from `prefix` below `dest_root`.
    fn glob(&self, pattern: &Path, prefix: &Path, dest_root: &Path) -> Result<()> {
        let text = pattern.to_str().with_context(|| format!("invalid (non-utf8) file pattern {pattern:?}"))?;
        let paths = glob::glob(text).with_context(|| format!("Failed to resolve glob pattern {text:?}"))?;
        std::fs::create_dir_all(dest_root).with_context(|| format!("creating {}", dest_root.display()))?;
        for path in paths {
            let src = path?;
            if !src.is_file() {
                continue;
            }
            let Ok(from_root) = src.canonicalize()?.strip_prefix(self.app_root).map(Path::to_path_buf) else {
                bail!(
                    "{text} cannot be mapped because it is outside the application directory. Files must be within \
                     the application directory."
                );
            };
            if self.exclude.iter().any(|p| p.matches_path(&from_root)) {
                continue;
            }
            let relative = src.strip_prefix(prefix)?;
            self.file(&src, &dest_root.join(relative), &relative.to_string_lossy())?;
        }
        Ok(())
    }

    fn file(&self, src: &Path, dest: &Path, guest_dest: &str) -> Result<()> {
        let inside = src.canonicalize().is_ok_and(|s| s.starts_with(self.app_root));
        let normal = dest.components().all(|c| !matches!(c, std::path::Component::ParentDir));
        if !inside || !normal {
            bail!("{guest_dest:?} cannot be mapped: files must be within the application directory");
        }
        let parent = dest.parent().unwrap_or(self.dest);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("Failed to create parent directory {}", parent.display()))?;
        let base = format!("Failed to copy {} to working path {}", src.display(), dest.display());
        if guest_dest.ends_with('/') || guest_dest.ends_with('.') {
            return Err(anyhow::anyhow!("{guest_dest:?} is not a valid destination file name")).context(base);
        }
        std::fs::copy(src, dest).with_context(|| format!("{base} (for destination path {guest_dest:?})"))?;
        Ok(())
    }
}

/// A directory removed with everything in it when dropped: where a host keeps its components' files.
#[derive(Debug)]
pub struct FilesDir(PathBuf);

impl FilesDir {
    /// A fresh directory under the system's temporary directory.
    pub fn new() -> Result<FilesDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let dir = std::env::temp_dir().join(format!("edgeshell-spin-files-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(FilesDir(dir))
    }

    /// Where a component's files go.
    pub fn component(&self, id: &str) -> PathBuf {
        self.0.join(id)
    }
}

impl Drop for FilesDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests;

//! Skipping a build step whose inputs have not changed since it last ran: a stamp beside its outputs
//! holds a fingerprint of every input file (path, size, modification time) and of the tools' versions.
//! `cargo xtask dev` on an unchanged tree thus starts in seconds instead of rerunning worker-build,
//! wasm-bindgen, wasm-opt and esbuild.

use anyhow::{Context, Result};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// Where a step's fingerprint is kept, and the fingerprint of its inputs now.
pub(crate) struct Stamp {
    path: PathBuf,
    fingerprint: String,
}

impl Stamp {
    /// The fingerprint of `inputs` (files or directories, walked) and `extra` (tool versions), kept at
    /// `path`.
    pub(crate) fn new(path: PathBuf, inputs: &[PathBuf], extra: &str) -> Result<Stamp> {
        let mut files = Vec::new();
        for input in inputs {
            walk(input, &mut files)?;
        }
        files.sort();
        let mut hasher = DefaultHasher::new();
        extra.hash(&mut hasher);
        for file in &files {
            let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            (file, meta.len(), modified).hash(&mut hasher);
        }
        Ok(Stamp { path, fingerprint: format!("{:016x} {} files\n", hasher.finish(), files.len()) })
    }

    /// True when the step ran with exactly these inputs (and its outputs are still there).
    pub(crate) fn is_fresh(&self) -> bool {
        std::fs::read_to_string(&self.path).is_ok_and(|kept| kept == self.fingerprint)
    }

    /// Records that the step ran with these inputs.
    pub(crate) fn record(&self) -> Result<()> {
        std::fs::write(&self.path, &self.fingerprint).with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Every file under `path` (or `path` itself), leaving out build outputs and dependencies.
fn walk(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        if matches!(name.to_str(), Some("target" | "node_modules" | "build" | "dist" | ".git" | "fuzz")) {
            continue;
        }
        walk(&entry.path(), out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_goes_stale_when_an_input_changes() {
        let dir = std::env::temp_dir().join(format!("xtask-fresh-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/target")).unwrap();
        std::fs::write(dir.join("src/a.rs"), "a").unwrap();
        std::fs::write(dir.join("src/target/ignored"), "x").unwrap();
        let stamp = || Stamp::new(dir.join("stamp"), &[dir.join("src")], "tools 1").unwrap();
        assert!(!stamp().is_fresh());
        stamp().record().unwrap();
        assert!(stamp().is_fresh());
        std::fs::write(dir.join("src/target/ignored"), "changed").unwrap();
        assert!(stamp().is_fresh(), "build outputs are not inputs");
        std::fs::write(dir.join("src/a.rs"), "ab").unwrap();
        assert!(!stamp().is_fresh());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! The session's repository, cloned into the work directory before the program starts. The clone runs
//! on the session's PTY as the session's user, under its limits, so its progress is the first thing
//! the terminal shows; `git` is told to speak HTTPS only, follow no redirect, run no hook and fetch no
//! submodule, and it gets the user's token (if any) as an HTTP header through its environment, never
//! its command line. It clones into a hidden directory that becomes `<workdir>/<dir>` only when
//! complete: a clone that fails, runs out of time or grows past its size is removed, and the session
//! ends with the reason on the terminal.

use crate::pty::Program;
use edgeshell_core::repo::CloneLimits;
use edgeshell_core::secret::Secret;
use std::path::{Path, PathBuf};

/// What to clone, and how far it may go.
#[derive(Clone)]
pub struct Workspace {
    /// The `https://` URL (checked by the control plane and the agent).
    pub url: String,
    /// A branch or tag.
    pub git_ref: Option<String>,
    /// The directory under the work directory.
    pub dir: String,
    /// The HTTPS password (the user's Git token).
    pub token: Option<Secret>,
    /// Size and time.
    pub limits: CloneLimits,
    /// Extra PEM roots (tests).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("url", &self.url)
            .field("git_ref", &self.git_ref)
            .field("dir", &self.dir)
            .field("token", &self.token.as_ref().map(|_| "set"))
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// Where the clone is made, beside its final place in `workdir`.
    pub fn staging(&self, workdir: &Path) -> PathBuf {
        workdir.join(format!(".edgeshell-clone-{}", self.dir))
    }

    /// The clone as a program for the session's PTY: `program`'s user, limits, size and `PATH`.
    pub fn clone_program(&self, program: &Program) -> Program {
        let mut args: Vec<String> = [
            "-c",
            "protocol.allow=never",
            "-c",
            "protocol.https.allow=always",
            "-c",
            "http.followRedirects=false",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "credential.helper=",
            "-c",
            "advice.detachedHead=false",
            "clone",
            "--progress",
            "--no-recurse-submodules",
            "--single-branch",
        ]
        .map(String::from)
        .to_vec();
        if let Some(git_ref) = &self.git_ref {
            args.extend(["--branch".to_owned(), git_ref.clone()]);
        }
        args.extend(["--".to_owned(), self.url.clone(), self.staging(&program.cwd).to_string_lossy().into_owned()]);
        let keep = |name: &str| program.env.iter().find(|(k, _)| k == name).cloned();
        let mut env: Vec<(String, String)> = ["PATH", "HOME", "TERM", "LANG"].iter().filter_map(|n| keep(n)).collect();
        env.extend(
            [("GIT_TERMINAL_PROMPT", "0"), ("GIT_CONFIG_NOSYSTEM", "1"), ("GIT_CONFIG_GLOBAL", "/dev/null")]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        if let Some(token) = &self.token {
            let basic = base64_standard(format!("x-access-token:{}", token.expose()).as_bytes());
            env.extend([
                ("GIT_CONFIG_COUNT".to_owned(), "1".to_owned()),
                ("GIT_CONFIG_KEY_0".to_owned(), "http.extraHeader".to_owned()),
                ("GIT_CONFIG_VALUE_0".to_owned(), format!("Authorization: Basic {basic}")),
            ]);
        }
        if let Some(ca) = &self.ca_file {
            env.push(("GIT_SSL_CAINFO".to_owned(), ca.to_string_lossy().into_owned()));
        }
        Program { command: "git".to_owned(), args, env, ..program.clone() }
    }

    /// A complete clone takes its place; answers it (the program's working directory).
    pub fn finish(&self, workdir: &Path) -> std::io::Result<PathBuf> {
        let dest = workdir.join(&self.dir);
        if dest.symlink_metadata().is_ok() {
            return Err(std::io::Error::other(format!("{} exists already", dest.display())));
        }
        std::fs::rename(self.staging(workdir), &dest)?;
        Ok(dest)
    }

    /// Removes what a failed clone left.
    pub fn discard(&self, workdir: &Path) {
        let _ = std::fs::remove_dir_all(self.staging(workdir));
    }

    /// The bytes the clone takes so far (files as their length; links and directories not followed).
    pub fn size(&self, workdir: &Path) -> u64 {
        fn walk(dir: &Path, total: &mut u64) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    walk(&entry.path(), total);
                } else {
                    *total += meta.len();
                }
            }
        }
        let mut total = 0;
        walk(&self.staging(workdir), &mut total);
        total
    }
}

/// Standard base64 with padding (HTTP basic credentials).
fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A line for the terminal, from the runner rather than the program.
pub fn notice(text: &str) -> Vec<u8> {
    format!("\r\n\x1b[1medgeshell:\x1b[0m {text}\r\n").into_bytes()
}

//! `edgeshell-files`, the session's command for files out:
//!
//! ```text
//! edgeshell-files put [--replace] [--as NAME] PATH...
//! ```
//!
//! Each file is opened here, as the session's user, and streamed through the runner's socket
//! (`EDGESHELL_FILES_SOCKET`) to the session's artifacts, named after its file name (or `NAME`). An
//! artifact already stored under that name is replaced only with `--replace`. Prints one line per
//! file (its name, size and SHA-256); the exit code is 1 if any file was not stored, 2 for a command
//! line that does not parse.

use clap::{Parser, Subcommand};
use edgeshell_core::artifacts::ArtifactPath;
use edgeshell_core::files::{PutReply, PutRequest};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The variable naming the runner's socket.
pub const SOCKET_VAR: &str = "EDGESHELL_FILES_SOCKET";

/// Files out of an edgeshell session: uploaded as the session's artifacts, which its owner downloads
/// from the page.
#[derive(Parser, Debug)]
#[command(name = "edgeshell-files", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Uploads files as artifacts of this session (the files in ~/outbox are uploaded by themselves).
    Put {
        /// Replace an artifact stored under the same name.
        #[arg(long)]
        replace: bool,
        /// The artifact's name (one file only): a relative path such as `results/run-1.csv`.
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
        /// The files.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
    },
}

/// Runs the command line `args` (without the program name); returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(std::iter::once("edgeshell-files".to_owned()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let Task::Put { replace, name, paths } = cli.task;
    if name.is_some() && paths.len() != 1 {
        eprintln!("edgeshell-files: --as names one file; give one PATH");
        return 2;
    }
    let Some(socket) = std::env::var_os(SOCKET_VAR) else {
        eprintln!("edgeshell-files: {SOCKET_VAR} is not set: run this inside an edgeshell session");
        return 1;
    };
    let mut failed = false;
    for path in &paths {
        match put(Path::new(&socket), Path::new(path), name.as_deref(), replace) {
            Ok(PutReply::Stored { path: stored, size, sha256 }) => {
                // What was stored is the command's output (a script may read it); the rest is stderr.
                let _ = writeln!(std::io::stdout().lock(), "{stored}: {size} bytes, sha256 {sha256}");
            }
            Ok(PutReply::Refused { code, message }) => {
                eprintln!("edgeshell-files: {path}: {message} ({code})");
                failed = true;
            }
            Err(e) => {
                eprintln!("edgeshell-files: {path}: {e}");
                failed = true;
            }
        }
    }
    i32::from(failed)
}

/// Uploads one file through the runner's socket.
pub fn put(socket: &Path, file: &Path, name: Option<&str>, replace: bool) -> anyhow::Result<PutReply> {
    let opened = std::fs::File::open(file)?;
    let meta = opened.metadata()?;
    if !meta.is_file() {
        anyhow::bail!("not a regular file (a directory can be archived first, e.g. with tar)");
    }
    let name = match name {
        Some(name) => name.to_owned(),
        None => file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow::anyhow!("its file name is not UTF-8; name it with --as"))?
            .to_owned(),
    };
    let path = ArtifactPath::new(&name).map_err(|e| anyhow::anyhow!("{e}; name it with --as"))?;
    let request = PutRequest { path: path.as_str().to_owned(), size: meta.len(), replace };
    let mut stream = UnixStream::connect(socket)
        .map_err(|e| anyhow::anyhow!("the session's runner cannot be reached at {}: {e}", socket.display()))?;
    let sent = stream
        .write_all(&request.line())
        .and_then(|()| std::io::copy(&mut std::io::Read::take(opened, meta.len()), &mut stream));
    // Nothing more comes: a file that shrank ends its upload short, which the runner reports.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // The runner may answer before it has read everything (a refusal): its answer says why.
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    if line.is_empty() {
        sent?;
        anyhow::bail!("the runner closed the connection without an answer");
    }
    if let Ok(sent) = sent {
        if sent != meta.len() {
            anyhow::bail!("the file shrank while it was read ({sent} of {} bytes)", meta.len());
        }
    }
    serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("the runner's answer is unreadable ({e}): {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_parses_as_documented() {
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("edgeshell-files").chain(args.iter().copied()));
        let Task::Put { replace, name, paths } = parse(&["put", "--replace", "--as", "r/x.csv", "x.csv"]).unwrap().task;
        assert!(replace);
        assert_eq!((name.as_deref(), paths), (Some("r/x.csv"), vec!["x.csv".to_owned()]));
        assert!(parse(&["put"]).is_err(), "a file is required");
        assert_eq!(main(vec!["put".into(), "--as".into(), "n".into(), "a".into(), "b".into()]), 2);
        assert_eq!(main(vec!["bogus".into()]), 2);
    }
}

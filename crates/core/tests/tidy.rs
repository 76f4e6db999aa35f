//! Tidy checks over the source tree: the core stays I/O-free (no clock, environment, randomness,
//! files, sockets, threads or processes, and only allowlisted dependencies), every Rust file opens with a
//! `//!` line saying what it is for, and no file grows past 600 lines.

mod support;

use std::path::Path;
use support::{rust_files, workspace};

/// Text that means the core would be doing I/O or reading ambient state.
const FORBIDDEN_IN_CORE: [&str; 14] = [
    "std::fs",
    "std::net",
    "std::env",
    "std::thread",
    "std::process",
    "SystemTime",
    "Instant::now",
    "getrandom",
    "rand::",
    "OsRng",
    "tokio",
    "println!",
    "eprintln!",
    "std::io::std",
];

#[test]
fn core_source_does_no_io() {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 10);
    let mut offences = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN_IN_CORE {
                if code.contains(word) {
                    offences.push(format!("{}:{}: {word}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(offences.is_empty(), "the core must stay I/O-free:\n{}", offences.join("\n"));
}

#[test]
fn core_dependencies_are_allowlisted() {
    const ALLOWED: [&str; 8] = ["serde", "serde_json", "base64", "sha2", "subtle", "thiserror", "postcard", "aes-gcm"];
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    for line in deps.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name = line.split(['=', '.', ' ']).next().unwrap();
        assert!(ALLOWED.contains(&name), "core dependency {name:?} is not allowlisted; the core must not pull in I/O");
    }
}

#[test]
fn every_rust_file_says_what_it_is_for() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "edge-gateway", "functions", "runner-image"] {
        if root.join(dir).exists() {
            rust_files(&root.join(dir), &mut files);
        }
    }
    let mut missing = Vec::new();
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.trim_start().starts_with("//!") {
            missing.push(file.display().to_string());
        }
        if text.lines().count() > 600 {
            long.push(format!("{} ({} lines)", file.display(), text.lines().count()));
        }
    }
    assert!(missing.is_empty(), "files without a //! line:\n{}", missing.join("\n"));
    assert!(long.is_empty(), "files past 600 lines; split them:\n{}", long.join("\n"));
}

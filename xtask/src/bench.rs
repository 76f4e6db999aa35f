//! `cargo xtask bench`: runs the criterion benchmarks and prints each group's figures as ratios to a
//! baseline measured in the same run, because absolute times on shared machines are noise.

use crate::run::{cargo, root, Step};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// (group directory, baseline benchmark, other benchmarks) as criterion writes them.
const TABLES: [(&str, &str, &[&str]); 3] = [
    ("rs256_2048", "verify_ring", &["verify_jwt_compact_rsa", "sign_ring"]),
    (
        "frame",
        "decode_ack",
        &[
            "encode_output/64",
            "decode_output/64",
            "encode_output/4096",
            "decode_output/4096",
            "encode_output/32768",
            "decode_output/32768",
        ],
    ),
    ("pool_room", "start_and_stop/100", &["start_and_stop/10000"]),
];

/// The groups `cargo xtask bench [group]` can run on their own.
const GROUPS: [&str; 6] = ["criterion", "control", "runners", "edge", "files", "render"];

pub(crate) fn run(only: Option<&str>) -> Result<()> {
    match only {
        None => {
            criterion()?;
            control()?;
            runners()?;
            edge()?;
            files()?;
            render()
        }
        Some("criterion") => criterion(),
        Some("control") => control(),
        Some("runners") => runners(),
        Some("edge") => edge(),
        Some("files") => files(),
        Some("render") => render(),
        Some(other) => anyhow::bail!("no benchmark group {other:?}; the groups are {}", GROUPS.join(", ")),
    }
}

/// The micro-benchmarks (signing, frame codec, the pool room's cost per command), summarized as ratios to their baselines.
fn criterion() -> Result<()> {
    for (package, bench) in [("edgeshell-keys", "rs256"), ("edgeshell-core", "frames"), ("edgeshell-core", "pool_room")]
    {
        let args = ["bench", "-p", package, "--bench", bench, "--", "--warm-up-time", "1", "--measurement-time", "3"];
        Step::new("criterion benchmarks", cargo(&args)).run()?;
    }
    let dir = criterion_dir();
    println!("\n{:<34} {:>14} {:>10}", "benchmark", "mean", "ratio");
    for (group, baseline, others) in TABLES {
        let base = mean_ns(&dir, group, baseline)?;
        println!("{:<34} {:>11.0} ns {:>9.2}x  (baseline)", format!("{group}/{baseline}"), base, 1.0);
        for name in others {
            let mean = mean_ns(&dir, group, name)?;
            println!("{:<34} {:>11.0} ns {:>9.2}x", format!("{group}/{name}"), mean, mean / base);
        }
    }
    Ok(())
}

/// The control plane under load: real components in the host, Postgres, the dev issuer (prints its own
/// table, ratios to a trivial component request measured in the same run).
fn control() -> Result<()> {
    crate::run::build_functions().run()?;
    let mut bench = cargo(&["bench", "-p", "edgeshell-spin-host", "--bench", "control"]);
    bench.env("EDGESHELL_WASM_DIR", crate::run::functions_wasm_dir());
    Step::new("control plane benchmarks", bench).run()
}

/// Runner start latency, output throughput and idle memory with the local backend (prints its own
/// table, ratios to a bare PTY measured in the same run).
fn runners() -> Result<()> {
    Step::new("runner benchmarks", cargo(&["bench", "-p", "edgeshell-pool-agent", "--bench", "runners"])).run()
}

/// Echo, throughput and attach through the edge gateway under `wrangler dev`, with and without
/// hibernation, against the native room (prints its own table).
fn edge() -> Result<()> {
    let tools = crate::edge::tools()?;
    crate::edge::build(&tools)?;
    // The bench starts pool agents from the release profile's directory.
    Step::new("pool agent (release)", cargo(&["build", "--release", "-p", "edgeshell-pool-agent"])).run()?;
    let mut bench = cargo(&["bench", "-p", "edgeshell-e2e", "--bench", "edge"]);
    bench.env("EDGESHELL_WASM_DIR", crate::run::functions_wasm_dir());
    crate::edge::test_env(&tools, &mut bench);
    Step::new("edge gateway benchmarks", bench).run()
}

/// Upload and download throughput of a 100 MB file through the edge against a direct loopback copy, and
/// a runner's memory while it uploads 1 GB (prints its own table).
fn files() -> Result<()> {
    let tools = crate::edge::tools()?;
    crate::edge::build(&tools)?;
    crate::run::build_functions().run()?;
    // The bench starts pool agents (and offers edgeshell-files) from the release profile's directory.
    Step::new(
        "session binaries (release)",
        cargo(&["build", "--release", "-p", "edgeshell-pool-agent", "-p", "edgeshell-runner"]),
    )
    .run()?;
    let mut bench = cargo(&["bench", "-p", "edgeshell-e2e", "--bench", "files"]);
    bench.env("EDGESHELL_WASM_DIR", crate::run::functions_wasm_dir());
    crate::edge::test_env(&tools, &mut bench);
    Step::new("files benchmark", bench).run()
}

/// Render throughput of the web client's terminal in Chromium, WebGL against DOM renderer, 50 MiB per
/// run (`edge-gateway/web/bench/render.mjs` prints its own table, ratios to the DOM renderer; Chromium
/// from the `CHROMIUM` setting, as the browser test).
fn render() -> Result<()> {
    let tools = crate::edge::tools()?;
    let gateway = root().join("edge-gateway");
    let mut bench = Command::new(tools.node_bin.join("node"));
    bench.arg(gateway.join("web/bench/render.mjs")).args(["--mb", "50", "--rounds", "3"]).current_dir(&gateway);
    Step::new("render benchmark (Chromium)", bench).run()
}

fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target")).join("criterion")
}

/// The mean estimate criterion recorded for `group/name`, in nanoseconds.
fn mean_ns(dir: &std::path::Path, group: &str, name: &str) -> Result<f64> {
    let path = dir.join(group).join(name).join("new").join("estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let key = "\"mean\":{\"confidence_interval\":";
    let at = text.find(key).context("no mean in estimates")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":").context("no point estimate")? + "\"point_estimate\":".len();
    let num: String =
        rest[p..].chars().take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')).collect();
    num.parse().with_context(|| format!("parsing {num:?}"))
}

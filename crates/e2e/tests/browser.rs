//! The web client end to end in headless Chromium: `edge-gateway/web/tests/e2e.mjs` (playwright-core
//! driving Debian's `chromium`) signs in with the dev issuer, starts sessions, types, resizes, runs the
//! sample CLI, is cut off in the middle of a long output, and loses its region, while other tabs stay
//! attached for 6 minutes on 2-minute ID tokens, renewing their sign-in; this harness starts the whole
//! stack with two regions, answers the script's requests to stop and restart a region, checks that no
//! refresh token was ever used twice, and reports the figures the script prints. The render benchmark
//! (`edge-gateway/web/bench/render.mjs`) then runs once, small.

use edgeshell_e2e::{Stack, StackOptions};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(edgeshell_stack::dev_setting("CHROMIUM").expect("CHROMIUM has a default"));
    path.exists().then_some(path)
}

/// Where the screenshot of a live session goes: the target directory's `tmp/`.
fn screenshot() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| edgeshell_stack::paths::repo_root().join("target"));
    target.join("tmp/edgeshell-live-session.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the whole local stack: cargo xtask test"]
async fn the_web_client_in_chromium() {
    let Some(chromium) = chromium() else {
        panic!("Debian's chromium is required: apt-get install chromium (scripts/prerequisites.sh --ci does)");
    };
    // A Git server for the workspace step, and a template that clones from it.
    let widget: &[(&str, &[u8])] = &[("README.md", b"hello from the widget repository\n")];
    let git = edgeshell_stack::GitServer::start(&[("widget", widget, false)]).await.expect("the Git server starts");
    let mut templates: serde_json::Value = serde_json::from_str(edgeshell_e2e::DEV_TEMPLATES).unwrap();
    templates["templates"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "shell-in-a-repository", "title": "Shell in a repository", "command": "/bin/sh",
        "description": "A shell in a clone of your repository.", "repo_hosts": [git.host()],
    }));
    let options = StackOptions {
        templates: Some(templates.to_string()),
        agent_env: vec![("EDGESHELL_GIT_CA_FILE".into(), git.ca_file.to_string_lossy().into_owned())],
        regions: vec!["eu".into(), "us".into()],
        // Attach tokens of 65 s: the room asks for a refresh after 5 s, so the page's refresh runs here.
        control_vars: vec![("ATTACH_TOKEN_SECS", "65".into())],
        // As in production (and `cargo xtask dev`): every token the page gets is signed at the signer.
        signer: true,
        ..StackOptions::default()
    };
    let mut stack = Stack::start(options).await.expect("the stack starts");
    // Sessions outlive their ID tokens only if the page renews its sign-in: 2-minute tokens prove it.
    stack.control.issuer.set_id_token_secs(120);
    let root = edgeshell_stack::paths::repo_root();
    // The agent offers the built sample CLI to every session, on its PATH (a session's own user cannot
    // reach the build's directory).
    edgeshell_stack::paths::workspace_bin("edgeshell-sample-cli").expect("the sample CLI is built");
    let sample_cli = "edgeshell-sample-cli";
    std::fs::create_dir_all(screenshot().parent().unwrap()).unwrap();
    let mut script = tokio::process::Command::new(edgeshell_stack::paths::node_bin_dir().join("node"))
        .arg(root.join("edge-gateway/web/tests/e2e.mjs"))
        .current_dir(root.join("edge-gateway"))
        .env("EDGESHELL_URL", &stack.edge.url)
        .env("EDGESHELL_SAMPLE_CLI", sample_cli)
        .env("EDGESHELL_GIT_URL", git.url("widget"))
        .env("EDGESHELL_SCREENSHOT", screenshot())
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut stdin = script.stdin.take().unwrap();
    let mut lines = BufReader::new(script.stdout.take().unwrap()).lines();
    let mut done = false;
    let mut steps = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.expect("the script's output") {
            eprintln!("browser: {line}");
            let message: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
            if let Some(need) = message["need"].as_str() {
                let region = message["region"].as_str().unwrap_or_default().to_owned();
                let answer = match need {
                    "stop-region" => stack.stop_region(&region).await.map(|_| ()),
                    "start-region" => stack.start_region(&region).await,
                    other => Err(anyhow::anyhow!("unknown request {other}")),
                };
                let reply = match answer {
                    Ok(()) => serde_json::json!({ "ok": true }),
                    Err(e) => serde_json::json!({ "ok": false, "error": e.to_string() }),
                };
                stdin.write_all(format!("{reply}\n").as_bytes()).await.unwrap();
            }
            if let Some(step) = message["step"].as_str() {
                steps.push(step.to_owned());
            }
            if let Some(error) = message["error"].as_str() {
                panic!("the browser test failed: {error}");
            }
            done |= message["done"] == true;
        }
    };
    tokio::time::timeout(Duration::from_secs(720), run).await.expect("the browser test ends within 12 minutes");
    let status = script.wait().await.unwrap();
    assert!(status.success() && done, "the script ended with {status} after {steps:?}");
    for expected in [
        "sign in with the dev issuer",
        "firebase sign-in loaded on demand",
        "start sessions",
        "sign-in renewed silently for 6 minutes",
        "echo hello",
        "token refreshed in band",
        "reload continues at the exact byte",
        "a fresh attach shows the right screen",
        "lifetime: countdown, extend, end reasons",
        "copy and paste",
        "terminal features: OSC 52, keys, widths, search, bell, renderers",
        "a phone: extra keys, touch scrolling and a toolbar that fits",
        "keyboard only: the toolbar, the settings, visible focus",
        "Alt as Meta, a setting (on a Mac)",
        "artifacts listed and downloaded",
        "the page policy holds",
        "sample CLI progress",
        "resize follows stty size",
        "cut in the middle, shown exactly once",
        "region lost, new session elsewhere",
    ] {
        assert!(steps.iter().any(|s| s == expected), "step {expected:?} did not run: {steps:?}");
    }
    // Every tab renewed with a fresh refresh token: none was presented twice (which revokes a sign-in).
    let (refreshed, reused) = stack.control.issuer.refreshes();
    assert!(refreshed >= 5 && reused == 0, "refresh grants {refreshed}, refresh tokens reused {reused}");
    assert!(screenshot().exists(), "no screenshot at {}", screenshot().display());
    for shot in ["edgeshell-live-session-fresh-attach.png", "edgeshell-live-session-phone.png"] {
        let path = screenshot().with_file_name(shot);
        assert!(path.exists(), "no screenshot at {}", path.display());
    }
    // Sessions (4 tokens each), refreshes and artifact links: all signed at the signer.
    let signed = stack.control.signer.as_ref().map_or(0, |s| s.signed());
    assert!(signed >= 4 * 7, "tokens signed at the signer: {signed}");
    drop(stack);
    render_benchmark_once(chromium).await;
}

/// The render benchmark (`cargo xtask bench render`) once and small, after the browser test (not beside
/// it: both are heavy on 2 cores), so it keeps working: the script exits non-zero unless both renderers
/// drew a MiB of output to its end.
async fn render_benchmark_once(chromium: PathBuf) {
    let root = edgeshell_stack::paths::repo_root();
    let run = tokio::process::Command::new(edgeshell_stack::paths::node_bin_dir().join("node"))
        .arg(root.join("edge-gateway/web/bench/render.mjs"))
        .args(["--mb", "1", "--rounds", "1"])
        .current_dir(root.join("edge-gateway"))
        .env("CHROMIUM", chromium)
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(180), run).await.expect("within 3 minutes").expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the render benchmark failed");
    let table = stdout
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok().filter(|v| v["table"].is_array()));
    let rows = table.expect("a table")["table"].as_array().cloned().unwrap_or_default();
    assert!(rows.len() == 2 && rows.iter().all(|r| r["mbps"].as_f64() > Some(0.0)), "{rows:?}");
}

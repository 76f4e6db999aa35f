//! `edgeshell-dev`, what `cargo xtask dev` runs: it brings the whole stack up (two regions), serves the
//! page and the API on the edge's port, and on Ctrl-C (SIGINT) stops every piece: no process it
//! started survives it, and its private Postgres no longer answers.

use edgeshell_core::protocol::Credential;
use edgeshell_room_host::browser::Browser;
use edgeshell_runner::process_tree::{self, ProcStat};
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Every process whose parent chain leads to `root` (a pid with its start time names one process).
fn descendants(root: i32) -> Vec<ProcStat> {
    let all: Vec<ProcStat> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(process_tree::stat)
        .collect();
    let mut found = BTreeSet::from([root]);
    loop {
        let before = found.len();
        found.extend(all.iter().filter(|p| found.contains(&p.ppid)).map(|p| p.pid).collect::<Vec<_>>());
        if found.len() == before {
            break;
        }
    }
    all.into_iter().filter(|p| p.pid != root && found.contains(&p.pid)).collect()
}

/// The same process still runs (not exited, not a zombie, not a reused pid).
fn alive(p: &ProcStat) -> bool {
    process_tree::stat(p.pid).is_some_and(|now| now.start_time == p.start_time) && !process_tree::is_zombie(p.pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole local stack: cargo xtask test"]
async fn the_dev_stack_comes_up_and_ctrl_c_leaves_nothing_behind() {
    let bin = edgeshell_stack::paths::workspace_bin("edgeshell-dev").expect("edgeshell-dev is built");
    let port = edgeshell_stack::EdgeGateway::free_port().unwrap();
    let mut dev = tokio::process::Command::new(bin)
        .env("EDGESHELL_DEV_PORT", port.to_string())
        // Its default session program, as a person gets it.
        .env_remove("EDGESHELL_SESSION_COMMAND")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = dev.id().unwrap() as i32;
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut database = None;
    let mut issuer = None;
    let up = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.trim().strip_prefix("database  ") {
                database = Some(url.to_owned());
            }
            if let Some(url) = line.trim().strip_prefix("issuer    ") {
                issuer = Some(url.to_owned());
            }
            if line.contains("Ctrl-C stops everything") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(up.ok(), Some(true), "edgeshell-dev printed its addresses");
    let database = database.expect("the database URL is printed");

    let http = reqwest::Client::new();
    let page = http.get(format!("http://127.0.0.1:{port}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(page.text().await.unwrap().contains("/app.js"), "the web client is served");
    let config: serde_json::Value =
        http.get(format!("http://127.0.0.1:{port}/client-config.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["oidc"]["client_id"], "edgeshell-dev");
    assert_eq!(config["firebase"], serde_json::Value::Null, "the dev stack signs in with its own issuer");
    let mut regions = Vec::new();
    for _ in 0..100 {
        let body: serde_json::Value =
            http.get(format!("http://127.0.0.1:{port}/api/regions")).send().await.unwrap().json().await.unwrap();
        regions = body["regions"].as_array().cloned().unwrap_or_default();
        if regions.iter().filter(|r| r["available"] == true).count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: BTreeSet<_> = regions.iter().filter_map(|r| r["region"].as_str()).collect();
    assert_eq!(names, BTreeSet::from(["eu", "us"]), "two local regions: {regions:?}");

    // A person's session: what the README promises runs by name, and the quotas are the documented
    // ones (5 live sessions), not a test's.
    let issuer = issuer.expect("the issuer is printed");
    // The page signs in at that issuer with the code flow, asks for refresh tokens, and may call it.
    assert_eq!(config["oidc"]["issuer"].as_str(), Some(issuer.trim_end_matches('/')));
    assert!(config["oidc"]["scope"].as_str().is_some_and(|s| s.contains("offline_access")), "{config}");
    assert!(policy.contains(&format!("connect-src 'self' {}", issuer.trim_end_matches('/'))), "{policy}");
    let token: serde_json::Value = http
        .post(format!("{issuer}/token"))
        .json(&serde_json::json!({ "user": "dev-stack" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["id_token"].as_str().unwrap());
    let mint = || async {
        let answer = http.post(format!("http://127.0.0.1:{port}/api/sessions")).header("authorization", &bearer);
        let answer = answer.json(&serde_json::json!({})).send().await.unwrap();
        (answer.status().as_u16(), answer.json::<serde_json::Value>().await.unwrap())
    };
    let (status, first) = mint().await;
    assert_eq!(status, 201, "{first}");
    let credential = Credential::Token(first["token"].as_str().unwrap().to_owned());
    let mut browser = Browser::attach(first["ws_url"].as_str().unwrap(), &credential).await.unwrap();
    browser.input(b"command -v edgeshell-sample-cli || echo NOT-$((1+1))-FOUND\n").await;
    let at = browser.expect_from(0, "/edgeshell-sample-cli\r\n", Duration::from_secs(20)).await;
    assert!(!String::from_utf8_lossy(&browser.output[..at]).contains("NOT-2-FOUND"));
    for _ in 1..5 {
        assert_eq!(mint().await.0, 201);
    }
    let (status, refused) = mint().await;
    assert_eq!((status, refused["error"]["code"].as_str()), (429, Some("quota_exceeded")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("5 sessions"), "{refused}");
    drop(browser);

    let started = descendants(pid);
    assert!(started.len() >= 3, "wrangler, workerd and two agents run under it: {started:?}");
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), rustix::process::Signal::INT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), dev.wait()).await.expect("it stops").unwrap();
    assert!(status.success(), "a clean exit on Ctrl-C: {status}");
    // Give the kernel a moment to reap.
    let mut left: Vec<ProcStat> = started.iter().copied().filter(alive).collect();
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left.retain(alive);
    }
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let connect = tokio_postgres::connect(&database, tokio_postgres::NoTls).await;
    assert!(connect.is_err(), "the private Postgres was stopped");
    let edge = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(edge.is_err(), "nothing listens on the edge's port");
}

//! The agent runs a session's template from its own catalogue (`EDGESHELL_POOL_TEMPLATES`): the
//! template's command, limits and the user's variables reach the program; a template the pool does
//! not offer, or a variable the template does not allow, is refused before anything runs. A session's
//! repository, served by a real Git server over HTTPS, is cloned before the program starts, which
//! starts in it; a clone that fails or grows too large ends the session with the reason on its
//! terminal and leaves nothing.

mod support;

use edgeshell_core::api_error::{ApiError, ErrorCode};
use edgeshell_core::protocol::Credential;
use edgeshell_room_host::browser::Browser;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

const CATALOGUE: &str = r#"{"templates": [
    {"name": "greeter", "title": "Greeter", "command": "/bin/sh", "memory_mb": 512, "env": ["GREETING"]},
    {"name": "elsewhere", "title": "Only in us", "regions": ["us"]}
]}"#;

#[tokio::test]
async fn a_template_runs_with_its_limits_and_the_users_variables_and_nothing_else_starts() {
    let fixture = Fixture::start().await;
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("templates.json");
    std::fs::write(&file, CATALOGUE).unwrap();
    let agent = spawn_agent(&fixture, state.path(), &[("EDGESHELL_POOL_TEMPLATES", file.to_str().unwrap())]).await;

    let start = |sid: &edgeshell_core::ids::SessionId, template: &str, env: &[(&str, &str)]| {
        let body = fixture.start_body_of(sid, fixture.join_token(sid), 600, template, env);
        let token = fixture.command_token(sid, &region(), &body);
        (token, body)
    };
    let refused = |(status, body): (u16, String), code: ErrorCode, needle: &str| {
        assert_eq!(status, 400, "{body}");
        let e = ApiError::from_body(body.as_bytes()).unwrap();
        assert_eq!(e.code, code, "{body}");
        assert!(e.message.contains(needle), "{body}");
    };
    for (template, env, code, needle) in [
        ("greeter", &[("GREETING", "hi"), ("SECRET_KEY", "x")][..], ErrorCode::BadEnv, "env.SECRET_KEY"),
        ("elsewhere", &[][..], ErrorCode::UnknownTemplate, "elsewhere"),
        ("nope", &[][..], ErrorCode::UnknownTemplate, "nope"),
    ] {
        let sid = new_session();
        let (token, body) = start(&sid, template, env);
        refused(fixture.submit(&token, body).await, code, needle);
    }
    assert!(fixture.runners(&agent).await.is_empty(), "a refused start leaves no runner");

    let sid = new_session();
    let (token, body) = start(&sid, "greeter", &[("GREETING", "hello from a template")]);
    let (status, body) = fixture.submit(&token, body).await;
    assert_eq!(status, 201, "{body}");
    let credential = Credential::Token(fixture.attach_token(&sid));
    let mut browser = Browser::attach(&fixture.room.attach_url(&sid), &credential).await.unwrap();
    browser.input(b"echo \"got=$GREETING\" mem=$(ulimit -v) shell=$0\n").await;
    browser.expect_from(0, "got=hello from a template", WAIT).await;
    browser.expect_from(0, &format!("mem={}", 512 * 1024), WAIT).await;
    browser.expect_from(0, "shell=/bin/sh", WAIT).await;
    assert_eq!(fixture.stop_runner(&agent, &sid).await.0, 200);
}

#[tokio::test]
async fn a_repository_is_cloned_first_and_a_failed_clone_ends_the_session_leaving_nothing() {
    let fixture = Fixture::start().await;
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let widget: &[(&str, &[u8])] = &[("README.md", b"hello from widget\n"), ("src/lib.rs", b"// lib\n")];
    let git = edgeshell_stack::GitServer::start(&[("widget", widget, false), ("big", &[("blob.bin", &big)], false)])
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("templates.json");
    let catalogue = serde_json::json!({"templates": [
        {"name": "code", "title": "Code", "command": "/bin/sh", "repo_hosts": [git.host()]},
        {"name": "plain", "title": "Plain", "command": "/bin/sh"},
    ]});
    std::fs::write(&file, catalogue.to_string()).unwrap();
    let settings = [
        ("EDGESHELL_POOL_TEMPLATES", file.to_str().unwrap()),
        ("EDGESHELL_GIT_CA_FILE", git.ca_file.to_str().unwrap()),
        ("EDGESHELL_REPO_MAX_MB", "1"),
    ];
    let agent = spawn_agent(&fixture, state.path(), &settings).await;
    let start = |template: &str, url: String, git_ref: Option<&str>| {
        let sid = new_session();
        let repo = edgeshell_core::repo::RepoRequest { url, git_ref: git_ref.map(Into::into) };
        let body = fixture.start_body_with_repo(&sid, fixture.join_token(&sid), 600, (template, &[]), Some(repo));
        let token = fixture.command_token(&sid, &region(), &body);
        (sid, token, body)
    };
    let attach = |sid: &edgeshell_core::ids::SessionId| {
        let credential = Credential::Token(fixture.attach_token(sid));
        let url = fixture.room.attach_url(sid);
        async move { Browser::attach(&url, &credential).await.unwrap() }
    };

    // Refused before anything runs: a host the template does not allow, a template that takes none.
    for (template, url, field) in
        [("code", "https://github.com/acme/widget.git".to_owned(), "repo.url"), ("plain", git.url("widget"), "repo")]
    {
        let (_, token, body) = start(template, url, None);
        let (status, answer) = fixture.submit(&token, body).await;
        let e = ApiError::from_body(answer.as_bytes()).unwrap();
        assert_eq!((status, e.code), (400, ErrorCode::BadRepo), "{answer}");
        assert!(e.message.starts_with(field), "{answer}");
    }

    // Cloned at its tag, and the program starts in it.
    let (sid, token, body) = start("code", git.url("widget"), Some("v1"));
    assert_eq!(fixture.submit(&token, body).await.0, 201);
    let mut browser = attach(&sid).await;
    browser.expect_from(0, "into ~/widget", WAIT).await;
    browser.input(b"echo \"at=$(pwd)\" \"left=$(ls -a .. | grep -c edgeshell-clone)\"; cat README.md\n").await;
    let workdir = state.path().join("work").join(sid.as_str());
    browser.expect_from(0, &format!("at={}/widget left=0", workdir.display()), WAIT).await;
    browser.expect_from(0, "hello from widget", WAIT).await;
    assert_eq!(fixture.stop_runner(&agent, &sid).await.0, 200);

    // A repository that is not there, a branch that is not there, one too large: the reason on the
    // terminal, the session over, nothing left.
    for (name, git_ref, reason) in [
        ("missing", None, "could not be cloned"),
        ("widget", Some("nope"), "could not be cloned"),
        ("big", None, "grew past 1 MiB"),
    ] {
        let (sid, token, body) = start("code", git.url(name), git_ref);
        assert_eq!(fixture.submit(&token, body).await.0, 201);
        let mut browser = attach(&sid).await;
        browser.expect_from(0, reason, WAIT).await;
        assert!(browser.expect_close(WAIT).await.is_some(), "{name}: the session ends");
        let workdir = state.path().join("work").join(sid.as_str());
        let until = std::time::Instant::now() + WAIT;
        while workdir.exists() && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!workdir.exists(), "{name}: the work directory is removed");
    }
    fixture.wait_for_runners(&agent, 0).await;
}

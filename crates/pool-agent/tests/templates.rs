//! The agent runs a session's template from its own catalogue (`EDGESHELL_POOL_TEMPLATES`): the
//! template's command, limits and the user's variables reach the program; a template the pool does
//! not offer, or a variable the template does not allow, is refused before anything runs.

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

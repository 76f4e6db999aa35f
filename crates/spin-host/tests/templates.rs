//! Templates through the real `sessions` and `pools` components, with a real Postgres: agents report
//! what they offer with their heartbeats (checked before it is stored), `GET /api/templates` lists it
//! with the regions offering each, and a mint names a template and its variables: an unknown template
//! or a variable the template does not allow is a 400 naming the field that leaves nothing behind, and
//! a session is placed only where its template is offered, its start carrying the template and the
//! variables to the pool.

use serde_json::json;
use support::pool::Mode;
use support::stack::Stack;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the built functions and PostgreSQL: cargo xtask test"]
async fn templates_are_listed_checked_and_placed_where_offered() {
    let stack = Stack::start("").await;
    let eu = stack.add_pool("eu", Mode::Accept).await;
    // us reports no templates: an agent from before them, which offers `default`.
    let us = stack.add_pool("us", Mode::Accept).await;
    let alice = stack.id_token("alice");
    let claude = json!({"name": "claude-code", "title": "Claude Code", "description": "Anthropic's agent",
                        "env": ["ANTHROPIC_MODEL"], "memory_mb": 2048, "repo_hosts": ["github.com"]});
    let default = json!({"name": "default", "title": "A shell"});
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;

    // A report the core would not accept is refused, and nothing of it is stored.
    let forged = json!([{"name": "evil", "title": "x", "env": ["LD_PRELOAD"]}]);
    let (status, body) = stack.heartbeat_offering(&eu, forged).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, body) = stack.heartbeat_offering(&eu, json!([claude, default])).await;
    assert_eq!(status, 200, "{body}");

    let (status, _) = stack.call("GET", "/api/templates", "", serde_json::Value::Null).await;
    assert_eq!(status, 401, "only a signed-in user sees the catalogue");
    let (status, listed) = stack.call("GET", "/api/templates", &alice, serde_json::Value::Null).await;
    assert_eq!(status, 200, "{listed}");
    let templates = listed["templates"].as_array().unwrap();
    let names: Vec<_> = templates.iter().map(|t| (t["name"].as_str().unwrap(), t["regions"].clone())).collect();
    assert_eq!(names, [("claude-code", json!(["eu"])), ("default", json!(["eu", "us"]))], "{listed}");
    assert_eq!(templates[0]["env"], json!(["ANTHROPIC_MODEL"]));
    assert_eq!(templates[0]["title"], "Claude Code");

    // Refusals name the field and leave no row.
    for (body, code, field) in [
        (
            json!({"template": "claude-code", "env": {"AWS_SECRET_ACCESS_KEY": "x"}}),
            "bad_env",
            "env.AWS_SECRET_ACCESS_KEY",
        ),
        (
            json!({"template": "claude-code", "env": {"ANTHROPIC_MODEL": "x".repeat(5000)}}),
            "bad_env",
            "env.ANTHROPIC_MODEL",
        ),
        (json!({"template": "gpt-agent"}), "unknown_template", "template"),
        (json!({"template": "claude-code", "repo": {"url": "https://gitlab.com/a/b"}}), "bad_repo", "repo.url"),
        (
            json!({"template": "claude-code", "repo": {"url": "https://github.com/a/b", "ref": "--upload-pack=x"}}),
            "bad_repo",
            "repo.ref",
        ),
        (json!({"template": "default", "repo": {"url": "https://github.com/a/b"}}), "bad_repo", "repo"),
        (json!({"template": 7}), "bad_request", "template"),
    ] {
        let (status, answer) = stack.mint(&alice, body.clone()).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some(code)), "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{answer}");
    }
    assert!(stack.sessions().await.is_empty(), "a refused mint leaves no row");
    assert!(eu.pool.started().is_empty() && us.pool.started().is_empty(), "and starts nothing");

    // Asked for us, placed in eu: only eu offers the template. The start carries it and the variables.
    let body = json!({"template": "claude-code", "env": {"ANTHROPIC_MODEL": "claude-opus-4"}, "region_hint": "us",
                      "repo": {"url": "https://github.com/acme/widget.git", "ref": "main"}});
    let (status, minted) = stack.mint(&alice, body).await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(minted["region"], "eu");
    let start = eu.pool.with_log(|l| l.starts[0].clone());
    assert_eq!(start.template, "claude-code");
    assert_eq!(start.env.get("ANTHROPIC_MODEL").map(String::as_str), Some("claude-opus-4"));
    let repo = start.repo.expect("the start carries the repository");
    assert_eq!((repo.url.as_str(), repo.git_ref.as_deref()), ("https://github.com/acme/widget.git", Some("main")));
    // Without a template: `default`, which us offers too.
    let (status, minted) = stack.mint(&alice, json!({"region_hint": "us"})).await;
    assert_eq!((status, minted["region"].as_str()), (201, Some("us")), "{minted}");
    assert_eq!(us.pool.with_log(|l| l.starts[0].template.clone()), "default");

    let (_, list) = stack.call("GET", "/api/sessions", &alice, serde_json::Value::Null).await;
    let mut templates: Vec<_> = list["sessions"].as_array().unwrap().iter().map(|s| s["template"].clone()).collect();
    templates.sort_by_key(|t| t.to_string());
    assert_eq!(templates, [json!("claude-code"), json!("default")]);
}

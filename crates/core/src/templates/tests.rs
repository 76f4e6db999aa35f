//! The catalogue's checks, the request checks and how regions' offers combine.

use super::*;

const CATALOGUE: &str = r#"{"templates": [
    {"name": "claude-code", "title": "Claude Code", "description": "Anthropic's agent",
     "command": "claude", "memory_mb": 2048, "env": ["ANTHROPIC_MODEL", "DEBUG"]},
    {"name": "shell", "title": "A shell", "regions": ["eu"]}
]}"#;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn region(name: &str) -> RegionId {
    RegionId::new(name).unwrap()
}

#[test]
fn a_catalogue_parses_and_offers_by_region() {
    let c = Catalogue::parse(CATALOGUE).unwrap();
    let names = |r: &str| c.offered_in(&region(r)).map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names("eu"), ["claude-code", "shell"]);
    assert_eq!(names("us"), ["claude-code"]);
    assert!(c.find(&region("us"), "shell").is_none());
    let offer = c.find(&region("eu"), "claude-code").unwrap().offer();
    assert_eq!((offer.title.as_str(), offer.memory_mb, offer.env.len()), ("Claude Code", Some(2048), 2));
    let json = serde_json::to_string(&offer).unwrap();
    assert!(!json.contains("claude\""), "the command is not public: {json}");
    assert_eq!(Catalogue::single(Some("bash".into())).templates[0].name, DEFAULT_TEMPLATE);
}

#[test]
fn a_catalogue_that_cannot_work_is_refused_with_the_template_named() {
    let bad = |json: &str, needle: &str| {
        let e = Catalogue::parse(json).unwrap_err().to_string();
        assert!(e.contains(needle), "{json}: {e}");
    };
    bad(r#"{"templates": []}"#, "1 to 64");
    bad(r#"{"templates": [{"name": "A b", "title": "x"}]}"#, "a-z");
    bad(r#"{"templates": [{"name": "a", "title": "x"}, {"name": "a", "title": "y"}]}"#, "declared twice");
    bad(r#"{"templates": [{"name": "a", "title": " "}]}"#, "title");
    bad(r#"{"templates": [{"name": "a", "title": "x", "env": ["PATH"]}]}"#, "PATH is set by the runner");
    bad(r#"{"templates": [{"name": "a", "title": "x", "env": ["LD_PRELOAD"]}]}"#, "loader");
    bad(r#"{"templates": [{"name": "a", "title": "x", "env": ["EDGESHELL_JOIN_TOKEN_FD"]}]}"#, "runner");
    bad(r#"{"templates": [{"name": "a", "title": "x", "env": ["1X"]}]}"#, "not a variable name");
    bad(r#"{"templates": [{"name": "a", "title": "x", "env": ["A", "A"]}]}"#, "twice");
    bad(r#"{"templates": [{"name": "a", "title": "x", "env": ["A"], "secrets": ["A"]}]}"#, "twice");
    bad(r#"{"templates": [{"name": "a", "title": "x", "secrets": ["HOME"]}]}"#, "HOME");
    bad(r#"{"templates": [{"name": "a", "title": "x", "memory_mb": 1}]}"#, "memory_mb");
    bad(r#"{"templates": [{"name": "a", "title": "x", "command": ""}]}"#, "empty command");
    bad(
        r#"{"templates": [{"name": "a", "title": "x", "bundle": {"url": "http://b/x.tar", "sha256": "00"}}]}"#,
        "https",
    );
    bad(r#"{"templates": [{"name": "a", "title": "x", "colour": "red"}]}"#, "unknown field");
    bad(r#"{"templates": [{"name": "a", "title": "x", "regions": ["EU"]}]}"#, "region");
}

#[test]
fn a_request_sets_only_the_variables_its_template_allows() {
    let c = Catalogue::parse(CATALOGUE).unwrap();
    let t = c.find(&region("eu"), "claude-code").unwrap();
    assert_eq!(t.check_env(&env(&[("ANTHROPIC_MODEL", "opus"), ("DEBUG", "")])), Ok(()));
    let e = t.check_env(&env(&[("AWS_SECRET", "x")])).unwrap_err();
    assert_eq!(e.field, "env.AWS_SECRET");
    assert!(e.why.contains("ANTHROPIC_MODEL, DEBUG"), "{e}");
    assert_eq!(e.to_api_error().code, crate::api_error::ErrorCode::BadEnv);
    let e = t.check_env(&env(&[("DEBUG", &"x".repeat(MAX_ENV_VALUE + 1))])).unwrap_err();
    assert_eq!(e.field, "env.DEBUG");
    assert!(t.check_env(&env(&[("DEBUG", "a\0b")])).is_err());
    let shell = c.find(&region("eu"), "shell").unwrap();
    assert!(shell.check_env(&env(&[("DEBUG", "1")])).unwrap_err().why.contains("allows: none"));
    // The whole is bounded too, whatever one template allows.
    let names: Vec<String> = (0..MAX_ENV_VARS).map(|i| format!("V{i}")).collect();
    let big: BTreeMap<String, String> = names.iter().map(|n| (n.clone(), "x".repeat(MAX_ENV_VALUE))).collect();
    assert_eq!(check_env("t", &names, &big).unwrap_err().field, "env");
}

#[test]
fn offers_combine_across_regions_and_resolve_to_the_regions_that_accept() {
    let c = Catalogue::parse(CATALOGUE).unwrap();
    let report = |r: &str| (region(r), c.offered_in(&region(r)).map(Template::offer).collect::<Vec<_>>());
    let mut narrower = report("ap");
    narrower.1[0].env = vec!["DEBUG".into()];
    let offers = Offers::new(vec![report("us"), report("eu"), narrower]);
    let listed = offers.list();
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[0].offer.name.as_str(), listed[0].regions.len()), ("claude-code", 3));
    assert_eq!(listed[1].regions, [region("eu")]);
    assert_eq!(offers.resolve("claude-code", &env(&[]), None).unwrap().len(), 3);
    assert_eq!(
        offers.resolve("claude-code", &env(&[("ANTHROPIC_MODEL", "x")]), None).unwrap(),
        [region("eu"), region("us")]
    );
    assert_eq!(offers.resolve("shell", &env(&[]), None).unwrap(), [region("eu")]);
    let e = offers.resolve("claude-code", &env(&[("NOPE", "x")]), None).unwrap_err();
    assert_eq!((e.field.as_str(), e.kind), ("env.NOPE", Refusal::BadEnv));
    let e = offers.resolve("gpt", &env(&[]), None).unwrap_err();
    assert_eq!((e.field.as_str(), e.kind), ("template", Refusal::UnknownTemplate));
    assert!(e.why.contains("offered: claude-code, shell"), "{e}");
    assert_eq!(e.to_api_error().code, crate::api_error::ErrorCode::UnknownTemplate);
    // Nothing offered anywhere: no region is up, which says nothing about the request.
    assert_eq!(Offers::default().resolve("x", &env(&[]), None).unwrap_err().kind, Refusal::Unavailable);
    // Known from agents no longer heard from: unavailable now (503), not a mistake (400).
    let down = Offers::default().with_stale(&[vec![], listed.iter().map(|l| l.offer.clone()).collect()]);
    for name in ["default", "shell"] {
        let e = down.resolve(name, &env(&[]), None).unwrap_err();
        assert_eq!(e.kind, Refusal::Unavailable, "{name}");
        assert_eq!(e.to_api_error().code, crate::api_error::ErrorCode::NoRegionAvailable);
    }
    let one_up = Offers::new(vec![report("us")]).with_stale(&[vec![]]);
    assert_eq!(one_up.resolve("default", &env(&[]), None).unwrap_err().kind, Refusal::Unavailable);
    assert_eq!(one_up.resolve("gpt", &env(&[]), None).unwrap_err().kind, Refusal::UnknownTemplate);
}

#[test]
fn reports_are_checked_and_a_region_offers_what_all_its_agents_offer() {
    let c = Catalogue::parse(CATALOGUE).unwrap();
    let all: Vec<TemplateOffer> = c.offered_in(&region("eu")).map(Template::offer).collect();
    assert!(all.iter().all(|o| o.check().is_ok()));
    let mut forged = all[0].clone();
    forged.env.push("LD_PRELOAD".into());
    assert!(forged.check().is_err());
    forged = TemplateOffer { title: "x".repeat(81), ..all[0].clone() };
    assert!(forged.check().is_err());
    let older = vec![all[0].clone()];
    assert_eq!(common_offers(&[all.clone(), older.clone()]), older);
    assert_eq!(common_offers(std::slice::from_ref(&all)), all);
    assert!(common_offers(&[]).is_empty());
    // An agent from before templates runs its session command: `default`.
    let legacy = common_offers(&[vec![]]);
    assert_eq!(legacy.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), [DEFAULT_TEMPLATE]);
    assert!(common_offers(&[all.clone(), vec![]]).is_empty(), "eu's catalogue has no default");
}

#[test]
fn a_repository_is_placed_only_where_its_template_takes_it_from_that_host() {
    let c = Catalogue::parse(
        r#"{"templates": [{"name": "code", "title": "Code", "repo_hosts": ["github.com"], "repo_token": "GIT_TOKEN"},
                          {"name": "plain", "title": "Plain"}]}"#,
    )
    .unwrap();
    let offers = Offers::new(vec![(region("eu"), c.offered_in(&region("eu")).map(Template::offer).collect())]);
    let repo = |url: &str| crate::repo::RepoRequest { url: url.into(), git_ref: None };
    assert_eq!(offers.resolve("code", &env(&[]), Some(&repo("https://github.com/a/b"))).unwrap(), [region("eu")]);
    let e = offers.resolve("code", &env(&[]), Some(&repo("https://gitlab.com/a/b"))).unwrap_err();
    assert_eq!((e.field.as_str(), e.kind), ("repo.url", Refusal::BadRepo));
    assert_eq!(e.to_api_error().code, crate::api_error::ErrorCode::BadRepo);
    let e = offers.resolve("plain", &env(&[]), Some(&repo("https://github.com/a/b"))).unwrap_err();
    assert_eq!(e.field, "repo");
    let bad =
        |json: &str, needle: &str| assert!(Catalogue::parse(json).unwrap_err().to_string().contains(needle), "{json}");
    bad(r#"{"templates": [{"name": "a", "title": "x", "repo_token": "T"}]}"#, "repo_token without repo_hosts");
    bad(r#"{"templates": [{"name": "a", "title": "x", "repo_hosts": ["GitHub.com"]}]}"#, "repo_hosts");
    bad(r#"{"templates": [{"name": "a", "title": "x", "repo_hosts": ["h"], "repo_token": "PATH"}]}"#, "PATH");
}

//! The reference documents are the code's own tables: `docs/configuration.md` holds the settings
//! catalogue and `docs/errors.md` the error table, each rendered by the core; `spin.toml` and
//! `wrangler.toml` declare the settings the catalogue lists, with its defaults; and no service writes an
//! error body by hand; ARCHITECTURE.md and docs/enforcement.md list the same rules, each with a test.
//! `EDGESHELL_BLESS=1 cargo test -p edgeshell-core --test reference_docs` rewrites
//! the generated tables after a change to the code.

// A test over the repository's files, not core code: it reads them and, blessed, rewrites the tables.
#![allow(clippy::disallowed_methods)]

use edgeshell_core::api_error;
use edgeshell_core::settings::{self, DefaultValue, Program};
use support::{rust_files, workspace};

mod support;

/// Checks (or, blessed, rewrites) the text between `<!-- begin NAME -->` and `<!-- end NAME -->`.
fn check_section(file: &str, name: &str, expected: &str) -> Result<(), String> {
    let path = workspace().join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
    let (begin, end) = (format!("<!-- begin {name} -->\n"), format!("<!-- end {name} -->"));
    let start = text.find(&begin).ok_or_else(|| format!("{file} has no `{}` marker", begin.trim()))? + begin.len();
    let stop = start + text[start..].find(&end).ok_or_else(|| format!("{file} has no `{end}` marker"))?;
    if &text[start..stop] == expected {
        return Ok(());
    }
    if std::env::var_os("EDGESHELL_BLESS").is_some() {
        std::fs::write(&path, format!("{}{expected}{}", &text[..start], &text[stop..])).unwrap();
        return Ok(());
    }
    Err(format!(
        "{file}: the `{name}` table differs from the code's; rewrite it with \
         `EDGESHELL_BLESS=1 cargo test -p edgeshell-core --test reference_docs`\n--- expected\n{expected}--- found\n{}",
        &text[start..stop]
    ))
}

#[test]
fn the_configuration_reference_is_the_catalogue() {
    let failures: Vec<String> = settings::ALL
        .iter()
        .filter_map(|p| check_section("docs/configuration.md", p.name(), &settings::render_markdown(*p)).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_error_reference_is_the_table() {
    check_section("docs/errors.md", "errors", &api_error::render_markdown()).unwrap();
}

#[test]
fn spin_toml_declares_the_functions_settings_with_their_defaults() {
    let manifest: toml::Table = std::fs::read_to_string(workspace().join("spin.toml")).unwrap().parse().unwrap();
    let declared = manifest["variables"].as_table().unwrap();
    let catalogue = Program::Functions.settings();
    for setting in catalogue {
        let entry = declared.get(setting.name).unwrap_or_else(|| panic!("spin.toml does not declare {}", setting.name));
        let entry = entry.as_table().unwrap();
        let default = entry.get("default").and_then(|d| d.as_str());
        match setting.default {
            DefaultValue::Required => {
                assert_eq!(entry.get("required").and_then(|r| r.as_bool()), Some(true), "{}", setting.name)
            }
            DefaultValue::Text(text) => assert_eq!(default, Some(text), "{}'s default", setting.name),
            DefaultValue::Number(n) => assert_eq!(default, Some(n.to_string().as_str()), "{}'s default", setting.name),
            DefaultValue::Unset | DefaultValue::Derived(_) => {
                panic!("{}: Spin variables have a default or are required", setting.name)
            }
        }
        assert_eq!(
            entry.get("secret").and_then(|s| s.as_bool()).unwrap_or(false),
            setting.secret,
            "{} secret",
            setting.name
        );
    }
    for name in declared.keys() {
        assert!(catalogue.iter().any(|s| s.name == name), "spin.toml declares {name}, which the catalogue lacks");
    }
}

#[test]
fn wrangler_toml_sets_only_edge_settings_and_documents_the_room_defaults() {
    let text = std::fs::read_to_string(workspace().join("wrangler.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    let catalogue = Program::Edge.settings();
    for name in manifest["vars"].as_table().unwrap().keys() {
        assert!(catalogue.iter().any(|s| s.name == name), "wrangler.toml sets {name}, which the catalogue lacks");
    }
    // The commented-out room timers show the defaults the Worker falls back to.
    for setting in catalogue.iter().filter(|s| s.name.starts_with("ROOM_")) {
        if let DefaultValue::Number(n) = setting.default {
            let line = format!("# {} = \"{n}\"", setting.name);
            assert!(text.contains(&line), "wrangler.toml should show `{line}`");
        }
    }
}

#[test]
fn no_service_writes_an_error_body_by_hand() {
    // Error bodies are `ApiError::body()`; these are the shapes a hand-written one takes.
    const HAND_MADE: [&str; 6] = [
        r#""error": {"#,
        r#""error":{"#,
        r#"{ "error": code"#,
        r#"json!({ "error": {"#,
        // The same, written inside a string literal.
        r#"\"error\":{"#,
        r#"\"error\": {"#,
    ];
    let mut offences = Vec::new();
    for dir in ["crates", "functions", "edge-gateway/src", "xtask"] {
        let mut files = Vec::new();
        rust_files(&workspace().join(dir), &mut files);
        for file in files {
            // The table itself, and tests that check bodies, may spell the shape out.
            let path = file.to_string_lossy();
            if path.ends_with("core/src/api_error.rs") || path.contains("/tests/") || path.contains("/benches/") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                if HAND_MADE.iter().any(|shape| code.contains(shape)) {
                    offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(offences.is_empty(), "error bodies must come from the core's table (ApiError):\n{}", offences.join("\n"));
}

/// The first column of each row of the first Markdown table after `heading` (or in the whole file).
fn rules(file: &str, heading: Option<&str>) -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join(file)).unwrap();
    let from = heading.map_or(0, |h| text.find(h).unwrap_or_else(|| panic!("{file}: no {h}")));
    text[from..]
        .lines()
        .skip_while(|l| !l.starts_with("| property"))
        .skip(2)
        .take_while(|l| l.starts_with("| "))
        .map(|l| l.split('|').nth(1).unwrap_or_default().trim().to_owned())
        .collect()
}

#[test]
fn architecture_and_the_enforcement_reference_list_the_same_rules() {
    let map = rules("ARCHITECTURE.md", Some("## Who enforces what"));
    let reference = rules("docs/enforcement.md", None);
    assert!(map.len() > 20, "{map:?}");
    assert_eq!(map, reference, "ARCHITECTURE.md's rules and docs/enforcement.md's rows differ");
    // Each of ARCHITECTURE's rows names a test that attacks it.
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    for rule in &map {
        let row = text.lines().find(|l| l.starts_with(&format!("| {rule} |"))).unwrap();
        assert_eq!(row.matches(" | ").count(), 2, "{rule}: property, enforced by, attacked by");
        assert!(
            row.trim_end().trim_end_matches('|').rsplit('|').next().unwrap().contains("tests"),
            "{rule}: no test named"
        );
    }
}

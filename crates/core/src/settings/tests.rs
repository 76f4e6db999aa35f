//! The reader's rules, table-driven, and the catalogue's own consistency.

use super::*;
use std::collections::HashMap;

fn reader_check(vars: &[(&str, &str)], read: impl Fn(&Reader<'_>) -> Result<String, SettingsError>, expected: &str) {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = move |name: &str| vars.get(name).cloned();
    let reader = Reader::new(Program::PoolAgent, &lookup);
    let got = match read(&reader) {
        Ok(value) => value,
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(got, expected);
}

#[test]
fn values_defaults_and_errors() {
    let capacity = |r: &Reader<'_>| r.number::<u32>("EDGESHELL_POOL_CAPACITY").map(|n| n.to_string());
    reader_check(&[], capacity, "16");
    reader_check(&[("EDGESHELL_POOL_CAPACITY", " 40 ")], capacity, "40");
    reader_check(&[("EDGESHELL_POOL_CAPACITY", "  ")], capacity, "16");
    reader_check(
        &[("EDGESHELL_POOL_CAPACITY", "lots")],
        capacity,
        "error: EDGESHELL_POOL_CAPACITY is invalid: \"lots\": invalid digit found in string",
    );
    reader_check(
        &[("EDGESHELL_POOL_CAPACITY", "5000000000")],
        capacity,
        "error: EDGESHELL_POOL_CAPACITY is invalid: 5000000000 is out of range",
    );
    let region = |r: &Reader<'_>| r.required("EDGESHELL_POOL_REGION");
    reader_check(&[], region, "error: EDGESHELL_POOL_REGION is not set");
    reader_check(&[("EDGESHELL_POOL_REGION", "eu")], region, "eu");
    let undeclared = |r: &Reader<'_>| r.required("EDGESHELL_POOL_COLOUR");
    reader_check(&[], undeclared, "error: EDGESHELL_POOL_COLOUR is not in the settings catalogue");
    let list = |r: &Reader<'_>| r.list("EDGESHELL_PASS_ENV").map(|l| l.join("|"));
    reader_check(&[("EDGESHELL_PASS_ENV", "A, B,,C ")], list, "A|B|C");
    reader_check(&[], list, "");
    let backend = |r: &Reader<'_>| r.choice("EDGESHELL_POOL_BACKEND", &["local", "kubernetes"]).map(|i| i.to_string());
    reader_check(&[], backend, "0");
    reader_check(&[("EDGESHELL_POOL_BACKEND", "kubernetes")], backend, "1");
    reader_check(
        &[("EDGESHELL_POOL_BACKEND", "docker")],
        backend,
        "error: EDGESHELL_POOL_BACKEND is invalid: \"docker\": use one of local, kubernetes",
    );
    let derived = |r: &Reader<'_>| r.text("EDGESHELL_JWKS_URL").map(|v| format!("{v:?}"));
    reader_check(&[], derived, "None");
    let secs = |r: &Reader<'_>| r.secs("EDGESHELL_RUNNER_MAX_RUNTIME_SECS").map(|d| d.as_secs().to_string());
    reader_check(&[], secs, &crate::lifetime::LifetimePolicy::DEFAULT.max_lifetime.as_secs().to_string());
}

#[test]
fn the_catalogue_is_consistent() {
    for program in ALL {
        let settings = program.settings();
        for (i, s) in settings.iter().enumerate() {
            assert!(!s.meaning.is_empty() && s.meaning.ends_with('.'), "{}: {}", program.name(), s.name);
            assert!(settings[i + 1..].iter().all(|o| o.name != s.name), "{} twice in {}", s.name, program.name());
            let unit_is_number = [("_SECS", 0), ("_MS", 0), ("_MB", 0)].iter().any(|(u, _)| s.name.ends_with(u));
            if unit_is_number {
                assert!(
                    matches!(s.default, DefaultValue::Number(_) | DefaultValue::Unset),
                    "{} names a unit but its default is not a number",
                    s.name
                );
            }
        }
    }
    assert_eq!(render_markdown(Program::Signer).lines().count(), SIGNER.len() + 2);
    assert!(names(Program::PoolAgent).contains(&"EDGESHELL_POOL_API_KEY_FILE".to_owned()));
    assert!(!names(Program::Functions).iter().any(|n| n.ends_with("_FILE")));
}

#[test]
fn service_urls_are_https_or_loopback_http_with_no_user_info() {
    for ok in [
        "https://control.example.com",
        "https://control.example.com/",
        "https://control.example.com:8443/.well-known/jwks.json",
        "http://127.0.0.1:3000",
        "http://127.9.9.9/x",
        "http://[::1]:8787/.well-known/jwks.json",
        "http://localhost:8787",
        "HTTPS://Control.Example.com",
    ] {
        let checked = service_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(!checked.ends_with('/'), "{checked}");
    }
    for bad in [
        "http://control.example.com",
        "http://127.0.0.1.evil.example/",
        "http://10.0.0.1:3000",
        "http://[::2]/",
        "http://localhost.evil.example",
        "ftp://127.0.0.1/",
        "https://user:pass@control.example.com",
        "https://",
        "control.example.com",
    ] {
        assert!(service_url(bad).is_err(), "{bad} was accepted");
    }
    let vars = HashMap::from([("EDGESHELL_CONTROL_URL".to_owned(), "http://example.com".to_owned())]);
    let lookup = move |name: &str| vars.get(name).cloned();
    let err = Reader::new(Program::PoolAgent, &lookup).service_url("EDGESHELL_CONTROL_URL").unwrap_err();
    assert!(matches!(err, SettingsError::Invalid { name: "EDGESHELL_CONTROL_URL", .. }), "{err}");
}

#[test]
fn bearer_keys_have_a_minimum_length() {
    let check = |value: &str| {
        let vars = HashMap::from([("INTERNAL_API_KEY".to_owned(), value.to_owned())]);
        let lookup = move |name: &str| vars.get(name).cloned();
        Reader::new(Program::Edge, &lookup).bearer_key("INTERNAL_API_KEY")
    };
    assert!(matches!(check("letmein"), Err(SettingsError::Invalid { name: "INTERNAL_API_KEY", .. })));
    assert!(matches!(check(&"k".repeat(MIN_KEY_BYTES - 1)), Err(SettingsError::Invalid { .. })));
    assert_eq!(check(&"k".repeat(MIN_KEY_BYTES)).unwrap().len(), MIN_KEY_BYTES);
    assert!(matches!(check(""), Err(SettingsError::Missing("INTERNAL_API_KEY"))));
}

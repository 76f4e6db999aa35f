//! Entries as Spin reads them: what each allows, and what is refused with which reason.

use super::*;

fn check(entry: &str, url: (&str, &str, u16), expected: bool) {
    assert_eq!(Allowed::parse(entry).unwrap().allows(url.0, url.1, url.2), expected, "{entry} vs {url:?}");
}

#[test]
fn schemes_hosts_and_ports() {
    check("https://api.example.com", ("https", "api.example.com", 443), true);
    check("https://api.example.com", ("https", "API.example.com", 443), true);
    check("https://api.example.com", ("https", "api.example.com", 8443), false);
    check("https://api.example.com", ("http", "api.example.com", 443), false);
    check("https://api.example.com", ("https", "evil.com", 443), false);
    check("https://*.example.com", ("https", "a.example.com", 443), true);
    check("https://*.example.com", ("https", "a.b.example.com", 443), true);
    check("https://*.example.com", ("https", "example.com", 443), false);
    check("https://*.example.com", ("https", "aexample.com", 443), false);
    check("http://127.0.0.1:*", ("http", "127.0.0.1", 9999), true);
    check("http://127.0.0.1:8080", ("http", "127.0.0.1", 8081), false);
    check("http://*:*", ("http", "anything", 1), true);
    check("postgres://db.internal", ("postgres", "db.internal", 5432), true);
    check("postgres://db.internal", ("postgres", "db.internal", 5433), false);
    check("postgres://db.internal", ("https", "db.internal", 5432), false);
    check("redis://cache", ("redis", "cache", 6379), true);
}

#[test]
fn any_scheme_ranges_and_address_blocks() {
    check("*://localhost:*", ("postgres", "localhost", 5432), true);
    check("*://localhost:*", ("http", "localhost", 8080), true);
    check("*://localhost:5432", ("http", "localhost", 5432), true);
    check("*://*:*", ("https", "example.com", 1), true);
    check("http://localhost:8000..8010", ("http", "localhost", 8009), true);
    check("http://localhost:8000..8010", ("http", "localhost", 8010), false);
    check("postgres://10.0.0.0/8", ("postgres", "10.1.2.3", 5432), true);
    check("postgres://10.0.0.0/8", ("postgres", "11.1.2.3", 5432), false);
    check("postgres://10.0.0.0/8", ("postgres", "ten.example", 5432), false);
    check("http://[::1]:8080", ("http", "[::1]", 8080), true);
    check("postgres://[::1]", ("postgres", "::1", 5432), true);
    check("postgres://127.0.0.1", ("postgres", "127.0.0.1", 5432), true);
    check("http://localhost/", ("http", "localhost", 80), true);
}

#[test]
fn refusals_name_the_entry_and_why() {
    let why = |entry: &str| Allowed::parse(entry).unwrap_err();
    assert!(why("127.0.0.1").contains("no scheme"));
    assert!(why("insecure:allow-all").contains("*://*:*"));
    assert!(why("*://localhost").contains("no default"), "{}", why("*://localhost"));
    assert!(why("ftp://x").contains("no default"));
    assert!(why("https://a:1/b").contains("path"));
    assert!(why("https://a/b").contains("path"));
    assert!(why("https://h:port").contains("bad port"));
    assert!(why("https://h:1..x").contains("range"));
    assert!(why("h2c+x://h:1").contains("letters"));
    assert!(why("https://a.*.com").contains("wildcard"));
    assert!(why("http://self").contains("service chaining"));
    assert!(why("http://*.spin.internal").contains("service chaining"));
    assert!(why("{http,https}://h").contains("lists"));
    assert!(why("https://user@h").contains("bad host"));
}

#[test]
fn rendered_templates_that_name_nothing_allow_nothing() {
    let list = Allowlist::new(&["".into(), "https://".into(), "http://".into()]).unwrap();
    assert!(!list.allows("https", "example.com", 443));
    assert!(Allowlist::new(&["https://".into(), "nope".into()]).is_err());
}

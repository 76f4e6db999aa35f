//! Routing and the `spin-*` headers, as Spin routes and sets them.

use super::*;

fn router(routes: &[(&'static str, &'static str)]) -> Router {
    Router::build(routes.iter().copied()).unwrap().0
}

fn served_by(router: &Router, path: &str) -> Option<String> {
    router.route(path).map(|m| m.component().to_owned())
}

#[test]
fn captures_and_the_wildcard_become_headers() {
    // The shape of Spin's conformance test `request-shape`.
    let r = router(&[("shape", "/base/:path_segment/:path_end/...")]);
    let m = r.route("/base/path/end/rest").unwrap();
    let headers = m.spin_headers("example.com", "/base/path/end/rest?key=value", "127.0.0.1:4000");
    let expected = [
        ("spin-base-path", "/"),
        ("spin-client-addr", "127.0.0.1:4000"),
        ("spin-component-route", "/base/:path_segment/:path_end"),
        ("spin-full-url", "http://example.com/base/path/end/rest?key=value"),
        ("spin-matched-route", "/base/:path_segment/:path_end/..."),
        ("spin-path-info", "/rest"),
        ("spin-path-match-path-end", "end"),
        ("spin-path-match-path-segment", "path"),
        ("spin-raw-component-route", "/base/:path_segment/:path_end/..."),
    ];
    let got: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, expected);
    assert_eq!(served_by(&r, "/base/path"), None, "both captures are needed");
}

#[test]
fn the_most_specific_route_wins() {
    let r = router(&[
        ("all", "/..."),
        ("api", "/api/..."),
        ("sessions", "/api/sessions/..."),
        ("list", "/api/sessions"),
        ("one", "/api/sessions/:id"),
        ("mine", "/api/sessions/mine"),
    ]);
    assert_eq!(served_by(&r, "/api/sessions").as_deref(), Some("list"));
    assert_eq!(served_by(&r, "/api/sessions/mine").as_deref(), Some("mine"), "a literal beats a capture");
    assert_eq!(served_by(&r, "/api/sessions/s_1").as_deref(), Some("one"), "a capture beats a wildcard");
    assert_eq!(served_by(&r, "/api/sessions/s_1/end").as_deref(), Some("sessions"));
    assert_eq!(served_by(&r, "/api/keys").as_deref(), Some("api"));
    assert_eq!(served_by(&r, "/api").as_deref(), Some("api"), "a wildcard route serves its prefix too");
    assert_eq!(served_by(&r, "/elsewhere").as_deref(), Some("all"));
    assert_eq!(served_by(&r, "/apiX").as_deref(), Some("all"), "prefixes match whole segments");
    let m = r.route("/api/sessions/s_1").unwrap();
    assert_eq!(m.spin_headers("h", "/api/sessions/s_1", "c")["spin-path-match-id"], "s_1");
}

#[test]
fn path_info_keeps_a_trailing_slash() {
    let r = router(&[("files", "/files/...")]);
    let info = |path: &str| r.route(path).unwrap().path_info();
    assert_eq!(info("/files"), "");
    assert_eq!(info("/files/"), "/");
    assert_eq!(info("/files/a/b"), "/a/b");
    assert_eq!(info("/files/a/b/"), "/a/b/");
    let exact = router(&[("one", "/one")]);
    assert_eq!(exact.route("/one").unwrap().path_info(), "", "an exact route has no path info");
}

#[test]
fn routes_are_made_absolute_and_lose_a_trailing_slash() {
    let r = router(&[("rel", "relative/path"), ("slash", "/with/slash/")]);
    assert_eq!(served_by(&r, "/relative/path").as_deref(), Some("rel"));
    assert_eq!(served_by(&r, "/with/slash").as_deref(), Some("slash"));
    let m = r.route("/with/slash").unwrap();
    let headers = m.spin_headers("h", "/with/slash", "c");
    assert_eq!(headers["spin-matched-route"], "/with/slash");
    assert_eq!(headers["spin-raw-component-route"], "/with/slash/", "the raw route is as written");
}

#[test]
fn a_route_written_twice_is_served_by_its_last_component_and_said_so() {
    let (r, warnings) =
        Router::build([("first", "/same"), ("second", "/same"), ("health", "/.well-known/spin/x")]).unwrap();
    assert_eq!(served_by(&r, "/same").as_deref(), Some("second"));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("first") && warnings[0].contains("never be used"), "{warnings:?}");
    assert!(warnings[1].contains("/.well-known/spin/"), "{warnings:?}");
}

#[test]
fn headers_named_by_captures_are_lowercase_with_dashes() {
    let r = router(&[("c", "/:Upper_Case")]);
    let m = r.route("/x").unwrap();
    assert_eq!(m.spin_headers("h", "/x", "c")["spin-path-match-upper-case"], "x");
}

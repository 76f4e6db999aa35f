//! What the browser-facing edge enforces beyond tokens: which pages may open a session socket, and the
//! Content-Security-Policy the page is served with.
//!
//! **Origins.** A browser always sends `Origin` on a WebSocket upgrade, and a page on another site can
//! open a socket to the edge with a token it got hold of. An attach whose `Origin` is present must name
//! the edge's own origin or one of the configured page origins (`PAGE_ORIGINS`); an attach without one
//! comes from a program (an API client, a test), which no page can make the browser send. A runner is
//! never a page: a join that carries any `Origin` is refused. Both are refused before any token is
//! looked at, with `forbidden`.
//!
//! **The page's policy.** Scripts, styles, fonts and connections only from the edge's own origin (plus
//! the sign-in provider's endpoints: Firebase's, or the OIDC provider's origins the page fetches its
//! discovery document, code exchange and refreshes from), WebAssembly allowed (the page runs the
//! core compiled to wasm), no plugins, no `<base>`, no forms, and `frame-ancestors 'none'`: no other
//! site may frame the page (click-jacking a terminal types into it).

use crate::protocol::{CloseCode, Role, UpgradeRefused};

/// The page origins allowed to attach besides the edge's own, normalized (`scheme://host[:port]`,
/// lowercase, no default port).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageOrigins(Vec<String>);

impl PageOrigins {
    /// Reads a comma-separated list of origins (`https://app.example.com, http://127.0.0.1:8787`).
    pub fn parse(text: &str) -> Result<PageOrigins, String> {
        let mut origins = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            origins.push(normalize_origin(item)?);
        }
        Ok(PageOrigins(origins))
    }

    /// The configured origins.
    pub fn origins(&self) -> &[String] {
        &self.0
    }

    /// Whether an upgrade for `role` carrying `origin` (the header, if any) may go on, where `own` is
    /// the edge's own origin (the one its page is served from).
    pub fn check(&self, role: Role, origin: Option<&str>, own: &str) -> Result<(), UpgradeRefused> {
        let Some(origin) = origin.map(str::trim) else {
            return Ok(());
        };
        let refused = |why: String| Err(UpgradeRefused::new(CloseCode::Forbidden, why));
        if role == Role::Runner {
            return refused(format!("a runner's upgrade carries no Origin (this one came from {origin:?})"));
        }
        let normalized = normalize_origin(origin).ok();
        let allowed = |o: &str| Some(o) == normalized.as_deref();
        if normalize_origin(own).is_ok_and(|own| allowed(&own)) || self.0.iter().any(|o| allowed(o)) {
            return Ok(());
        }
        refused(format!("pages from {origin:?} may not attach here (PAGE_ORIGINS lists the pages that may)"))
    }
}

/// `scheme://host[:port]` lowercased, the default port dropped; an error for anything else (a path, a
/// query, user info, `null`, another scheme).
pub fn normalize_origin(text: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("{text:?} is not an origin ({why})"));
    let Some((scheme, rest)) = text.split_once("://") else {
        return bad("expected scheme://host[:port]");
    };
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return bad("only http and https pages"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) || !rest.is_ascii() {
        return bad("a host and port only");
    }
    let authority = rest.to_ascii_lowercase();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, "")) => (format!("[{addr}]"), None),
            Some((addr, tail)) => (format!("[{addr}]"), Some(tail.strip_prefix(':').unwrap_or("x"))),
            None => return bad("a bad IPv6 literal"),
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.clone(), None),
        },
    };
    if host.is_empty() || host == "[]" {
        return bad("no host");
    }
    let port = match port {
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(port.trim_start_matches('0').to_owned())
        }
        Some(_) => return bad("a bad port"),
        None => None,
    };
    Ok(match port {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Where the page's sign-in needs to reach beyond the edge's own origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInSources {
    /// Firebase Authentication's auth domain (its sign-in popup frames it, and loads Google's API
    /// script), when Firebase is configured.
    pub firebase_auth_domain: Option<String>,
    /// The origins the page calls for an OIDC provider (normalized): discovery, the token endpoint
    /// (code exchange and refresh) and revocation. The sign-in page itself is navigated to.
    pub oidc_origins: Vec<String>,
}

impl SignInSources {
    /// An OIDC provider's sources: the issuer's origin, plus `extra` (a comma-separated list of the
    /// origins of endpoints elsewhere, e.g. a token endpoint on another host).
    pub fn oidc(issuer: &str, extra: Option<&str>) -> Result<SignInSources, String> {
        let mut origins = vec![origin_of(issuer)?];
        for origin in PageOrigins::parse(extra.unwrap_or_default())?.0 {
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(SignInSources { firebase_auth_domain: None, oidc_origins: origins })
    }
}

/// The normalized origin of an `http(s)` URL (its scheme, host and port; the path is dropped).
pub fn origin_of(url: &str) -> Result<String, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{url:?} is not an http(s) URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    normalize_origin(&format!("{scheme}://{authority}"))
}

/// The page's `Content-Security-Policy`.
pub fn content_security_policy(sign_in: &SignInSources) -> String {
    let (scripts, connect, frames) = match &sign_in.firebase_auth_domain {
        Some(domain) => (
            " https://apis.google.com".to_owned(),
            " https://identitytoolkit.googleapis.com https://securetoken.googleapis.com https://www.googleapis.com"
                .to_owned(),
            format!("https://{domain}"),
        ),
        None => {
            let connect = sign_in.oidc_origins.iter().map(|o| format!(" {o}")).collect::<String>();
            (String::new(), connect, "'none'".to_owned())
        }
    };
    [
        "default-src 'none'".to_owned(),
        format!("script-src 'self' 'wasm-unsafe-eval'{scripts}"),
        // xterm.js sizes its cells through a style element it writes at run time.
        "style-src 'self' 'unsafe-inline'".to_owned(),
        "img-src 'self' data: blob:".to_owned(),
        "font-src 'self'".to_owned(),
        format!("connect-src 'self'{connect}"),
        format!("frame-src {frames}"),
        "manifest-src 'self'".to_owned(),
        "object-src 'none'".to_owned(),
        "base-uri 'none'".to_owned(),
        "form-action 'none'".to_owned(),
        "frame-ancestors 'none'".to_owned(),
    ]
    .join("; ")
}

/// The headers every page response carries besides the policy.
pub const PAGE_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin-allow-popups"),
];

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "https://edge.example.com";

    #[test]
    fn origins_are_normalized_or_refused() {
        assert_eq!(normalize_origin("HTTPS://App.Example.com:443/").unwrap(), "https://app.example.com");
        assert_eq!(normalize_origin("http://127.0.0.1:8787").unwrap(), "http://127.0.0.1:8787");
        assert_eq!(normalize_origin("http://[::1]:80").unwrap(), "http://[::1]");
        assert_eq!(normalize_origin("http://[::1]").unwrap(), "http://[::1]");
        assert_eq!(normalize_origin("http://[::1]:8787").unwrap(), "http://[::1]:8787");
        for bad in [
            "null",
            "app.example.com",
            "ftp://x",
            "https://x/path",
            "https://u@x",
            "https://x:",
            "https://x:8a",
            "https://",
            "http://[::1",
            "http://[::1]x",
            "https://a:1:2",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
        assert!(PageOrigins::parse("https://a.example, ,http://localhost:3000").is_ok());
        assert!(PageOrigins::parse("https://a.example/app").is_err());
    }

    #[test]
    fn pages_of_other_sites_and_runners_with_an_origin_are_refused() {
        let origins = PageOrigins::parse("https://app.example.com").unwrap();
        let ok = |role, origin| origins.check(role, origin, OWN).is_ok();
        assert!(ok(Role::Browser, Some("https://edge.example.com")));
        assert!(ok(Role::Browser, Some("https://EDGE.example.com:443")));
        assert!(ok(Role::Browser, Some("https://app.example.com")));
        assert!(ok(Role::Browser, None), "a program sends no Origin");
        for evil in
            ["https://evil.example", "null", "http://edge.example.com", "https://edge.example.com.evil.example", ""]
        {
            let refused = origins.check(Role::Browser, Some(evil), OWN).unwrap_err();
            assert_eq!(refused.code, CloseCode::Forbidden, "{evil}");
        }
        assert!(ok(Role::Runner, None));
        assert_eq!(origins.check(Role::Runner, Some(OWN), OWN).unwrap_err().code, CloseCode::Forbidden);
    }

    #[test]
    fn the_policy_forbids_framing_and_foreign_scripts() {
        let plain = content_security_policy(&SignInSources::default());
        for part in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "script-src 'self' 'wasm-unsafe-eval';",
            "frame-src 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ] {
            assert!(plain.contains(part), "{part} missing from {plain}");
        }
        assert!(!plain.contains("unsafe-eval'") || plain.contains("wasm-unsafe-eval"));
        assert!(!plain.contains("script-src 'self' 'unsafe-inline'"));
        let firebase = content_security_policy(&SignInSources {
            firebase_auth_domain: Some("p.firebaseapp.com".into()),
            ..SignInSources::default()
        });
        assert!(
            firebase.contains("frame-src https://p.firebaseapp.com") && firebase.contains("https://apis.google.com")
        );
        assert!(firebase.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn an_oidc_provider_is_reachable_from_the_page_and_nothing_else() {
        let sources =
            SignInSources::oidc("https://Login.Example.com/realms/x/", Some("https://tokens.example.net:443")).unwrap();
        assert_eq!(sources.oidc_origins, ["https://login.example.com", "https://tokens.example.net"]);
        let csp = content_security_policy(&sources);
        assert!(csp.contains("connect-src 'self' https://login.example.com https://tokens.example.net;"), "{csp}");
        assert!(csp.contains("frame-src 'none'") && csp.contains("script-src 'self' 'wasm-unsafe-eval';"), "{csp}");
        assert_eq!(origin_of("http://127.0.0.1:8790").unwrap(), "http://127.0.0.1:8790");
        for bad in ["127.0.0.1:8790", "ftp://x/", "https://u@x/"] {
            assert!(SignInSources::oidc(bad, None).is_err(), "{bad}");
        }
        assert!(SignInSources::oidc("https://a.example", Some("https://b.example/path")).is_err());
    }
}

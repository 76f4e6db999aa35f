//! `allowed_outbound_hosts`: which URLs and databases a component may reach. Entries are
//! `scheme://host[:port]` (`http`, `https`, `postgres`), where
//! `host` may be `*` or start with `*.`, and `port` may be `*`; with no port the scheme's default applies.

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    scheme: String,
    host: String,
    port: Option<u16>,
    any_port: bool,
}

impl Allowed {
    /// Parses one entry.
    pub fn parse(entry: &str) -> Result<Allowed, String> {
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| format!("outbound host {entry:?} has no scheme"))?;
        if !matches!(scheme, "http" | "https" | "postgres") {
            return Err(format!("outbound host {entry:?}: only http, https and postgres are supported"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(format!("outbound host {entry:?} must be scheme://host[:port]"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, Err(())),
            Some((h, p)) => (h, Ok(Some(p.parse::<u16>().map_err(|_| format!("outbound host {entry:?}: bad port"))?))),
            None => (rest, Ok(None)),
        };
        Ok(Allowed {
            scheme: scheme.to_owned(),
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(None),
            any_port: port.is_err(),
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == self.host,
        };
        let default_port = match self.scheme.as_str() {
            "https" => 443,
            "postgres" => 5432,
            _ => 80,
        };
        let port_ok = self.any_port || self.port.unwrap_or(default_port) == port;
        self.scheme == scheme && host_ok && port_ok
    }
}

/// A component's whole allowlist.
#[derive(Debug, Clone, Default)]
pub struct Allowlist(Vec<Allowed>);

impl Allowlist {
    /// Parses every entry (the manifest was already checked, so errors here are bugs reported as such).
    pub fn new(entries: &[String]) -> Result<Allowlist, String> {
        entries.iter().map(|e| Allowed::parse(e)).collect::<Result<_, _>>().map(Allowlist)
    }

    /// Whether any entry allows the request.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.0.iter().any(|a| a.allows(scheme, host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(entry: &str, url: (&str, &str, u16), expected: bool) {
        assert_eq!(Allowed::parse(entry).unwrap().allows(url.0, url.1, url.2), expected, "{entry} vs {url:?}");
    }

    #[test]
    fn matching() {
        check("https://api.example.com", ("https", "api.example.com", 443), true);
        check("https://api.example.com", ("https", "api.example.com", 8443), false);
        check("https://api.example.com", ("http", "api.example.com", 443), false);
        check("https://api.example.com", ("https", "evil.com", 443), false);
        check("https://*.example.com", ("https", "a.example.com", 443), true);
        check("https://*.example.com", ("https", "example.com", 443), false);
        check("https://*.example.com", ("https", "aexample.com", 443), false);
        check("http://127.0.0.1:*", ("http", "127.0.0.1", 9999), true);
        check("http://127.0.0.1:8080", ("http", "127.0.0.1", 8081), false);
        check("http://*:*", ("http", "anything", 1), true);
        check("postgres://db.internal", ("postgres", "db.internal", 5432), true);
        check("postgres://db.internal", ("postgres", "db.internal", 5433), false);
        check("postgres://db.internal", ("https", "db.internal", 5432), false);
        for bad in ["127.0.0.1", "ftp://x", "https://a/b", "https://u@h", "https://h:port"] {
            assert!(Allowed::parse(bad).is_err(), "{bad}");
        }
    }
}

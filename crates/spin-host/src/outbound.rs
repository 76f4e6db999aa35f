//! `allowed_outbound_hosts`: which URLs and databases a component may reach, in Spin's grammar.
//! An entry is `scheme://host[:port]`:
//!
//! - `scheme`: letters, or `*` for any;
//! - `host`: `*`, `*.domain` (its subdomains), an address range (`10.0.0.0/8`), or one name or address;
//! - `port`: `*`, one port, or a range `8000..9000` (end excluded); none means the scheme's own (80, 443,
//!   5432, 3306, 6379, 1883), and a scheme with none (`*`) then needs one.
//!
//! What Spin accepts and this host does not carry out is refused when the manifest loads, naming the
//! entry: service chaining (`self`, `*.spin.internal`). A template that renders empty, `http://` or
//! `https://` allows nothing (an optional endpoint), as on Spin.

use std::ops::Range;

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// `None`: any scheme.
    scheme: Option<String>,
    host: HostRule,
    port: PortRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    /// `.example.com`: names ending so.
    Subdomain(String),
    Literal(url::Host),
    Range(ip_network::IpNetwork),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Any,
    One(u16),
    Range(Range<u16>),
}

/// The port a scheme uses when none is given.
fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl Allowed {
    /// Parses one entry.
    pub fn parse(entry: &str) -> Result<Allowed, String> {
        let original = entry;
        let entry = entry.trim();
        let fail = |why: String| Err(format!("outbound host {original:?}: {why}"));
        if entry == "insecure:allow-all" {
            return fail("not allowed; `*://*:*` allows everything".into());
        }
        let Some((scheme, rest)) = entry.split_once("://") else {
            return fail("has no scheme (`https://`, or `*://` for any)".into());
        };
        // The port follows the last colon, unless what follows the scheme is a host on its own (an IPv6
        // address or range).
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((h, "")) => (h, ""),
            Some(_) if parse_host(rest).is_ok() => (rest, ""),
            Some((h, tail)) => match tail.split_once('/') {
                Some((_, path)) if !path.is_empty() => return fail("must not have a path".into()),
                Some((port, _)) => (h, port),
                None => (h, tail),
            },
        };
        let scheme = match scheme {
            "*" => None,
            s if s.starts_with('{') => return fail("scheme lists are not supported".into()),
            s if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphabetic()) => {
                return fail("a scheme is letters only, or `*`".into())
            }
            s => Some(s.to_ascii_lowercase()),
        };
        let port = match port {
            "" => match scheme.as_deref().and_then(well_known_port) {
                Some(p) => PortRule::One(p),
                None => return fail("no port, and the scheme has no default one (add `:*` or a port)".into()),
            },
            "*" => PortRule::Any,
            p if p.starts_with('{') => return fail("port lists are not supported".into()),
            p => match p.split_once("..") {
                Some((start, end)) => match (start.parse::<u16>(), end.parse::<u16>()) {
                    (Ok(start), Ok(end)) => PortRule::Range(start..end),
                    _ => return fail(format!("port range {p:?} is not two numbers")),
                },
                None => PortRule::One(p.parse().map_err(|_| format!("outbound host {original:?}: bad port {p:?}"))?),
            },
        };
        let host = parse_host(host).map_err(|why| format!("outbound host {original:?}: {why}"))?;
        Ok(Allowed { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(scheme));
        // An address may come bare (`::1`, from a resolved database host) or bracketed (`[::1]`).
        let parsed = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => Ok(url::Host::Ipv4(ip)),
            Ok(std::net::IpAddr::V6(ip)) => Ok(url::Host::Ipv6(ip)),
            Err(_) => url::Host::parse(host),
        };
        let host_ok = match (&self.host, parsed) {
            (HostRule::Any, _) => true,
            (_, Err(_)) => false,
            (HostRule::Subdomain(suffix), Ok(url::Host::Domain(name))) => name.ends_with(suffix.as_str()),
            (HostRule::Subdomain(_), Ok(_)) => false,
            (HostRule::Literal(literal), Ok(host)) => host == *literal,
            (HostRule::Range(range), Ok(url::Host::Ipv4(ip))) => range.contains(std::net::IpAddr::V4(ip)),
            (HostRule::Range(range), Ok(url::Host::Ipv6(ip))) => range.contains(std::net::IpAddr::V6(ip)),
            (HostRule::Range(_), Ok(url::Host::Domain(_))) => false,
        };
        let port_ok = match &self.port {
            PortRule::Any => true,
            PortRule::One(p) => *p == port,
            PortRule::Range(r) => r.contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

fn parse_host(host: &str) -> Result<HostRule, String> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostRule::Any);
    }
    if host == "self" || host == "self.alt" || host.ends_with(".spin.internal") {
        return Err("service chaining (`self`, `*.spin.internal`) is not supported by this host".into());
    }
    if host.starts_with('{') {
        return Err("host lists are not supported".into());
    }
    if let Ok(range) = ip_network::IpNetwork::from_str_truncate(host) {
        return Ok(HostRule::Range(range));
    }
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.contains('/') {
        return Err("must not have a path".into());
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            return Err("a wildcard is allowed only as the first label".into());
        }
        return match url::Host::parse(domain) {
            Ok(url::Host::Domain(domain)) => Ok(HostRule::Subdomain(format!(".{domain}"))),
            Ok(_) => Err("a wildcard's suffix must be a domain name".into()),
            Err(e) => Err(format!("bad host *.{domain}: {e}")),
        };
    }
    if host.contains('*') {
        return Err("a wildcard is allowed only as the first label".into());
    }
    url::Host::parse(host).map(HostRule::Literal).map_err(|e| format!("bad host {host:?}: {e}"))
}

/// A component's whole allowlist.
#[derive(Debug, Clone, Default)]
pub struct Allowlist(Vec<Allowed>);

impl Allowlist {
    /// Parses every rendered entry; one that rendered empty, `http://` or `https://` allows nothing.
    pub fn new(entries: &[String]) -> Result<Allowlist, String> {
        entries
            .iter()
            .filter(|e| !matches!(e.trim(), "" | "http://" | "https://"))
            .map(|e| Allowed::parse(e))
            .collect::<Result<_, _>>()
            .map(Allowlist)
    }

    /// Whether any entry allows the request.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.0.iter().any(|a| a.allows(scheme, host, port))
    }
}

#[cfg(test)]
mod tests;

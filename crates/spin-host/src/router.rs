//! Spin's HTTP router, as Spin builds it (`spin-routes`, on the same `routefinder` crate): routes are
//! made absolute and lose one trailing slash, `/...` (or `/*`) ends a wildcard route, `:name` segments
//! capture, the most specific route wins (routefinder's ranking), a route written twice is served by
//! its last component, and a `{ private = true }` route is never reached from outside. Each request
//! gets the `spin-*` headers Spin sets ([`RouteMatch::spin_headers`]).

use std::collections::BTreeMap;

/// What a matched route tells a component.
#[derive(Debug, Clone)]
struct Handler {
    component: String,
    /// The route with the (root) base applied: `/api/sessions/...`.
    based: String,
    /// The route as the manifest wrote it.
    raw: String,
}

/// Where Spin itself answers (`health`, `info`); routes under it are never reached.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

/// The routes of an application.
#[derive(Debug)]
pub struct Router {
    inner: routefinder::Router<Handler>,
}

/// Why the routes cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("spin.toml: route {route} of component {component}: {why}")]
pub struct RouteError {
    route: String,
    component: String,
    why: String,
}

/// A request's match.
#[derive(Debug)]
pub struct RouteMatch<'a> {
    handler: &'a Handler,
    captures: Vec<(String, String)>,
    wildcard: Option<String>,
    path_ends_with_slash: bool,
}

impl Router {
    /// The router of `routes` (component, route as written), in manifest order; also the warnings Spin
    /// logs (routes that are never used).
    pub fn build<'a>(
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(Router, Vec<String>), RouteError> {
        let mut warnings = Vec::new();
        // Keyed by the route as written, in first-seen order; a later component replaces an earlier.
        let mut by_route: Vec<(String, Handler)> = Vec::new();
        for (component, raw) in routes {
            let based = based(raw);
            let handler = Handler { component: component.to_owned(), based: based.clone(), raw: raw.to_owned() };
            match by_route.iter_mut().find(|(r, _)| r == raw) {
                Some((_, earlier)) => {
                    warnings.push(format!(
                        "route {} of component {} is a duplicate and will never be used (component {} serves it)",
                        display(&earlier.based),
                        earlier.component,
                        component
                    ));
                    *earlier = handler;
                }
                None => by_route.push((raw.to_owned(), handler)),
            }
        }
        let mut inner = routefinder::Router::new();
        for (_, handler) in by_route {
            if handler.based.starts_with(WELL_KNOWN_PREFIX) {
                warnings.push(format!(
                    "route {} of component {} is under {WELL_KNOWN_PREFIX}, which the host answers: it will never be reached",
                    handler.based, handler.component
                ));
            }
            let spec = match handler.based.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => handler.based.clone(),
            };
            let error =
                |why: String| RouteError { route: handler.raw.clone(), component: handler.component.clone(), why };
            let spec: routefinder::RouteSpec = spec.as_str().try_into().map_err(|e: String| error(e))?;
            inner.add(spec, handler.clone()).map_err(|e| error(e.to_string()))?;
        }
        Ok((Router { inner }, warnings))
    }

    /// The route serving `path` (without its query), if any.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let found = self.inner.best_match(path)?;
        let captures = found.captures();
        let named = captures.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let wildcard = captures.wildcard().map(str::to_owned);
        Some(RouteMatch {
            handler: found.handler(),
            captures: named,
            wildcard,
            path_ends_with_slash: path.ends_with('/'),
        })
    }
}

impl RouteMatch<'_> {
    /// The component serving it.
    pub fn component(&self) -> &str {
        &self.handler.component
    }

    /// The path below a wildcard route's prefix (`spin-path-info`): empty for an exact route.
    pub fn path_info(&self) -> String {
        match (&self.wildcard, self.path_ends_with_slash) {
            (None, _) => String::new(),
            (Some(w), false) if w.is_empty() => String::new(),
            (Some(w), true) if w.is_empty() => "/".to_owned(),
            (Some(w), false) => format!("/{w}"),
            (Some(w), true) => format!("/{w}/"),
        }
    }

    /// The `spin-*` headers of a request to this route: `host` from its `host` header (`localhost`
    /// when absent), `path_and_query` as requested, `client` the peer's address.
    pub fn spin_headers(&self, host: &str, path_and_query: &str, client: &str) -> BTreeMap<String, String> {
        let raw = &self.handler.raw;
        let mut headers = BTreeMap::from([
            ("spin-path-info".to_owned(), self.path_info()),
            ("spin-full-url".to_owned(), format!("http://{host}{path_and_query}")),
            ("spin-matched-route".to_owned(), self.handler.based.clone()),
            ("spin-base-path".to_owned(), "/".to_owned()),
            ("spin-raw-component-route".to_owned(), raw.clone()),
            ("spin-component-route".to_owned(), raw.strip_suffix("/...").unwrap_or(raw).to_owned()),
            ("spin-client-addr".to_owned(), client.to_owned()),
        ]);
        for (name, value) in &self.captures {
            headers.insert(format!("spin-path-match-{}", name.to_ascii_lowercase().replace('_', "-")), value.clone());
        }
        headers
    }
}

/// A route with the root base applied, as Spin does: absolute, without one trailing slash.
fn based(raw: &str) -> String {
    let absolute = if raw.starts_with('/') { raw.to_owned() } else { format!("/{raw}") };
    absolute.strip_suffix('/').map(str::to_owned).unwrap_or(absolute)
}

fn display(based: &str) -> &str {
    if based.is_empty() {
        "/"
    } else {
        based
    }
}

#[cfg(test)]
mod tests;

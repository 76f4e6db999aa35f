//! The subset of Spin's manifest v2 (`spin.toml`) the host implements: the application's name and
//! version, application variables, HTTP triggers (route patterns as Spin takes them, or
//! `{ private = true }`), and per component its source, variables and allowed outbound hosts.
//! Anything else in the file is ignored; anything referenced but missing is an error at load time.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Unreadable or not TOML of the expected shape.
    #[error("spin.toml: {0}")]
    Parse(String),
    /// A rule of the manifest is broken.
    #[error("spin.toml: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
struct Raw {
    spin_manifest_version: u32,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    application: RawApplication,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    route: RawRouteConfig,
    component: String,
    /// The trigger's id (names it in Spin's logs).
    #[serde(default, rename = "id")]
    _id: Option<String>,
    /// Spin's `executor` (`wagi`) and `static_response`: not carried out here.
    executor: Option<toml::Value>,
    static_response: Option<toml::Value>,
}

/// A route as Spin takes it: a pattern, or `{ private = true }` (reached by no request from outside).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRouteConfig {
    Route(String),
    Private { private: bool },
}

#[derive(Debug, Default, Deserialize)]
struct RawApplication {
    #[serde(default)]
    name: String,
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    source: String,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<crate::files::FilesMount>,
    #[serde(default)]
    exclude_files: Vec<String>,
    // Build-time only: nothing a guest sees.
    #[serde(default, rename = "description")]
    _description: Option<String>,
    #[serde(default, rename = "build")]
    _build: Option<toml::Value>,
    #[serde(default, rename = "tool")]
    _tool: Option<toml::Value>,
    // What Spin gives a component that this host does not: refused by name, never ignored.
    #[serde(flatten)]
    unsupported: BTreeMap<String, toml::Value>,
}

/// Component fields Spin knows that this host does not carry out.
const UNSUPPORTED_COMPONENT_FIELDS: [&str; 6] = [
    "key_value_stores",
    "sqlite_databases",
    "ai_models",
    "dependencies",
    "dependencies_inherit_configuration",
    "allowed_http_hosts",
];

/// An application variable's declaration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value when the provider has none.
    pub default: Option<String>,
    /// Startup fails when no value is provided.
    #[serde(default)]
    pub required: bool,
    /// Never logged.
    #[serde(default)]
    pub secret: bool,
}

/// One component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentDecl {
    /// Its id in the manifest.
    pub id: String,
    /// Path of its `.wasm`, resolved against the manifest's directory.
    pub source: PathBuf,
    /// `scheme://host[:port]` patterns it may call.
    pub allowed_outbound_hosts: Vec<String>,
    /// Its variables, as templates over application variables.
    pub variables: BTreeMap<String, String>,
    /// Its environment variables (WASI), as written.
    pub environment: BTreeMap<String, String>,
    /// The application's files it sees, read-only, under `/` ([`crate::files`]).
    pub files: Vec<crate::files::FilesMount>,
    /// Globs of files left out of `files`.
    pub exclude_files: Vec<String>,
}

/// A route to a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// As written: `/exact`, `/prefix/...`, `/users/:id`; `None` for a private component.
    pub pattern: Option<String>,
    /// The component id.
    pub component: String,
}

/// A checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Application variables.
    pub variables: BTreeMap<String, VariableDecl>,
    /// Routes in manifest order (matched by [`crate::router::Router`]).
    pub routes: Vec<Route>,
    /// `[application] name` (empty when not given) and `version`, for `/.well-known/spin/info`.
    pub application: (String, Option<String>),
    /// Components by id.
    pub components: BTreeMap<String, ComponentDecl>,
    /// The application directory (the manifest's), which `files` are relative to.
    pub root: PathBuf,
}

impl Manifest {
    /// Loads and checks `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ManifestError::Parse(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Manifest::parse(&text, base)
    }

    /// Parses manifest text whose relative paths are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Manifest, ManifestError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        let invalid = |m: String| Err(ManifestError::Invalid(m));
        if raw.spin_manifest_version != 2 {
            return invalid(format!("spin_manifest_version {} is not 2", raw.spin_manifest_version));
        }
        for (name, decl) in &raw.variables {
            if !valid_variable_name(name) {
                return invalid(format!("variable name {name:?} must match [a-z][a-z0-9_]*"));
            }
            if decl.required && decl.default.is_some() {
                return invalid(format!("variable {name} is required and has a default"));
            }
        }
        let mut components = BTreeMap::new();
        for (id, c) in raw.component {
            if let Some(field) = c.unsupported.keys().next() {
                let why = if UNSUPPORTED_COMPONENT_FIELDS.contains(&field.as_str()) {
                    "Spin's, but not supported by this host"
                } else {
                    "unknown"
                };
                return invalid(format!("component {id}: field `{field}` is {why}"));
            }
            for (name, template) in &c.variables {
                if !valid_variable_name(name) {
                    return invalid(format!("component {id}: variable name {name:?} must match [a-z][a-z0-9_]*"));
                }
                for reference in
                    template_references(template).map_err(|e| ManifestError::Invalid(format!("component {id}: {e}")))?
                {
                    if !raw.variables.contains_key(reference) {
                        return invalid(format!(
                            "component {id}: variable {name} uses undeclared {{{{ {reference} }}}}"
                        ));
                    }
                }
            }
            for host in &c.allowed_outbound_hosts {
                if host.contains("{{") {
                    // Checked once rendered with the variables' values.
                    let references = template_references(host)
                        .map_err(|e| ManifestError::Invalid(format!("component {id}: {e}")))?;
                    if let Some(undeclared) = references.iter().find(|r| !raw.variables.contains_key(**r)) {
                        return invalid(format!("component {id}: allowed host uses undeclared {{{{ {undeclared} }}}}"));
                    }
                } else {
                    crate::outbound::Allowed::parse(host)
                        .map_err(|e| ManifestError::Invalid(format!("component {id}: {e}")))?;
                }
            }
            let source = base.join(&c.source);
            components.insert(
                id.clone(),
                ComponentDecl {
                    id,
                    source,
                    allowed_outbound_hosts: c.allowed_outbound_hosts,
                    variables: c.variables,
                    environment: c.environment,
                    files: c.files,
                    exclude_files: c.exclude_files,
                },
            );
        }
        let mut routes = Vec::new();
        for r in raw.trigger.http {
            if !components.contains_key(&r.component) {
                return invalid(format!("a route names unknown component {}", r.component));
            }
            for (field, value) in [("executor", &r.executor), ("static_response", &r.static_response)] {
                if value.is_some() {
                    return invalid(format!(
                        "the route of component {}: `{field}` is Spin's, but not supported by this host",
                        r.component
                    ));
                }
            }
            let pattern = match r.route {
                RawRouteConfig::Route(pattern) => Some(pattern),
                RawRouteConfig::Private { private: true } => None,
                RawRouteConfig::Private { private: false } => {
                    return invalid(format!(
                        "component {}: a route must be a pattern or {{ private = true }}, not {{ private = false }}",
                        r.component
                    ))
                }
            };
            routes.push(Route { pattern, component: r.component });
        }
        let application = (raw.application.name, raw.application.version);
        Ok(Manifest { variables: raw.variables, routes, components, application, root: base.to_path_buf() })
    }
}

fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The variables a template like `"https://{{ host }}/x"` refers to.
pub fn template_references(template: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed {{{{ in {template:?}"))?;
        let name = after[..end].trim();
        if !valid_variable_name(name) {
            return Err(format!("bad variable reference {name:?} in {template:?}"));
        }
        out.push(name);
        rest = &after[end + 2..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "x"
        [variables]
        key = { required = true, secret = true }
        region = { default = "eu" }
        [[trigger.http]]
        route = "/.well-known/jwks.json"
        component = "jwks"
        [[trigger.http]]
        route = "/api/sessions/..."
        component = "sessions"
        [[trigger.http]]
        route = "/api/sessions"
        component = "sessions"
        [component.jwks]
        source = "target/jwks.wasm"
        [component.jwks.variables]
        signing_key = "{{ key }}"
        [component.sessions]
        source = "target/sessions.wasm"
        allowed_outbound_hosts = ["http://127.0.0.1:*"]
        [component.sessions.variables]
        label = "region-{{region}}"
    "#;

    #[test]
    fn parses() {
        let m = Manifest::parse(GOOD, Path::new("/app")).unwrap();
        assert_eq!(m.components["jwks"].source, Path::new("/app/target/jwks.wasm"));
        let routes: Vec<_> = m.routes.iter().map(|r| (r.pattern.as_deref(), r.component.as_str())).collect();
        assert_eq!(
            routes,
            [
                (Some("/.well-known/jwks.json"), "jwks"),
                (Some("/api/sessions/..."), "sessions"),
                (Some("/api/sessions"), "sessions")
            ]
        );
        let private = GOOD.replacen("route = \"/api/sessions\"", "route = { private = true }", 1);
        let m = Manifest::parse(&private, Path::new("/app")).unwrap();
        assert_eq!(m.routes[2].pattern, None);
    }

    fn check(edit: (&str, &str), expected: &str) {
        let text = GOOD.replacen(edit.0, edit.1, 1);
        let err = Manifest::parse(&text, Path::new("/")).unwrap_err().to_string();
        assert!(err.contains(expected), "want {expected:?}, got {err:?}");
    }

    #[test]
    fn refusals() {
        check(("spin_manifest_version = 2", "spin_manifest_version = 1"), "is not 2");
        check(("signing_key = \"{{ key }}\"", "signing_key = \"{{ nope }}\""), "undeclared");
        check(("signing_key = \"{{ key }}\"", "signing_key = \"{{ key \""), "unclosed");
        check(("component = \"jwks\"", "component = \"ghost\""), "unknown component");
        check(("route = \"/api/sessions\"", "route = { private = false }"), "not { private = false }");
        check(("key = { required", "Key = { required"), "must match");
        check(("\"http://127.0.0.1:*\"", "\"127.0.0.1\""), "scheme");
        check(
            ("region = { default = \"eu\" }", "region = { default = \"eu\", required = true }"),
            "required and has a default",
        );
        check(("[variables]", "[variables]\nx = { deflt = \"1\" }"), "unknown field");
        let sessions = "[component.sessions]\n";
        check((sessions, "[component.sessions]\nfiles = [{ source = \"a\" }]\n"), "files");
        check((sessions, "[component.sessions]\nkey_value_stores = [\"default\"]\n"), "`key_value_stores` is Spin's");
        check((sessions, "[component.sessions]\nsourse = \"typo\"\n"), "field `sourse` is unknown");
        check(("component = \"jwks\"", "component = \"jwks\"\nexecutor = { type = \"wagi\" }"), "`executor` is Spin's");
        let built =
            GOOD.replacen(sessions, "[component.sessions]\ndescription = \"d\"\nbuild = { command = \"make\" }\n", 1);
        assert!(Manifest::parse(&built, Path::new("/")).is_ok(), "build-time fields are fine");
        let files = GOOD.replacen(
            sessions,
            "[component.sessions]\nfiles = [\"static/*\", { source = \"a\", destination = \"/b\" }]\nexclude_files = [\"**/*.md\"]\n",
            1,
        );
        let m = Manifest::parse(&files, Path::new("/app")).expect("files and exclude_files are carried out");
        let sessions = &m.components["sessions"];
        assert_eq!(sessions.files.len(), 2);
        assert_eq!(sessions.exclude_files, ["**/*.md"]);
        assert_eq!(m.root, Path::new("/app"));
    }
}

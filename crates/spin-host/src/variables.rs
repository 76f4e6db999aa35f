//! Spin variables: application variables come from `SPIN_VARIABLE_<NAME>` environment variables, then a
//! dotenv file, then the manifest's defaults; each component sees its own variables, rendered from
//! templates over the application variables. Values are never printed.

use crate::manifest::{template_references, Manifest};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why variables could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum VariablesError {
    /// Required variables without a value.
    #[error("required variables have no value: {0} (set SPIN_VARIABLE_<NAME> or put them in the env file)")]
    Missing(String),
    /// The dotenv file is unreadable or malformed.
    #[error("env file: {0}")]
    EnvFile(String),
}

/// A component's resolved variables.
#[derive(Clone, Default)]
pub struct ComponentVariables(Arc<BTreeMap<String, String>>);

impl core::fmt::Debug for ComponentVariables {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl ComponentVariables {
    /// The value of `name`, if the component declares it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// One component's variables and its allowlist, rendered.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Its variables.
    pub variables: ComponentVariables,
    /// Its `allowed_outbound_hosts`, templates rendered.
    pub allowed_outbound_hosts: Vec<String>,
}

/// Parses a dotenv file: `NAME=value` lines, `#` comments, optional `export `, optional quotes.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, VariablesError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| VariablesError::EnvFile(format!("line {}: expected NAME=value", n + 1)))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.insert(key.trim().to_owned(), value.replace("\\n", "\n"));
    }
    Ok(out)
}

/// Resolves every application variable, then every component's variables.
/// `env` is the process environment; `file` the parsed env file (both keyed by their own names).
pub fn resolve(
    manifest: &Manifest,
    env: &BTreeMap<String, String>,
    file: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Resolved>, VariablesError> {
    let mut app = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, decl) in &manifest.variables {
        let key = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        let value = env
            .get(&key)
            .or_else(|| file.get(&key))
            .or_else(|| file.get(name))
            .cloned()
            .or_else(|| decl.default.clone());
        match value {
            Some(v) => {
                app.insert(name.as_str(), v);
            }
            None if decl.required => missing.push(name.as_str()),
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(VariablesError::Missing(missing.join(", ")));
    }
    let render = |template: &str| {
        // References were checked when the manifest loaded; a declared variable without a value
        // (optional, no default) renders as empty.
        let mut rendered = template.to_owned();
        for reference in template_references(template).unwrap_or_default() {
            rendered = render_one(&rendered, reference, app.get(reference).map(String::as_str).unwrap_or(""));
        }
        rendered
    };
    let mut out = BTreeMap::new();
    for (id, component) in &manifest.components {
        let vars = component.variables.iter().map(|(name, template)| (name.clone(), render(template))).collect();
        let allowed_outbound_hosts = component.allowed_outbound_hosts.iter().map(|h| render(h)).collect();
        out.insert(id.clone(), Resolved { variables: ComponentVariables(Arc::new(vars)), allowed_outbound_hosts });
    }
    Ok(out)
}

/// Replaces the first `{{ name }}` (any inner spacing) with `value`.
fn render_one(template: &str, name: &str, value: &str) -> String {
    let mut rest = template;
    let mut out = String::new();
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        if after[..end].trim() == name {
            out.push_str(&rest[..start]);
            out.push_str(value);
            out.push_str(&after[end + 2..]);
            return out;
        }
        out.push_str(&rest[..start + 2 + end + 2]);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MANIFEST: &str = r#"
        spin_manifest_version = 2
        [variables]
        key = { required = true, secret = true }
        region = { default = "eu" }
        optional = {}
        [component.c]
        source = "c.wasm"
        allowed_outbound_hosts = ["postgres://{{ region }}.db:5432"]
        [component.c.variables]
        signing_key = "{{ key }}"
        label = "{{region}}-{{ region }}-{{ optional }}"
    "#;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn precedence_templates_and_missing() {
        let m = Manifest::parse(MANIFEST, Path::new("/")).unwrap();
        let env = map(&[("SPIN_VARIABLE_KEY", "from-env")]);
        let file = map(&[("key", "from-file"), ("SPIN_VARIABLE_REGION", "us")]);
        let vars = resolve(&m, &env, &file).unwrap();
        assert_eq!(vars["c"].variables.get("signing_key"), Some("from-env"));
        assert_eq!(vars["c"].variables.get("label"), Some("us-us-"));
        assert_eq!(vars["c"].allowed_outbound_hosts, ["postgres://us.db:5432"]);
        assert_eq!(vars["c"].variables.get("key"), None, "components see only their own variables");
        let vars = resolve(&m, &BTreeMap::new(), &map(&[("key", "k")])).unwrap();
        assert_eq!(vars["c"].variables.get("label"), Some("eu-eu-"));
        let err = resolve(&m, &BTreeMap::new(), &BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("key"), "{err}");
        assert!(!format!("{:?}", vars["c"].variables).contains("\"k\""), "values are not printed");
    }

    #[test]
    fn env_files() {
        let parsed = parse_env_file("# c\nexport A=1\nB = \"two words\"\nC='x\\ny'\n\n").unwrap();
        assert_eq!(parsed, map(&[("A", "1"), ("B", "two words"), ("C", "x\ny")]));
        assert!(parse_env_file("oops").is_err());
    }
}

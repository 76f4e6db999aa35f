//! A program's settings from the process environment: each name its catalogue declares
//! (`edgeshell_core::settings`), and for a secret that is unset, the contents of the file its
//! `<NAME>_FILE` names (as Kubernetes mounts secrets). Parsing, defaults and errors are the core's
//! [`Reader`]'s.

use edgeshell_core::settings::{Program, SettingsError};
use std::collections::HashMap;

/// The values a program's environment gives its settings.
#[derive(Clone, Default)]
pub struct Environment {
    values: HashMap<&'static str, String>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets live here: names only.
        f.debug_struct("Environment").field("set", &self.values.keys().collect::<Vec<_>>()).finish()
    }
}

impl Environment {
    /// Reads `program`'s settings from this process's environment.
    pub fn read(program: Program) -> Result<Environment, SettingsError> {
        Environment::from_lookup(program, |name| std::env::var(name).ok())
    }

    /// Reads `program`'s settings through `var` (a test's map, or the environment).
    pub fn from_lookup(program: Program, var: impl Fn(&str) -> Option<String>) -> Result<Environment, SettingsError> {
        let mut values = HashMap::new();
        for setting in program.settings() {
            let value = match var(setting.name) {
                Some(value) => Some(value),
                None if setting.secret => match var(&format!("{}_FILE", setting.name)) {
                    Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| SettingsError::Invalid {
                        name: setting.name,
                        why: format!("{}_FILE {path}: {e}", setting.name),
                    })?),
                    None => None,
                },
                None => None,
            };
            if let Some(value) = value {
                values.insert(setting.name, value);
            }
        }
        Ok(Environment { values })
    }

    /// The raw value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }

    /// The lookup a [`Reader`] takes: `Reader::new(program, &environment.lookup())`.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeshell_core::settings::Reader;

    #[test]
    fn secrets_come_from_their_file_when_unset_and_undeclared_names_are_ignored() {
        let dir = std::env::temp_dir().join(format!("edgeshell-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "esp_from_file\n").unwrap();
        let path = file.to_string_lossy().into_owned();
        let vars = [("EDGESHELL_POOL_API_KEY_FILE", path.as_str()), ("EDGESHELL_POOL_REGION", "eu"), ("OTHER", "x")];
        let env = Environment::from_lookup(Program::PoolAgent, |n| {
            vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert_eq!(env.get("EDGESHELL_POOL_API_KEY").as_deref(), Some("esp_from_file\n"));
        assert_eq!(env.get("OTHER"), None);
        let key = Reader::new(Program::PoolAgent, &env.lookup()).required("EDGESHELL_POOL_API_KEY").unwrap();
        assert_eq!(key, "esp_from_file");
        assert!(!format!("{env:?}").contains("esp_"), "values are never printed");
        let missing = [("EDGESHELL_SIGNER_CLIENTS_FILE", "/nonexistent/key")];
        let err = Environment::from_lookup(Program::Signer, |n| {
            missing.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
        })
        .unwrap_err();
        assert!(matches!(err, SettingsError::Invalid { name: "EDGESHELL_SIGNER_CLIENTS", .. }), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

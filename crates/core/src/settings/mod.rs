//! Every setting of every edgeshell program in one catalogue ([`catalogue`]): its name, its one default,
//! whether it is a secret, and what it means; and the one way to read them ([`Reader`]).
//!
//! A platform passes its lookup in (the process environment, Spin variables, the Worker's vars), so
//! reading stays I/O-free and every program parses, defaults and reports errors alike: a blank value is
//! unset, an unset value takes the catalogue's default, a malformed one is an error naming the setting,
//! and reading a name the catalogue does not declare is an error too, so no program reads a setting
//! the documentation does not list. `docs/configuration.md` is rendered from the catalogue
//! ([`render_markdown`]); tidy tests keep it, `spin.toml` and `wrangler.toml` equal to it.

mod catalogue;

pub use catalogue::{ALL, DEV, EDGE, FUNCTIONS, POOL_AGENT, RUNNER, SAMPLE_CLI, SIGNER};

use core::fmt::Write as _;
use core::str::FromStr;
use core::time::Duration;

/// Which program reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// The control functions (Spin variables, declared in `spin.toml`).
    Functions,
    /// The edge Worker and its rooms (vars and secrets, declared in `wrangler.toml`).
    Edge,
    /// The token signer (`edgeshell-signer`, environment).
    Signer,
    /// A region's pool agent (`edgeshell-pool-agent`, environment).
    PoolAgent,
    /// The runner (`edgeshell-runner`, environment set by the pool agent or the image).
    Runner,
    /// The image's default session program (`edgeshell-sample-cli`, environment).
    SampleCli,
    /// The local stack, the tests and the developer tasks (environment).
    Dev,
}

impl Program {
    /// The program's catalogue.
    pub fn settings(self) -> &'static [Setting] {
        match self {
            Program::Functions => FUNCTIONS,
            Program::Edge => EDGE,
            Program::Signer => SIGNER,
            Program::PoolAgent => POOL_AGENT,
            Program::Runner => RUNNER,
            Program::SampleCli => SAMPLE_CLI,
            Program::Dev => DEV,
        }
    }

    /// A short lowercase name (the marker of its table in `docs/configuration.md`).
    pub fn name(self) -> &'static str {
        match self {
            Program::Functions => "functions",
            Program::Edge => "edge",
            Program::Signer => "signer",
            Program::PoolAgent => "pool-agent",
            Program::Runner => "runner",
            Program::SampleCli => "sample-cli",
            Program::Dev => "dev",
        }
    }
}

/// What a setting is when it is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// It must be set; the program refuses to start without it.
    Required,
    /// Unset means off, none, or "not configured".
    Unset,
    /// This text.
    Text(&'static str),
    /// This number (in the unit its name says: `_SECS`, `_MS`, `_MB`...).
    Number(u64),
    /// Worked out from other settings by the program, as described.
    Derived(&'static str),
}

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Its name, as the program's platform spells it.
    pub name: &'static str,
    /// What it is when not set.
    pub default: DefaultValue,
    /// Whether it holds a secret (never logged; natively also read from `<NAME>_FILE`).
    pub secret: bool,
    /// What it means, in one or two sentences.
    pub meaning: &'static str,
}

/// Why a setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A required setting is unset.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A setting holds something unusable.
    #[error("{name} is invalid: {why}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The program read a name its catalogue does not declare (a bug, caught by its tests).
    #[error("{0} is not in the settings catalogue")]
    Undeclared(String),
}

/// Reads one program's settings through its platform's lookup.
pub struct Reader<'a> {
    settings: &'static [Setting],
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Reader<'a> {
    /// A reader of `program`'s settings; `lookup` answers a name with its raw value.
    pub fn new(program: Program, lookup: &'a dyn Fn(&str) -> Option<String>) -> Reader<'a> {
        Reader { settings: program.settings(), lookup }
    }

    /// The declaration of `name`.
    pub fn setting(&self, name: &str) -> Result<&'static Setting, SettingsError> {
        self.settings.iter().find(|s| s.name == name).ok_or_else(|| SettingsError::Undeclared(name.to_owned()))
    }

    /// The value as set (trimmed), `None` when unset or blank.
    pub fn raw(&self, name: &str) -> Result<Option<String>, SettingsError> {
        self.setting(name)?;
        Ok((self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
    }

    /// The value, else its text or number default; `None` for an unset optional or derived one.
    pub fn text(&self, name: &str) -> Result<Option<String>, SettingsError> {
        let setting = self.setting(name)?;
        Ok(match (self.raw(name)?, setting.default) {
            (Some(value), _) => Some(value),
            (None, DefaultValue::Required) => return Err(SettingsError::Missing(setting.name)),
            (None, DefaultValue::Text("")) => None,
            (None, DefaultValue::Text(text)) => Some(text.to_owned()),
            (None, DefaultValue::Number(n)) => Some(n.to_string()),
            (None, DefaultValue::Unset | DefaultValue::Derived(_)) => None,
        })
    }

    /// A value that must be there (set, or a text or number default).
    pub fn required(&self, name: &str) -> Result<String, SettingsError> {
        let setting = self.setting(name)?;
        self.text(name)?.ok_or(SettingsError::Missing(setting.name))
    }

    /// A shared bearer key (the internal API key): required, and at least [`MIN_KEY_BYTES`] long, so
    /// that a guessable one is a configuration error rather than an open door.
    pub fn bearer_key(&self, name: &str) -> Result<String, SettingsError> {
        let key = self.required(name)?;
        if key.len() < MIN_KEY_BYTES {
            let why = format!(
                "{} characters; a bearer key has at least {MIN_KEY_BYTES} (make one with `openssl rand -hex 32`)",
                key.len()
            );
            return Err(self.invalid(name, why));
        }
        Ok(key)
    }

    /// The value parsed as `T`, `None` when unset without a default.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, SettingsError>
    where
        T::Err: core::fmt::Display,
    {
        let setting = self.setting(name)?;
        // A secret's value never appears in an error.
        let shown = |v: &str| if setting.secret { "the value".to_owned() } else { format!("{v:?}") };
        self.text(name)?
            .map(|v| v.parse::<T>().map_err(|e| invalid(setting, format!("{}: {e}", shown(&v)))))
            .transpose()
    }

    /// The value parsed as `T`, for a setting that always has one (set, or its default).
    pub fn value<T: FromStr>(&self, name: &str) -> Result<T, SettingsError>
    where
        T::Err: core::fmt::Display,
    {
        let setting = self.setting(name)?;
        self.parse(name)?.ok_or(SettingsError::Missing(setting.name))
    }

    /// A whole number that always has a value (set, or its default).
    pub fn number<T: TryFrom<u64>>(&self, name: &str) -> Result<T, SettingsError> {
        let setting = self.setting(name)?;
        let n: u64 = self.value(name)?;
        T::try_from(n).map_err(|_| invalid(setting, format!("{n} is out of range")))
    }

    /// A whole number of seconds (`_SECS`).
    pub fn secs(&self, name: &str) -> Result<Duration, SettingsError> {
        self.number(name).map(Duration::from_secs)
    }

    /// A whole number of milliseconds (`_MS`).
    pub fn millis(&self, name: &str) -> Result<Duration, SettingsError> {
        self.number(name).map(Duration::from_millis)
    }

    /// A list separated by commas or white space, blanks dropped; empty when unset.
    pub fn list(&self, name: &str) -> Result<Vec<String>, SettingsError> {
        Ok(self
            .text(name)?
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// One of `choices`, returned as its index.
    pub fn choice(&self, name: &str, choices: &[&str]) -> Result<usize, SettingsError> {
        let setting = self.setting(name)?;
        let value = self.required(name)?;
        choices
            .iter()
            .position(|c| *c == value)
            .ok_or_else(|| invalid(setting, format!("{value:?}: use one of {}", choices.join(", "))))
    }

    /// The URL of a service this program calls with credentials or trusts for keys (`None` when
    /// unset): `https://`, or `http://` only to a loopback host (`127.0.0.0/8`, `::1`, `localhost`),
    /// with no user info; without a trailing `/`. See [`service_url`].
    pub fn service_url(&self, name: &str) -> Result<Option<String>, SettingsError> {
        match self.text(name)? {
            Some(value) => service_url(&value).map(Some).map_err(|why| self.invalid(name, why)),
            None => Ok(None),
        }
    }

    /// An error about `name`'s value, for checks beyond parsing (a URL's scheme, a key's prefix).
    pub fn invalid(&self, name: &str, why: impl Into<String>) -> SettingsError {
        match self.setting(name) {
            Ok(setting) => invalid(setting, why.into()),
            Err(undeclared) => undeclared,
        }
    }
}

fn invalid(setting: &Setting, why: String) -> SettingsError {
    SettingsError::Invalid { name: setting.name, why }
}

/// Every name a program's platform may be given: each setting, and `<NAME>_FILE` for native secrets
/// (for checks that deployment files name only real settings).
pub fn names(program: Program) -> Vec<String> {
    let native = reads_secret_files(program);
    let mut names = Vec::new();
    for s in program.settings() {
        names.push(s.name.to_owned());
        if native && s.secret {
            names.push(format!("{}_FILE", s.name));
        }
    }
    names
}

/// The program's settings as the Markdown table `docs/configuration.md` holds.
pub fn render_markdown(program: Program) -> String {
    let native = reads_secret_files(program);
    let mut out = String::from("| setting | default | meaning |\n|---|---|---|\n");
    for s in program.settings() {
        let default = match s.default {
            DefaultValue::Required => "required".to_owned(),
            DefaultValue::Unset => "unset".to_owned(),
            DefaultValue::Text("") => "empty".to_owned(),
            DefaultValue::Text(text) => format!("`{text}`"),
            DefaultValue::Number(n) => format!("`{n}`"),
            DefaultValue::Derived(how) => how.to_owned(),
        };
        let secret = match (s.secret, native) {
            (true, true) => format!(" Secret; or from the file `{}_FILE` names.", s.name),
            (true, false) => " Secret.".to_owned(),
            (false, _) => String::new(),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "| `{}` | {default} | {}{secret} |", s.name, s.meaning);
    }
    out
}

/// Whether a program takes a secret from the file `<NAME>_FILE` names (the native services read their
/// environment through the platform's `Environment`, which does).
fn reads_secret_files(program: Program) -> bool {
    matches!(program, Program::Signer | Program::PoolAgent | Program::Runner)
}

#[cfg(test)]
mod tests;

/// The shortest shared bearer key accepted ([`Reader::bearer_key`]): 32 characters, 128 bits or more
/// of a random hex or base64 key.
pub const MIN_KEY_BYTES: usize = 32;

/// Checks the URL of a service called with credentials or trusted for keys: plain `http://` would let
/// anyone on the path read the credentials or swap the keys, so it is allowed only to this machine.
/// Returns the URL without a trailing `/`.
pub fn service_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    let (scheme, rest) = value.split_once("://").ok_or_else(|| format!("{value:?} is not a URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("{value:?} carries user info; put credentials in their own setting"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    if host.is_empty() {
        return Err(format!("{value:?} names no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => return Err(format!("{value:?} must use https:// (http:// only to 127.0.0.1, ::1 or localhost)")),
        other => return Err(format!("{value:?} must be an https:// URL, not {other}://")),
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<core::net::IpAddr>().is_ok_and(|ip| match ip {
            core::net::IpAddr::V4(v4) => v4.is_loopback(),
            core::net::IpAddr::V6(v6) => v6.is_loopback(),
        })
}

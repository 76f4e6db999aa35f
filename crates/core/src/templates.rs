//! Session templates: what an operator lets users start. A pool's catalogue (a JSON file the operator
//! writes, the same for every agent of a region) lists templates: a name, what the page shows, the
//! program (a command, and on Kubernetes an image and a CLI bundle), resource limits, the regions that
//! offer it, and the environment variables a user may set. An agent offers the templates its region
//! is allowed ([`Catalogue::offered_in`]) and reports their public part ([`TemplateOffer`]) with its
//! heartbeat; the control plane lists them (`GET /api/templates`), checks a mint's request against
//! them ([`Offers::resolve`]) and places the session only where its template is offered. The agent
//! checks the start command again against its own catalogue ([`Template::check_env`]) before anything
//! runs.
//!
//! A pool without a catalogue offers one template, [`DEFAULT_TEMPLATE`], running its session command
//! with no variables a user may set ([`Catalogue::single`]).

use crate::bundles::parse_hex32;
use crate::ids::RegionId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The template a mint that names none gets.
pub const DEFAULT_TEMPLATE: &str = "default";
/// Most templates in one catalogue.
pub const MAX_TEMPLATES: usize = 64;
/// Most variables a user may set for one session.
pub const MAX_ENV_VARS: usize = 32;
/// The longest value of one variable, in bytes.
pub const MAX_ENV_VALUE: usize = 4096;
/// The most bytes of names and values a user may set for one session.
pub const MAX_ENV_TOTAL: usize = 16 * 1024;
/// The longest variable name.
pub const MAX_ENV_NAME: usize = 128;

/// Variables the runner sets itself, or that change how every program loads: never a user's.
const RESERVED_ENV: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "COLORTERM", "LANG", "PWD"];

/// Why a catalogue was refused (the agent does not start with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template catalogue: {0}")]
pub struct CatalogueError(String);

/// A field of a session request that cannot be accepted: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct FieldError {
    /// The request field, such as `template` or `env.ANTHROPIC_MODEL`.
    pub field: String,
    /// Why, in a sentence a user can act on.
    pub why: String,
    /// What kind of refusal.
    pub kind: Refusal,
}

/// Why a session's template cannot be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No agent has ever offered it: a mistake in the request.
    UnknownTemplate,
    /// A variable the template does not allow, or a value out of bounds.
    BadEnv,
    /// Known, but no region offering it is healthy now: try again later.
    Unavailable,
    /// A repository the template does not take, or a URL or ref out of bounds.
    BadRepo,
}

impl FieldError {
    fn new(field: impl Into<String>, why: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), why: why.into(), kind: Refusal::BadEnv }
    }

    /// A refused repository field (`repo`, `repo.url`, `repo.ref`).
    pub fn repo(field: impl Into<String>, why: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), why: why.into(), kind: Refusal::BadRepo }
    }

    /// The answer for it, from the one error table.
    pub fn to_api_error(&self) -> crate::api_error::ApiError {
        use crate::api_error::{ApiError, ErrorCode};
        let code = match self.kind {
            Refusal::UnknownTemplate => ErrorCode::UnknownTemplate,
            Refusal::BadEnv => ErrorCode::BadEnv,
            Refusal::Unavailable => ErrorCode::NoRegionAvailable,
            Refusal::BadRepo => ErrorCode::BadRepo,
        };
        ApiError::new(code, self.to_string())
    }
}

/// A CLI bundle a template installs before its program starts (Kubernetes: the runner image's
/// entrypoint downloads and checks it; the pool's host allowlist still applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateBundle {
    /// `https://` URL of a `.tar` or `.tar.gz`.
    pub url: String,
    /// Its SHA-256, hex: nothing else is installed.
    pub sha256: String,
}

/// One template, as the operator declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Its name in requests: 1 to 40 characters of `a-z`, `0-9` and `-`.
    pub name: String,
    /// What the page shows.
    pub title: String,
    /// A sentence for the page.
    #[serde(default)]
    pub description: String,
    /// The program's command line (run by `/bin/sh -c exec ...`); absent, the pool's session command.
    #[serde(default)]
    pub command: Option<String>,
    /// The runner image (Kubernetes); absent, the pool's.
    #[serde(default)]
    pub image: Option<String>,
    /// A CLI bundle to install first (Kubernetes).
    #[serde(default)]
    pub bundle: Option<TemplateBundle>,
    /// Memory of the program in MiB; absent, the pool's.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// CPU in millicores (Kubernetes); absent, the pool's.
    #[serde(default)]
    pub cpu_millis: Option<u32>,
    /// Processes of the session (locally); absent, the pool's.
    #[serde(default)]
    pub process_limit: Option<u64>,
    /// The regions that offer it; empty, every region with this catalogue.
    #[serde(default)]
    pub regions: Vec<RegionId>,
    /// The variables a user may set for a session, by exact name.
    #[serde(default)]
    pub env: Vec<String>,
    /// The user's secrets the program gets as variables, by name (a secret the user has not set is
    /// left out); fetched by the agent at start, never in the start command.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The hosts (`host` or `host:port`) a session's repository may come from; empty, it takes none.
    #[serde(default)]
    pub repo_hosts: Vec<String>,
    /// The user's secret the clone authenticates with (HTTPS basic auth, e.g. a Git token), if any.
    #[serde(default)]
    pub repo_token: Option<String>,
}

/// What a user sees of a template: its heartbeat report, `GET /api/templates`' entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateOffer {
    /// The name.
    pub name: String,
    /// What the page shows.
    pub title: String,
    /// A sentence for the page.
    #[serde(default)]
    pub description: String,
    /// The variables a user may set.
    #[serde(default)]
    pub env: Vec<String>,
    /// The user's secrets it takes, by name.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The hosts a session's repository may come from; empty, it takes none.
    #[serde(default)]
    pub repo_hosts: Vec<String>,
    /// Memory in MiB, when the template sets it.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// CPU in millicores, when the template sets it.
    #[serde(default)]
    pub cpu_millis: Option<u32>,
}

/// A pool's templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// In the operator's order (the page shows them so).
    pub templates: Vec<Template>,
}

impl Catalogue {
    /// Parses and checks a catalogue file's JSON.
    pub fn parse(json: &str) -> Result<Catalogue, CatalogueError> {
        let catalogue: Catalogue = serde_json::from_str(json).map_err(|e| CatalogueError(e.to_string()))?;
        catalogue.check()?;
        Ok(catalogue)
    }

    /// The catalogue of a pool that declares none: [`DEFAULT_TEMPLATE`] running `command` (the pool's
    /// session command when `None`).
    pub fn single(command: Option<String>) -> Catalogue {
        Catalogue {
            templates: vec![Template {
                name: DEFAULT_TEMPLATE.into(),
                title: "Default".into(),
                description: String::new(),
                command,
                image: None,
                bundle: None,
                memory_mb: None,
                cpu_millis: None,
                process_limit: None,
                regions: Vec::new(),
                env: Vec::new(),
                secrets: Vec::new(),
                repo_hosts: Vec::new(),
                repo_token: None,
            }],
        }
    }

    fn check(&self) -> Result<(), CatalogueError> {
        let fail = |name: &str, why: String| Err(CatalogueError(format!("template {name:?}: {why}")));
        if self.templates.is_empty() || self.templates.len() > MAX_TEMPLATES {
            return Err(CatalogueError(format!("lists 1 to {MAX_TEMPLATES} templates")));
        }
        for (i, t) in self.templates.iter().enumerate() {
            if let Err(why) = check_name(&t.name) {
                return fail(&t.name, why);
            }
            if self.templates[..i].iter().any(|o| o.name == t.name) {
                return fail(&t.name, "declared twice".into());
            }
            if t.title.trim().is_empty() || t.title.chars().count() > 80 || t.description.chars().count() > 400 {
                return fail(&t.name, "a title of 1 to 80 characters and a description of at most 400".into());
            }
            if t.command.as_deref().is_some_and(|c| c.trim().is_empty() || c.contains('\0')) {
                return fail(&t.name, "an empty command".into());
            }
            if t.image.as_deref().is_some_and(|i| i.is_empty() || i.chars().any(char::is_whitespace)) {
                return fail(&t.name, "an image reference without spaces".into());
            }
            if let Some(b) = &t.bundle {
                if !b.url.starts_with("https://") || parse_hex32(&b.sha256).is_none() {
                    return fail(&t.name, "a bundle is an https:// url and its 64-hex-digit sha256".into());
                }
            }
            let sane = t.memory_mb.is_none_or(|m| (16..=1 << 20).contains(&m))
                && t.cpu_millis.is_none_or(|c| (10..=256_000).contains(&c))
                && t.process_limit.is_none_or(|p| (1..=1 << 20).contains(&p));
            if !sane {
                return fail(&t.name, "memory_mb 16..1048576, cpu_millis 10..256000, process_limit 1..1048576".into());
            }
            if t.env.len() > MAX_ENV_VARS {
                return fail(&t.name, format!("at most {MAX_ENV_VARS} variables"));
            }
            for (j, name) in t.env.iter().enumerate() {
                if let Err(why) = check_env_name(name) {
                    return fail(&t.name, why);
                }
                if t.env[..j].contains(name) {
                    return fail(&t.name, format!("variable {name} listed twice"));
                }
            }
            if t.secrets.len() > MAX_ENV_VARS {
                return fail(&t.name, format!("at most {MAX_ENV_VARS} secrets"));
            }
            for (j, name) in t.secrets.iter().enumerate() {
                if let Err(why) = check_env_name(name) {
                    return fail(&t.name, why);
                }
                if t.secrets[..j].contains(name) || t.env.contains(name) {
                    return fail(&t.name, format!("{name} is listed twice (a variable is a user's value or a secret)"));
                }
            }
            if let Err(why) = check_repo_hosts(&t.repo_hosts) {
                return fail(&t.name, why);
            }
            if let Some(token) = &t.repo_token {
                if t.repo_hosts.is_empty() {
                    return fail(&t.name, "repo_token without repo_hosts".into());
                }
                check_env_name(token).map_err(|why| CatalogueError(format!("template {:?}: {why}", t.name)))?;
            }
        }
        Ok(())
    }

    /// The templates `region` offers, in the catalogue's order.
    pub fn offered_in<'a>(&'a self, region: &'a RegionId) -> impl Iterator<Item = &'a Template> + 'a {
        self.templates.iter().filter(move |t| t.regions.is_empty() || t.regions.contains(region))
    }

    /// A template `region` offers, by name.
    pub fn find(&self, region: &RegionId, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name == name && (t.regions.is_empty() || t.regions.contains(region)))
    }
}

impl TemplateOffer {
    /// Checks an agent's report of it before it is stored or shown: the catalogue's own rules.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if self.title.trim().is_empty() || self.title.chars().count() > 80 || self.description.chars().count() > 400 {
            return Err(format!("template {}: a title of 1 to 80 characters, a description of at most 400", self.name));
        }
        if self.env.len() > MAX_ENV_VARS || self.secrets.len() > MAX_ENV_VARS {
            return Err(format!("template {}: at most {MAX_ENV_VARS} variables and secrets each", self.name));
        }
        self.env.iter().chain(&self.secrets).try_for_each(|name| check_env_name(name))?;
        check_repo_hosts(&self.repo_hosts).map_err(|why| format!("template {}: {why}", self.name))
    }
}

/// The templates every agent of a region offers, from each agent's report (an agent still on an older
/// catalogue during a rollout narrows the region's offer rather than failing starts it cannot take).
/// An empty report is an agent from before templates, which runs only its session command: `default`.
pub fn common_offers(reports: &[Vec<TemplateOffer>]) -> Vec<TemplateOffer> {
    let legacy = [Catalogue::single(None).templates[0].offer()];
    let report = |r: &'_ Vec<TemplateOffer>| -> Vec<TemplateOffer> {
        if r.is_empty() {
            legacy.to_vec()
        } else {
            r.clone()
        }
    };
    let mut reports = reports.iter().map(report);
    let Some(first) = reports.next() else { return Vec::new() };
    let rest: Vec<Vec<TemplateOffer>> = reports.collect();
    first.into_iter().filter(|o| rest.iter().all(|r| r.iter().any(|x| x.name == o.name))).collect()
}

impl Template {
    /// What a user sees of it.
    pub fn offer(&self) -> TemplateOffer {
        TemplateOffer {
            name: self.name.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            env: self.env.clone(),
            secrets: self.secrets.clone(),
            repo_hosts: self.repo_hosts.clone(),
            memory_mb: self.memory_mb,
            cpu_millis: self.cpu_millis,
        }
    }

    /// Checks the variables a session request sets against this template.
    pub fn check_env(&self, env: &BTreeMap<String, String>) -> Result<(), FieldError> {
        check_env(&self.name, &self.env, env)
    }
}

/// Checks `env` against the names template `template` allows: each name allowed, each value a
/// bounded string without NUL, the whole bounded.
pub fn check_env(template: &str, allowed: &[String], env: &BTreeMap<String, String>) -> Result<(), FieldError> {
    if env.len() > MAX_ENV_VARS {
        return Err(FieldError::new("env", format!("at most {MAX_ENV_VARS} variables")));
    }
    let mut total = 0;
    for (name, value) in env {
        let field = || format!("env.{}", name.chars().take(MAX_ENV_NAME).collect::<String>());
        if !allowed.contains(name) {
            let may = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
            let why = format!("template {template} does not let you set this variable (it allows: {may})");
            return Err(FieldError::new(field(), why));
        }
        if value.len() > MAX_ENV_VALUE || value.contains('\0') {
            return Err(FieldError::new(field(), format!("a value of at most {MAX_ENV_VALUE} bytes, without NUL")));
        }
        total += name.len() + value.len();
    }
    if total > MAX_ENV_TOTAL {
        return Err(FieldError::new("env", format!("at most {MAX_ENV_TOTAL} bytes of names and values in all")));
    }
    Ok(())
}

/// Checks the hosts a template takes repositories from: `host` or `host:port`, lowercase DNS names or
/// addresses, at most 16.
fn check_repo_hosts(hosts: &[String]) -> Result<(), String> {
    let ok = hosts.len() <= 16
        && hosts.iter().all(|h| {
            (1..=255).contains(&h.len())
                && h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b))
                && !h.starts_with(['-', '.', ':'])
        });
    ok.then_some(()).ok_or_else(|| "repo_hosts: at most 16 of `host` or `host:port`, lowercase".into())
}

/// Checks a template's name.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=40).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    ok.then_some(()).ok_or_else(|| "a name is 1 to 40 characters of a-z, 0-9 and '-', not starting with '-'".into())
}

/// Checks a variable name an operator lets users set: a shell name, not one the runner sets itself,
/// not the dynamic loader's (`LD_*`) and not edgeshell's own (`EDGESHELL_*`).
pub fn check_env_name(name: &str) -> Result<(), String> {
    let shaped = (1..=MAX_ENV_NAME).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !shaped {
        return Err(format!("{name:?} is not a variable name (letters, digits, '_', not starting with a digit)"));
    }
    if RESERVED_ENV.contains(&name) || name.starts_with("LD_") || name.starts_with("EDGESHELL_") {
        return Err(format!("{name} is set by the runner or the loader, never by a user"));
    }
    Ok(())
}

/// Every region's offers, as the control plane reads them from the agents' reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offers {
    by_region: Vec<(RegionId, Vec<TemplateOffer>)>,
    /// Templates agents no longer fresh reported: known, though no healthy region offers them now.
    known: Vec<String>,
}

/// One entry of `GET /api/templates`: a template and the regions offering it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// What a user sees (the first region's, by name, when regions disagree).
    #[serde(flatten)]
    pub offer: TemplateOffer,
    /// The regions offering it.
    pub regions: Vec<RegionId>,
}

impl Offers {
    /// From each region's report (one list per region; several agents of a region report the same).
    pub fn new(mut by_region: Vec<(RegionId, Vec<TemplateOffer>)>) -> Offers {
        by_region.sort_by(|a, b| a.0.cmp(&b.0));
        Offers { by_region, known: Vec::new() }
    }

    /// Also knows the templates of `stale` reports (agents not heard from within the health TTL), so a
    /// template whose regions are all down now is unavailable, not unknown.
    pub fn with_stale(mut self, stale: &[Vec<TemplateOffer>]) -> Offers {
        for report in stale {
            let names: Vec<String> = if report.is_empty() {
                vec![DEFAULT_TEMPLATE.to_owned()]
            } else {
                report.iter().map(|o| o.name.clone()).collect()
            };
            for name in names {
                if !self.known.contains(&name) {
                    self.known.push(name);
                }
            }
        }
        self
    }

    /// The templates offered anywhere, each once, in the first region's order.
    pub fn list(&self) -> Vec<Listed> {
        let mut listed: Vec<Listed> = Vec::new();
        for (region, offers) in &self.by_region {
            for offer in offers {
                match listed.iter_mut().find(|l| l.offer.name == offer.name) {
                    Some(l) => l.regions.push(region.clone()),
                    None => listed.push(Listed { offer: offer.clone(), regions: vec![region.clone()] }),
                }
            }
        }
        listed
    }

    /// The regions that may run a session of `template` with `env`: those offering it whose template
    /// accepts the variables. Unknown template, or variables no region accepts: the field and why.
    pub fn resolve(
        &self,
        template: &str,
        env: &BTreeMap<String, String>,
        repo: Option<&crate::repo::RepoRequest>,
    ) -> Result<Vec<RegionId>, FieldError> {
        let mut first_refusal = None;
        let mut regions = Vec::new();
        for (region, offers) in &self.by_region {
            let Some(offer) = offers.iter().find(|o| o.name == template) else { continue };
            let checked = check_env(template, &offer.env, env)
                .and_then(|()| repo.map_or(Ok(()), |r| r.check(template, &offer.repo_hosts).map(drop)));
            match checked {
                Ok(()) => regions.push(region.clone()),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        match (regions.is_empty(), first_refusal) {
            (false, _) => Ok(regions),
            (true, Some(refusal)) => Err(refusal),
            // Known but down, or nothing offered anywhere (no region is up): unavailable, not a mistake.
            (true, None) if self.known.iter().any(|k| k == template) || self.list().is_empty() => {
                let why = format!(
                    "no region offering template {:?} is available now; try again shortly",
                    template.chars().take(40).collect::<String>()
                );
                Err(FieldError { kind: Refusal::Unavailable, ..FieldError::new("template", why) })
            }
            (true, None) => {
                let known: Vec<String> = self.list().into_iter().map(|l| l.offer.name).collect();
                let why = format!(
                    "no template {:?} is offered (offered: {})",
                    template.chars().take(40).collect::<String>(),
                    known.join(", ")
                );
                Err(FieldError { kind: Refusal::UnknownTemplate, ..FieldError::new("template", why) })
            }
        }
    }
}

#[cfg(test)]
mod tests;

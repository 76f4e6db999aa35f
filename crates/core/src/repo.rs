//! A repository in a session's workspace: what a session request may name (an `https://` Git URL on a
//! host its template allows, and a branch or tag), checked by the control plane before anything is
//! reserved and by the pool agent again; the runner clones it into the work directory before the
//! program starts, under [`CloneLimits`], with the user's token when the template names one.

use serde::{Deserialize, Serialize};

/// The longest repository URL.
pub const MAX_URL: usize = 512;
/// The longest branch or tag name.
pub const MAX_REF: usize = 200;

/// A session request's repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoRequest {
    /// `https://host[:port]/path`, the host one its template allows.
    pub url: String,
    /// A branch or tag; absent, the repository's default branch.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
}

/// The clone's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneLimits {
    /// The most bytes the clone may take on disk (the checkout and its history).
    pub max_bytes: u64,
    /// The longest it may take.
    pub timeout: core::time::Duration,
}

impl CloneLimits {
    /// 1 GiB in 5 minutes.
    pub const DEFAULT: CloneLimits =
        CloneLimits { max_bytes: 1024 * 1024 * 1024, timeout: core::time::Duration::from_secs(300) };
}

impl CloneLimits {
    /// Why a clone that has run `elapsed` and takes `bytes` must stop, if it must.
    pub fn exceeded(&self, elapsed: core::time::Duration, bytes: u64) -> Option<String> {
        if elapsed > self.timeout {
            return Some(format!("it took longer than {} s", self.timeout.as_secs()));
        }
        (bytes > self.max_bytes).then(|| format!("it grew past {} MiB", self.max_bytes / (1024 * 1024)))
    }
}

impl RepoRequest {
    /// Checks the request against the hosts its template allows (`host` or `host:port`); answers the
    /// directory the clone goes to (the URL's last segment, without `.git`).
    pub fn check(&self, template: &str, hosts: &[String]) -> Result<String, crate::templates::FieldError> {
        let bad = |field: &str, why: String| crate::templates::FieldError::repo(field, why);
        if hosts.is_empty() {
            return Err(bad("repo", format!("template {template} takes no repository")));
        }
        let rest = self
            .url
            .strip_prefix("https://")
            .filter(|_| self.url.len() <= MAX_URL)
            .ok_or_else(|| bad("repo.url", format!("an https:// URL of at most {MAX_URL} characters")))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(authority)) {
            let why = format!("the host {authority:?} is not one template {template} allows ({})", hosts.join(", "));
            return Err(bad("repo.url", why));
        }
        let safe_path = !path.is_empty()
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
            && !path.split('/').any(|s| s == ".." || s == ".")
            && !path.starts_with('/');
        if !safe_path {
            return Err(bad("repo.url", "a repository path of letters, digits and - . _ ~ / (no query, no ..)".into()));
        }
        let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        let dir = last.strip_suffix(".git").unwrap_or(last);
        if dir.is_empty() || dir.starts_with('.') || dir.starts_with('-') {
            return Err(bad("repo.url", "the URL's last segment names the directory, so it cannot be empty".into()));
        }
        if let Some(r) = &self.git_ref {
            check_ref(r).map_err(|why| bad("repo.ref", why))?;
        }
        Ok(dir.to_owned())
    }
}

/// Checks a branch or tag name: git's rules for a ref, on a conservative alphabet, never an option.
pub fn check_ref(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_REF).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b))
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("/.");
    ok.then_some(())
        .ok_or_else(|| format!("a branch or tag name of at most {MAX_REF} characters: letters, digits, - . _ /"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(url: &str, git_ref: Option<&str>) -> RepoRequest {
        RepoRequest { url: url.into(), git_ref: git_ref.map(Into::into) }
    }

    #[test]
    fn a_clone_stops_past_its_time_or_size() {
        let limits = CloneLimits { max_bytes: 1024 * 1024, timeout: core::time::Duration::from_secs(10) };
        let secs = core::time::Duration::from_secs;
        assert_eq!(limits.exceeded(secs(10), 1024 * 1024), None);
        assert_eq!(limits.exceeded(secs(11), 0).as_deref(), Some("it took longer than 10 s"));
        assert_eq!(limits.exceeded(secs(1), 1024 * 1024 + 1).as_deref(), Some("it grew past 1 MiB"));
    }

    #[test]
    fn a_repository_on_an_allowed_host_names_its_directory() {
        let hosts = vec!["github.com".to_owned(), "127.0.0.1:8443".to_owned()];
        assert_eq!(repo("https://github.com/acme/widget.git", None).check("t", &hosts).unwrap(), "widget");
        assert_eq!(repo("https://GitHub.com/acme/widget", Some("v1.2")).check("t", &hosts).unwrap(), "widget");
        assert_eq!(
            repo("https://127.0.0.1:8443/private.git", Some("feature/x")).check("t", &hosts).unwrap(),
            "private"
        );
    }

    #[test]
    fn everything_else_is_refused_naming_the_field() {
        let hosts = vec!["github.com".to_owned()];
        let field = |r: RepoRequest, h: &[String]| r.check("t", h).unwrap_err().field;
        assert_eq!(field(repo("https://github.com/a/b", None), &[]), "repo");
        for url in [
            "http://github.com/a/b",
            "git@github.com:a/b.git",
            "ssh://github.com/a/b",
            "https://evil.com/a/b",
            "https://github.com.evil.com/a/b",
            "https://user:pw@github.com/a/b",
            "https://github.com/a/b?x=1",
            "https://github.com/a/../b",
            "https://github.com/",
            "https://github.com//etc",
            "https://github.com/a/.git",
            "https://github.com/a/-b",
            &format!("https://github.com/{}", "a".repeat(MAX_URL)),
        ] {
            assert_eq!(field(repo(url, None), &hosts), "repo.url", "{url}");
        }
        for r in ["-u", "--upload-pack=x", "a..b", "a/", "x.lock", "a b", "a//b", "a/.b", "", "é"] {
            assert_eq!(field(repo("https://github.com/a/b", Some(r)), &hosts), "repo.ref", "{r:?}");
        }
    }
}

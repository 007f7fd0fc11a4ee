//! The executor's own check of a job's repository URL and ref, done again after
//! the frontend's: a job may reach the topic some other way, and git must never
//! see a local path, a transport helper (`ext::`), an option-looking argument or
//! embedded credentials.

use crate::settings::RepoPolicy;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("repository URL is refused: {0}")]
    Repo(String),
    #[error("ref `{0}` is refused: not a branch, tag or commit name")]
    Ref(String),
}

/// Checks `repo` against the operator's schemes and hosts.
pub fn check_repo(repo: &str, policy: &RepoPolicy) -> Result<(), PolicyError> {
    let refuse = |why: &str| Err(PolicyError::Repo(why.to_owned()));
    if repo.starts_with('-') || repo.contains("::") {
        return refuse("not a URL");
    }
    let Ok(url) = url::Url::parse(repo) else { return refuse("not a URL") };
    if !policy.allowed_schemes.iter().any(|s| s == url.scheme()) {
        return refuse(&format!("scheme `{}` is not allowed", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("credentials must not be embedded in the URL");
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else { return refuse("no host") };
    if !host_allowed(host, &policy.allowed_hosts) {
        return refuse(&format!("host `{host}` is not in the allowlist"));
    }
    Ok(())
}

/// An empty list allows any host; hosts compare case-insensitively.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
}

pub fn check_ref(git_ref: &str) -> Result<(), PolicyError> {
    if !gitfaas_common::schema::is_valid_ref(git_ref) {
        return Err(PolicyError::Ref(git_ref.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str]) -> RepoPolicy {
        RepoPolicy {
            allowed_schemes: vec!["https".into(), "git".into()],
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn local_helper_option_and_credential_urls_are_refused() {
        let p = policy(&[]);
        assert!(check_repo("https://example.org/a.git", &p).is_ok());
        for bad in [
            "file:///etc",
            "ext::sh -c touch% /tmp/x",
            "--upload-pack=touch /tmp/x",
            "https://user:pw@example.org/r",
            "https://token@example.org/r",
            "ssh://example.org/r",
            "/srv/repo",
            "git:///no-host",
        ] {
            assert!(check_repo(bad, &p).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_outside_the_allowlist_are_refused() {
        let p = policy(&["git.example.org"]);
        assert!(check_repo("https://GIT.example.org/a", &p).is_ok());
        assert_eq!(
            check_repo("https://evil.example.net/a", &p),
            Err(PolicyError::Repo("host `evil.example.net` is not in the allowlist".into()))
        );
        assert!(check_ref("main").is_ok());
        assert!(check_ref("--upload-pack=x").is_err());
    }
}

//! With no REPO, `gitfaas run` runs what the current branch's upstream has: the
//! remote's URL and the upstream's commit, so the job runs exactly what was pushed.

use std::path::Path;
use std::process::Command;

use crate::error::CliError;

/// The pushed commit of the current branch.
#[derive(Debug, PartialEq)]
pub struct Upstream {
    pub url: String,
    pub commit: String,
    pub branch: String,
    /// The upstream's short name, e.g. `origin/main`.
    pub upstream: String,
    /// Local commits not pushed (they do not run).
    pub unpushed: usize,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git").args(args).current_dir(dir).output().map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The upstream of the branch checked out in `dir`.
pub fn of_checkout(dir: &Path) -> Result<Upstream, CliError> {
    let fail = |m: String| CliError::Git(m);
    git(dir, &["rev-parse", "--git-dir"])
        .map_err(|_| CliError::Usage("no REPO given and this is not a git checkout: name a repository".into()))?;
    let branch = git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"])
        .map_err(|_| fail("HEAD is detached: name the repository and commit (REPO@REF)".into()))?;
    let no_upstream =
        |_| fail(format!("branch `{branch}` has no upstream: push it with `git push -u REMOTE {branch}`"));
    let remote = git(dir, &["config", &format!("branch.{branch}.remote")]).map_err(no_upstream)?;
    let url = git(dir, &["remote", "get-url", &remote]).map_err(fail)?;
    let upstream = git(dir, &["rev-parse", "--abbrev-ref", "@{upstream}"]).map_err(no_upstream)?;
    let commit = git(dir, &["rev-parse", "@{upstream}"]).map_err(fail)?;
    let unpushed = git(dir, &["rev-list", "--count", "@{upstream}..HEAD"]).ok().and_then(|n| n.parse().ok());
    Ok(Upstream { url, commit, branch, upstream, unpushed: unpushed.unwrap_or(0) })
}

/// Splits `REPO[@REF]`: the ref follows the last `@` after the URL's last `/`, so a
/// user name in the URL (`https://me@host/repo`) stays part of it.
pub fn split_ref(arg: &str) -> (&str, Option<&str>) {
    let tail = arg.rfind('/').map_or(0, |i| i + 1);
    match arg[tail..].rfind('@') {
        Some(at) if at > 0 && tail + at + 1 < arg.len() => (&arg[..tail + at], Some(&arg[tail + at + 1..])),
        _ => (arg, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_follows_the_last_at_of_the_last_path_segment() {
        assert_eq!(split_ref("git://h/r@main"), ("git://h/r", Some("main")));
        assert_eq!(split_ref("https://me@h/team/r"), ("https://me@h/team/r", None));
        assert_eq!(split_ref("https://me@h/team/r@v1.2"), ("https://me@h/team/r", Some("v1.2")));
        assert_eq!(split_ref("git://h/r@"), ("git://h/r@", None));
    }

    #[test]
    fn the_upstream_is_the_remote_url_and_the_pushed_commit_not_local_work() {
        let root = tempfile::tempdir().unwrap();
        let (remote, work) = (root.path().join("remote.git"), root.path().join("work"));
        let run = |dir: &Path, args: &[&str]| git(dir, args).unwrap();
        run(root.path(), &["init", "-q", "--bare", "-b", "main", remote.to_str().unwrap()]);
        run(root.path(), &["clone", "-q", remote.to_str().unwrap(), work.to_str().unwrap()]);
        let commit = |message: &str| {
            run(&work, &["-c", "user.name=t", "-c", "user.email=t@l", "commit", "-q", "--allow-empty", "-m", message])
        };
        commit("pushed");
        run(&work, &["push", "-q", "-u", "origin", "main"]);
        let pushed = run(&work, &["rev-parse", "HEAD"]);
        commit("local only");
        let found = of_checkout(&work).unwrap();
        assert_eq!((found.url.as_str(), found.commit.as_str()), (remote.to_str().unwrap(), pushed.as_str()));
        assert_eq!((found.branch.as_str(), found.upstream.as_str(), found.unpushed), ("main", "origin/main", 1));
        run(&work, &["checkout", "-q", "-b", "topic"]);
        assert!(matches!(of_checkout(&work), Err(CliError::Git(m)) if m.contains("no upstream")));
        assert!(matches!(of_checkout(root.path()), Err(CliError::Usage(_))));
    }
}

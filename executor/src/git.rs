//! A cache of bare mirrors, one per repository URL, and per-job checkouts.
//!
//! The first job on a repository clones it into `<cache>/<sha256(url)>.git`; later
//! jobs fetch into that mirror (or skip the fetch when the job names a commit the
//! mirror already has). The ref is resolved to a commit SHA, and the commit's tree
//! is checked out into a directory of the job's own. An exclusive file lock per
//! mirror makes concurrent jobs — in this process or another sharing the cache —
//! safe. All of it is blocking work: callers run it on a blocking thread.
//!
//! A job's fetch ([`GitCache::checkout_checked`]) goes only to addresses the
//! policy checked (through the sandbox crate's `ConnectProxy`), and its tree is checked against the checkout
//! bounds (see `tree`) before anything is written.
//!
//! A private repository is fetched with a token (HTTP basic auth, the token as the
//! password). Its mirror is keyed by the URL *and* a digest of the token, so a job
//! without that token never reads what was fetched with it.

use std::fs::File;
use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, Oid, Repository};
use sha2::{Digest, Sha256};

use gitfaas_common::policy::{self, PolicyError, PolicySettings, RepoUrl};
use gitfaas_sandbox::ConnectProxy;

use crate::metrics::GitMetrics;
use crate::tree::{self, CheckedTree, CheckoutLimits, TreeError};
use remote::{advertised, Advertised};

/// Where the remote's default branch is stored in each mirror.
const DEFAULT_BRANCH_REF: &str = "refs/gitfaas/HEAD";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not fetch repository: {0}")]
    Fetch(String),
    /// The server could not be reached at all: worth retrying.
    #[error("could not reach the git server: {0}")]
    Unreachable(String),
    /// The server wants credentials the job lacks, or refused its token: the job's
    /// own failure, never retried.
    #[error("repository authentication failed: {0}")]
    Authentication(&'static str),
    #[error("ref `{0}` not found in repository")]
    RefNotFound(String),
    /// A submodule's pinned commit: in no branch's or tag's history, and not given by its id.
    #[error(
        "commit {0} is not in the repository: no branch or tag reaches it, and the server does not give it by its id"
    )]
    PinnedCommitAbsent(String),
    #[error("repository is larger than the {limit_mb} MB limit")]
    TooLarge { limit_mb: u64 },
    /// The repository's host is (or resolves to) an address the policy blocks.
    #[error(transparent)]
    Refused(PolicyError),
    /// The commit's tree breaks the checkout limits, holds an entry that cannot be
    /// written, or lacks an object; or a submodule cannot be checked out.
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("git cache error: {0}")]
    Cache(String),
    /// A submodule the repository names cannot be fetched as it says.
    #[error("submodule `{path}`: {why}")]
    Submodule { path: String, why: String },
    /// Fetching or checking out submodule `path` failed as the repository's own could.
    #[error("submodule `{path}`: {error}")]
    InSubmodule { path: String, error: Box<GitError> },
}

impl GitError {
    /// Errors of the executor's own disk or cache rather than of the job's repository.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            GitError::InSubmodule { error, .. } => error.is_infrastructure(),
            _ => {
                matches!(self, GitError::Cache(_) | GitError::Unreachable(_) | GitError::Tree(TreeError::Unreadable(_)))
            }
        }
    }

    /// The host is blocked, or the commit breaks the checkout limits or holds an
    /// entry no checkout may write: `rejected`.
    pub fn is_policy(&self) -> bool {
        if let GitError::InSubmodule { error, .. } = self {
            return error.is_policy();
        }
        matches!(self, GitError::Refused(_))
            || matches!(self, GitError::Tree(e) if !matches!(e, TreeError::Unreadable(_)))
    }
}

/// Where a fetch goes: the URL git is handed and the proxy it must go through.
struct Remote {
    url: String,
    proxy: Option<ConnectProxy>,
}

fn cache_err(e: impl std::fmt::Display) -> GitError {
    GitError::Cache(e.to_string())
}

pub struct GitCache {
    root: PathBuf,
    max_repo_bytes: u64,
    limits: CheckoutLimits,
    metrics: GitMetrics,
}

impl GitCache {
    pub fn new(root: impl Into<PathBuf>, max_repo_mb: u64) -> std::io::Result<Self> {
        transport::register(); // before any fetch: `git://` on our socket, with TCP_NODELAY
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            max_repo_bytes: max_repo_mb * 1024 * 1024,
            limits: CheckoutLimits::default(),
            metrics: GitMetrics::default(),
        })
    }

    /// The same cache with other bounds on what one checkout may write.
    pub fn with_limits(self, limits: CheckoutLimits) -> Self {
        Self { limits, ..self }
    }

    /// The same cache, counting its hits, misses and fetch times in `metrics`.
    pub fn with_metrics(self, metrics: GitMetrics) -> Self {
        Self { metrics, ..self }
    }

    /// Where the mirror of `url` (fetched with `token`) lives.
    pub fn mirror_path_of(&self, url: &str, token: Option<&str>) -> PathBuf {
        self.mirror_path(url, token)
    }

    fn mirror_path(&self, url: &str, token: Option<&str>) -> PathBuf {
        let mut hasher = Sha256::new();
        hasher.update(url.as_bytes());
        if let Some(token) = token {
            hasher.update(b"\0token\0");
            hasher.update(Sha256::digest(token.as_bytes()));
        }
        let digest = hex::encode(hasher.finalize());
        self.root.join(format!("{}.git", &digest[..32]))
    }

    /// Checks out `git_ref` of `url` into `dest` (which must exist and be empty) and
    /// returns the SHA of the commit checked out. `token`, if any, is the password
    /// of HTTP basic auth for a private repository.
    pub fn checkout(&self, url: &str, git_ref: &str, dest: &Path, token: Option<&str>) -> Result<String, GitError> {
        self.checkout_from(url, || Ok(Remote { url: url.to_owned(), proxy: None }), git_ref, dest, token)
    }

    /// [`GitCache::checkout`] of a checked URL: the host is resolved and every
    /// address checked against `policy` before git connects. A `git://` fetch
    /// connects to the checked address itself (the URL git gets names it), an
    /// `http(s)://` fetch goes through a [`ConnectProxy`] that resolves and checks
    /// again when it connects, so a name that re-resolves elsewhere cannot redirect
    /// either; git follows no HTTP redirect.
    pub fn checkout_checked(
        &self,
        url: &RepoUrl,
        policy: &PolicySettings,
        git_ref: &str,
        dest: &Path,
        token: Option<&str>,
    ) -> Result<String, GitError> {
        self.checkout_from(url.as_str(), || checked_remote(url, policy), git_ref, dest, token)
    }

    /// Checks out from the mirror of `url`, fetching (from `remote()`) only when
    /// the mirror lacks the commit.
    fn checkout_from(
        &self,
        url: &str,
        remote: impl FnOnce() -> Result<Remote, GitError>,
        git_ref: &str,
        dest: &Path,
        token: Option<&str>,
    ) -> Result<String, GitError> {
        let (repo, _lock) = self.open_locked(url, token)?;
        let oid = self.resolve_in(&repo, url, remote, git_ref, token)?;
        self.write_tree(&repo, oid, git_ref, dest, &self.limits)?;
        Ok(oid.to_string())
    }

    /// [`GitCache::checkout_checked`] without the checkout: the commit `git_ref` names
    /// now (fetched when the mirror lacks it), so that a job whose commit is already
    /// checked out elsewhere (a warm sandbox) writes nothing.
    pub fn resolve_checked(
        &self,
        url: &RepoUrl,
        policy: &PolicySettings,
        git_ref: &str,
        token: Option<&str>,
    ) -> Result<String, GitError> {
        let (repo, _lock) = self.open_locked(url.as_str(), token)?;
        let oid = self.resolve_in(&repo, url.as_str(), || checked_remote(url, policy), git_ref, token)?;
        Ok(oid.to_string())
    }

    /// Checks out `sha` (a commit [`GitCache::resolve_checked`] returned) into `dest`;
    /// what it wrote, and its submodules (each an empty directory).
    pub fn checkout_commit(
        &self,
        url: &str,
        sha: &str,
        dest: &Path,
        token: Option<&str>,
    ) -> Result<CheckedTree, GitError> {
        let (repo, _lock) = self.open_locked(url, token)?;
        let oid = full_sha(sha).ok_or_else(|| GitError::RefNotFound(sha.to_owned()))?;
        self.write_tree(&repo, oid, sha, dest, &self.limits)
    }

    /// [`GitCache::checkout_checked`] of the full commit `sha` (a submodule's pin),
    /// within what is left of the job's checkout `limits`.
    pub fn checkout_pinned(
        &self,
        url: &RepoUrl,
        policy: &PolicySettings,
        sha: &str,
        dest: &Path,
        token: Option<&str>,
        limits: &CheckoutLimits,
    ) -> Result<CheckedTree, GitError> {
        let (repo, _lock) = self.open_locked(url.as_str(), token)?;
        let oid = match self.resolve_in(&repo, url.as_str(), || checked_remote(url, policy), sha, token) {
            Err(GitError::RefNotFound(_)) => self.fetch_pinned(&repo, url, policy, sha, token)?,
            resolved => resolved?,
        };
        self.write_tree(&repo, oid, sha, dest, limits)
    }

    /// A pinned commit that no branch or tag of the server reaches (a pull request's
    /// head, a rewritten branch's old tip), asked for by its id as `git submodule
    /// update` does after fetching the refs: a server that gives only its refs'
    /// history refuses, and the commit is absent. Kept under `refs/gitfaas/pinned/`.
    fn fetch_pinned(
        &self,
        repo: &Repository,
        url: &RepoUrl,
        policy: &PolicySettings,
        sha: &str,
        token: Option<&str>,
    ) -> Result<Oid, GitError> {
        let absent = || GitError::PinnedCommitAbsent(sha.to_owned());
        let oid = full_sha(sha).ok_or_else(absent)?;
        let remote = checked_remote(url, policy)?;
        let refspec = format!("+{oid}:refs/gitfaas/pinned/{oid}");
        let proxy = remote.proxy.as_ref().map(|p| p.url());
        match self.fetch(repo, &remote.url, proxy, token, &[&refspec]) {
            Err(e @ (GitError::TooLarge { .. } | GitError::Authentication(_) | GitError::Unreachable(_))) => Err(e),
            _ => repo.find_commit(oid).map(|commit| commit.id()).map_err(|_| absent()),
        }
    }

    /// The checkout's limits.
    pub fn limits(&self) -> &CheckoutLimits {
        &self.limits
    }

    /// The mirror of `url`, opened (or created) under its exclusive lock.
    fn open_locked(&self, url: &str, token: Option<&str>) -> Result<(Repository, File), GitError> {
        let path = self.mirror_path(url, token);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("lock"))
            .map_err(cache_err)?;
        lock.lock().map_err(cache_err)?;
        let repo = match Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(_) => Repository::init_bare(&path).map_err(cache_err)?,
        };
        Ok((repo, lock))
    }

    fn resolve_in(
        &self,
        repo: &Repository,
        url: &str,
        remote: impl FnOnce() -> Result<Remote, GitError>,
        git_ref: &str,
        token: Option<&str>,
    ) -> Result<Oid, GitError> {
        if let Some(oid) = full_sha(git_ref).filter(|oid| repo.find_commit(*oid).is_ok()) {
            self.metrics.hits.inc();
            return Ok(oid); // already cached: no network round trip
        }
        let path = self.mirror_path(url, token);
        let remote = remote();
        let refspecs =
            ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", &format!("+HEAD:{DEFAULT_BRANCH_REF}")];
        let mut fetched = None;
        if let Ok(remote) = &remote {
            // the ref as the server has it now; no fetch when the mirror has that commit
            // already, else a fetch on the same connection
            let proxy = remote.proxy.as_ref().map(|p| p.url());
            let on_connection = |git_remote: &mut git2::Remote<'_>| {
                self.missed(|| self.fetch_on(repo, git_remote, proxy.clone(), token, &refspecs))
            };
            match advertised(repo, remote, git_ref, token, on_connection) {
                Advertised::Known(oid) => {
                    self.metrics.hits.inc();
                    return Ok(oid);
                }
                Advertised::Refused(why) => {
                    let error = GitError::Authentication(why);
                    forget_if_unusable(repo, &path, &error);
                    return Err(error);
                }
                Advertised::Fetched(result) => fetched = Some(result),
                Advertised::Unknown => {}
            }
        }
        let fetched = remote.and_then(|remote| {
            let fetched = fetched.unwrap_or_else(|| {
                let proxy = remote.proxy.as_ref().map(|p| p.url());
                self.missed(|| self.fetch(repo, &remote.url, proxy, token, &refspecs))
            });
            let proxy = remote.proxy.as_ref();
            match (proxy.and_then(|p| p.refusal()), proxy.and_then(|p| p.unreachable())) {
                (Some(refusal), _) => Err(GitError::Refused(refusal)),
                (None, Some(why)) if fetched.is_err() => Err(GitError::Unreachable(why)),
                _ => fetched,
            }
        });
        fetched.inspect_err(|e| forget_if_unusable(repo, &path, e))?;
        resolve(repo, git_ref)
    }

    fn write_tree(
        &self,
        repo: &Repository,
        oid: Oid,
        git_ref: &str,
        dest: &Path,
        limits: &CheckoutLimits,
    ) -> Result<CheckedTree, GitError> {
        let commit = repo.find_commit(oid).map_err(|_| GitError::RefNotFound(git_ref.to_owned()))?;
        let tree = commit.tree().map_err(|e| match e.code() {
            git2::ErrorCode::NotFound => GitError::Tree(TreeError::MissingObject(String::new())),
            _ => cache_err(e),
        })?;
        let checked = tree::check(repo, &tree, limits)?;
        let mut checkout = CheckoutBuilder::new();
        checkout.target_dir(dest).force().recreate_missing(true);
        if checked.gitlinks.is_empty() {
            repo.checkout_tree(tree.as_object(), Some(&mut checkout)).map_err(cache_err)?;
            return Ok(checked);
        }
        // libgit2 looks a gitlink up as a submodule, which a bare mirror has none of:
        // the tree without them, then each an empty directory, as `git clone` leaves
        // it (its parents are the tree's own directories, which are no symlinks)
        let mut index = git2::Index::new().map_err(cache_err)?;
        index.read_tree(&tree).map_err(cache_err)?;
        for (path, _) in &checked.gitlinks {
            index.remove_path(Path::new(path)).map_err(cache_err)?;
        }
        repo.checkout_index(Some(&mut index), Some(&mut checkout)).map_err(cache_err)?;
        for (path, _) in &checked.gitlinks {
            std::fs::create_dir_all(dest.join(path)).map_err(cache_err)?;
        }
        Ok(checked)
    }
}

/// Where a checked URL is fetched from: a `git://` fetch connects to the checked
/// address itself, an `http(s)://` fetch goes through a [`ConnectProxy`].
fn checked_remote(url: &RepoUrl, policy: &PolicySettings) -> Result<Remote, GitError> {
    let resolved = policy::resolve_checked(url.host(), url.port(), policy).map_err(|e| match e {
        PolicyError::Unresolved(_) => GitError::Fetch(e.to_string()),
        e => GitError::Refused(e),
    })?;
    Ok(match url.scheme() {
        "git" => Remote { url: url.pinned_to(resolved[0].ip()), proxy: None },
        _ => {
            let proxy = ConnectProxy::start(policy.clone()).map_err(cache_err)?;
            Remote { url: url.as_str().to_owned(), proxy: Some(proxy) }
        }
    })
}

/// Never keeps an oversized mirror, nor a half-initialised one later jobs would trust.
fn forget_if_unusable(repo: &Repository, path: &Path, error: &GitError) {
    let empty = repo.references().map(|r| r.count()).unwrap_or(0) == 0;
    if empty || matches!(error, GitError::TooLarge { .. }) {
        let _ = std::fs::remove_dir_all(path);
    }
}

fn full_sha(git_ref: &str) -> Option<Oid> {
    (git_ref.len() == 40 && git_ref.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| Oid::from_str(git_ref).ok())
        .flatten()
}

/// Resolves a branch, tag, full ref name, `HEAD` or (abbreviated) SHA to a commit.
fn resolve(repo: &Repository, git_ref: &str) -> Result<Oid, GitError> {
    let not_found = || GitError::RefNotFound(git_ref.to_owned());
    if git_ref.starts_with('-') || git_ref.is_empty() {
        return Err(not_found());
    }
    let candidates = if git_ref == "HEAD" {
        vec![DEFAULT_BRANCH_REF.to_owned()]
    } else {
        vec![format!("refs/heads/{git_ref}"), format!("refs/tags/{git_ref}"), git_ref.to_owned()]
    };
    for name in candidates.iter().filter(|n| n.starts_with("refs/")) {
        if let Ok(reference) = repo.find_reference(name) {
            return reference.peel_to_commit().map(|c| c.id()).map_err(|_| not_found());
        }
    }
    if git_ref.len() >= 7 && git_ref.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(object) = repo.revparse_single(git_ref) {
            return object.peel_to_commit().map(|c| c.id()).map_err(|_| not_found());
        }
    }
    Err(not_found())
}

mod fetch;
mod remote;
mod transport;

#[cfg(test)]
#[path = "git_tests.rs"]
mod tests;

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
//! policy checked (see `egress`), and its tree is checked against the checkout
//! bounds (see `tree`) before anything is written.
//!
//! A private repository is fetched with a token (HTTP basic auth, the token as the
//! password). Its mirror is keyed by the URL *and* a digest of the token, so a job
//! without that token never reads what was fetched with it.

use std::fs::File;
use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, FetchOptions, Oid, RemoteCallbacks, Repository};
use sha2::{Digest, Sha256};

use gitfaas_common::policy::{self, PolicyError, PolicySettings, RepoUrl};

use crate::egress::ConnectProxy;
use crate::tree::{self, CheckoutLimits, TreeError};

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
    #[error("repository is larger than the {limit_mb} MB limit")]
    TooLarge { limit_mb: u64 },
    /// The repository's host is (or resolves to) an address the policy blocks.
    #[error(transparent)]
    Refused(PolicyError),
    /// The commit's tree breaks the checkout limits or holds a submodule.
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("git cache error: {0}")]
    Cache(String),
}

impl GitError {
    /// Errors of the executor's own disk or cache rather than of the job's repository.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, GitError::Cache(_) | GitError::Unreachable(_) | GitError::Tree(TreeError::Unreadable(_)))
    }

    /// The host is blocked, or the commit breaks the checkout limits or holds a
    /// submodule: `rejected`.
    pub fn is_policy(&self) -> bool {
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
}

impl GitCache {
    pub fn new(root: impl Into<PathBuf>, max_repo_mb: u64) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root, max_repo_bytes: max_repo_mb * 1024 * 1024, limits: CheckoutLimits::default() })
    }

    /// The same cache with other bounds on what one checkout may write.
    pub fn with_limits(self, limits: CheckoutLimits) -> Self {
        Self { limits, ..self }
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
        self.write_tree(&repo, oid, git_ref, dest)?;
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

    /// Checks out `sha` (a commit [`GitCache::resolve_checked`] returned) into `dest`.
    pub fn checkout_commit(&self, url: &str, sha: &str, dest: &Path, token: Option<&str>) -> Result<(), GitError> {
        let (repo, _lock) = self.open_locked(url, token)?;
        let oid = full_sha(sha).ok_or_else(|| GitError::RefNotFound(sha.to_owned()))?;
        self.write_tree(&repo, oid, sha, dest)
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
            return Ok(oid); // already cached: no network round trip
        }
        let path = self.mirror_path(url, token);
        let fetched = remote().and_then(|remote| {
            let fetched = self.fetch(repo, &remote.url, remote.proxy.as_ref().map(|p| p.url()), token);
            let proxy = remote.proxy.as_ref();
            match (proxy.and_then(|p| p.refusal()), proxy.and_then(|p| p.unreachable())) {
                (Some(refusal), _) => Err(GitError::Refused(refusal)),
                (None, Some(why)) if fetched.is_err() => Err(GitError::Unreachable(why)),
                _ => fetched,
            }
        });
        fetched.inspect_err(|e| {
            // never keep an oversized mirror, nor a half-initialised one later jobs would trust
            let empty = repo.references().map(|r| r.count()).unwrap_or(0) == 0;
            if empty || matches!(e, GitError::TooLarge { .. }) {
                let _ = std::fs::remove_dir_all(&path);
            }
        })?;
        resolve(repo, git_ref)
    }

    fn write_tree(&self, repo: &Repository, oid: Oid, git_ref: &str, dest: &Path) -> Result<(), GitError> {
        let commit = repo.find_commit(oid).map_err(|_| GitError::RefNotFound(git_ref.to_owned()))?;
        let tree = commit.tree().map_err(cache_err)?;
        tree::check(repo, &tree, &self.limits)?;
        let mut checkout = CheckoutBuilder::new();
        checkout.target_dir(dest).force().recreate_missing(true);
        repo.checkout_tree(tree.as_object(), Some(&mut checkout)).map_err(cache_err)
    }

    fn fetch(&self, repo: &Repository, url: &str, proxy: Option<String>, token: Option<&str>) -> Result<(), GitError> {
        let limit = self.max_repo_bytes;
        let mut too_large = false;
        let mut asked = false;
        let mut refused = None;
        let result = {
            let mut callbacks = RemoteCallbacks::new();
            callbacks.credentials(|_url, _user, allowed| match token {
                // asked twice means the token was refused: stop rather than loop
                Some(token) if !asked && allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) => {
                    asked = true;
                    git2::Cred::userpass_plaintext("x-access-token", token)
                }
                _ => {
                    let why = match token {
                        None => "the server asks for credentials and the job has no `git_token`",
                        Some(_) if asked => "the server refused the job's `git_token`",
                        Some(_) => "the server asks for credentials other than a token as basic-auth password",
                    };
                    refused = Some(why);
                    Err(git2::Error::from_str(why))
                }
            });
            callbacks.transfer_progress(|progress| {
                too_large = progress.received_bytes() as u64 > limit;
                !too_large
            });
            let mut options = FetchOptions::new();
            options
                .remote_callbacks(callbacks)
                .download_tags(git2::AutotagOption::None)
                .follow_redirects(git2::RemoteRedirect::None);
            let mut proxy_options = git2::ProxyOptions::new();
            if let Some(proxy) = &proxy {
                proxy_options.url(proxy); // else none: never a proxy from the environment
            }
            options.proxy_options(proxy_options);
            let mut remote = repo.remote_anonymous(url).map_err(|e| GitError::Fetch(e.message().to_owned()))?;
            let refspecs =
                ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", &format!("+HEAD:{DEFAULT_BRANCH_REF}")];
            remote.fetch(&refspecs, Some(&mut options), None)
        };
        let too_large = too_large || (result.is_ok() && dir_size(repo.path()) > limit);
        match result {
            Err(_) | Ok(()) if too_large => Err(GitError::TooLarge { limit_mb: limit / (1024 * 1024) }),
            Ok(()) => Ok(()),
            Err(_) if refused.is_some() => Err(GitError::Authentication(refused.unwrap_or_default())),
            Err(e) if is_unreachable(e.message()) => Err(GitError::Unreachable(e.message().to_owned())),
            Err(e) => Err(GitError::Fetch(e.message().to_owned())),
        }
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

/// Bytes used by the files below `path` (a mirror is small enough to walk).
fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_size(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Connection-level failures (refused, timed out, no route), as libgit2 words them.
fn is_unreachable(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["failed to connect", "connection refused", "timed out", "no route to host"].iter().any(|m| message.contains(m))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn source_repo() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        git(p, &["init", "-q", "-b", "main"]);
        std::fs::write(p.join("a.txt"), "one").unwrap();
        git(p, &["add", "."]);
        git(p, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one"]);
        git(p, &["tag", "v1"]);
        std::fs::write(p.join("a.txt"), "two").unwrap();
        git(p, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two"]);
        let url = format!("file://{}", p.display());
        (dir, url)
    }

    #[test]
    fn checks_out_branch_tag_head_and_sha_from_one_mirror() {
        let (src, url) = source_repo();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), 10).unwrap();
        let head = git(src.path(), &["rev-parse", "HEAD"]);
        let v1 = git(src.path(), &["rev-parse", "v1^{commit}"]);

        for (git_ref, sha, content) in
            [("main", &head, "two"), ("HEAD", &head, "two"), ("v1", &v1, "one"), (v1.as_str(), &v1, "one")]
        {
            let dest = tempfile::tempdir().unwrap();
            let got = cache.checkout(&url, git_ref, dest.path(), None).unwrap();
            assert_eq!(&got, sha, "ref {git_ref}");
            assert_eq!(std::fs::read_to_string(dest.path().join("a.txt")).unwrap(), content);
        }
        assert_ne!(cache.mirror_path_of(&url, None), cache.mirror_path_of(&url, Some("t")));
        assert_eq!(
            std::fs::read_dir(cache_dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "git")
                .count(),
            1
        );
    }

    #[test]
    fn missing_ref_and_missing_repository_are_distinct_errors() {
        let (_src, url) = source_repo();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), 10).unwrap();
        let dest = tempfile::tempdir().unwrap();
        assert!(matches!(cache.checkout(&url, "nope", dest.path(), None), Err(GitError::RefNotFound(_))));
        assert!(matches!(cache.checkout(&url, "--upload-pack=x", dest.path(), None), Err(GitError::RefNotFound(_))));
        let missing = format!("file://{}/does-not-exist", cache_dir.path().display());
        assert!(matches!(cache.checkout(&missing, "main", dest.path(), None), Err(GitError::Fetch(_))));
    }

    #[test]
    fn an_unreachable_server_is_an_infrastructure_failure() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), 10).unwrap();
        let dest = tempfile::tempdir().unwrap();
        // nothing listens on loopback port 1
        let err = cache.checkout("git://127.0.0.1:1/nothing", "main", dest.path(), None).unwrap_err();
        assert!(matches!(err, GitError::Unreachable(_)), "{err}");
        assert!(err.is_infrastructure());
    }

    /// A server on loopback that answers every request with 401 and a basic-auth
    /// challenge; returns its URL and the request heads it received.
    fn server_demanding_basic_auth() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut head = String::new();
                let mut reader = BufReader::new(&stream);
                while reader.read_line(&mut head).is_ok_and(|n| n > 2) {}
                seen.lock().unwrap().push(head);
                let reply = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"t\"\r\n\
                             Content-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        (format!("http://127.0.0.1:{port}/private"), heads)
    }

    #[test]
    fn a_refused_or_missing_token_is_an_authentication_failure_of_the_job() {
        let (url, heads) = server_demanding_basic_auth();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), 10).unwrap();
        let dest = tempfile::tempdir().unwrap();
        for token in [None, Some("wrong")] {
            let err = cache.checkout(&url, "main", dest.path(), token).unwrap_err();
            assert!(matches!(err, GitError::Authentication(_)), "{err}");
            assert!(!err.is_infrastructure());
            assert!(!cache.mirror_path_of(&url, token).exists(), "no empty mirror is kept");
        }
        let missing = cache.checkout(&url, "main", dest.path(), None).unwrap_err().to_string();
        let refused = cache.checkout(&url, "main", dest.path(), Some("wrong")).unwrap_err().to_string();
        assert!(missing.contains("has no `git_token`"), "{missing}");
        assert!(refused.contains("refused the job's `git_token`"), "{refused}");
        // the token was presented once, as a basic-auth password, then not again
        let with_auth =
            heads.lock().unwrap().iter().filter(|h| h.to_ascii_lowercase().contains("authorization: basic ")).count();
        assert_eq!(with_auth, 2);
    }

    #[test]
    fn repository_over_the_size_limit_is_refused() {
        let (src, url) = source_repo();
        // incompressible content well over 1 MB
        let mut noise = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(File::open("/dev/urandom").unwrap(), 3_000_000),
            &mut noise,
        )
        .unwrap();
        std::fs::write(src.path().join("big.bin"), noise).unwrap();
        git(src.path(), &["add", "."]);
        git(src.path(), &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "big"]);
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), 1).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = cache.checkout(&url, "main", dest.path(), None).unwrap_err();
        assert!(matches!(err, GitError::TooLarge { limit_mb: 1 }), "{err}");
    }

    #[test]
    fn an_https_fetch_goes_through_the_checking_proxy() {
        use std::io::Read;
        // a plain TCP server: what arrives through the tunnel is the TLS client hello
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let first = std::thread::spawn(move || {
            let (mut stream, peer) = server.accept().unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).unwrap();
            (byte[0], peer)
        });
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), 10).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let allowed = PolicySettings { allowed_ranges: vec!["127.0.0.0/8".parse().unwrap()], ..Default::default() };
        let url = RepoUrl::parse(&format!("https://127.0.0.1:{port}/r.git"), &allowed).unwrap();
        assert!(cache.checkout_checked(&url, &allowed, "main", dest.path(), None).is_err());
        let (byte, _peer) = first.join().unwrap();
        assert_eq!(byte, 0x16, "a TLS handshake record came through the tunnel");
        // nothing listens on port 1: still the infrastructure failure it was without the proxy
        let closed = RepoUrl::parse("https://127.0.0.1:1/r.git", &allowed).unwrap();
        let err = cache.checkout_checked(&closed, &allowed, "main", dest.path(), None).unwrap_err();
        assert!(matches!(err, GitError::Unreachable(_)) && err.is_infrastructure(), "{err}");

        // under the default policy a name that resolves to loopback is refused before any connection
        let blocking = PolicySettings::default();
        let name = std::fs::read_to_string("/etc/hostname").unwrap().trim().to_owned();
        let url = RepoUrl::parse(&format!("https://{name}:{port}/r.git"), &blocking).unwrap();
        let err = cache.checkout_checked(&url, &blocking, "main", dest.path(), None).unwrap_err();
        assert!(matches!(err, GitError::Refused(PolicyError::Internal { .. })), "{err}");
        assert!(err.is_policy());
    }
}

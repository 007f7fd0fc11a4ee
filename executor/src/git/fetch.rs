//! A mirror's fetch: into the bare repository, within its size bound, with the
//! job's token offered at most once, never through a proxy from the environment.

use std::path::Path;

use git2::{FetchOptions, RemoteCallbacks, Repository};

use super::remote::TokenAuth;
use super::{GitCache, GitError};

impl GitCache {
    /// `fetch`, for a ref the mirror did not have: counted as a miss and timed.
    pub(super) fn missed(&self, fetch: impl FnOnce() -> Result<(), GitError>) -> Result<(), GitError> {
        self.metrics.misses.inc();
        let clock = std::time::Instant::now();
        let fetched = fetch();
        self.metrics.fetched(clock.elapsed());
        fetched
    }

    pub(super) fn fetch(
        &self,
        repo: &Repository,
        url: &str,
        proxy: Option<String>,
        token: Option<&str>,
        refspecs: &[&str],
    ) -> Result<(), GitError> {
        let mut remote = repo.remote_anonymous(url).map_err(|e| GitError::Fetch(e.message().to_owned()))?;
        self.fetch_on(repo, &mut remote, proxy, token, refspecs)
    }

    /// Fetches `refspecs` into the mirror through `remote` (connected already, or
    /// connecting now), within the repository size bound.
    pub(super) fn fetch_on(
        &self,
        repo: &Repository,
        remote: &mut git2::Remote<'_>,
        proxy: Option<String>,
        token: Option<&str>,
        refspecs: &[&str],
    ) -> Result<(), GitError> {
        let limit = self.max_repo_bytes;
        let mut too_large = false;
        let mut auth = TokenAuth::new(token);
        let result = {
            let mut callbacks = RemoteCallbacks::new();
            callbacks.credentials(|_url, _user, allowed| auth.answer(allowed));
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
            remote.fetch(refspecs, Some(&mut options), None)
        };
        let too_large = too_large || (result.is_ok() && dir_size(repo.path()) > limit);
        match result {
            Err(_) | Ok(()) if too_large => Err(GitError::TooLarge { limit_mb: limit / (1024 * 1024) }),
            Ok(()) => Ok(()),
            Err(_) if auth.refused.is_some() => Err(GitError::Authentication(auth.refused.unwrap_or_default())),
            Err(e) if is_unreachable(e.message()) => Err(GitError::Unreachable(e.message().to_owned())),
            Err(e) => Err(GitError::Fetch(e.message().to_owned())),
        }
    }
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

//! Ref resolutions shared by the jobs they are valid for. A job must see every
//! push that happened before it was submitted, so its ref is resolved against the
//! server — but a resolution that *started after* the job was submitted sees at
//! least as much, and its answer serves that job too. In a burst of jobs on one
//! function most of them then share a few resolutions (each one a connection to
//! the git server and a ref advertisement) instead of making one each. Keyed by
//! the mirror (repository URL and a digest of the token) and the ref name, so a
//! job shares only answers given to the same credentials. The comparison uses the
//! frontend's `submitted_at` and this executor's clock: hosts' clocks must be
//! synchronised (NTP) — a skew of d may hide a push made less than d before the
//! submit. An operator may widen that with a freshness window w
//! (`executor.ref_freshness_ms`): a resolution that started up to w before the
//! submission serves the job too.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

type Key = (PathBuf, String);

/// An answer being given (`None`) or given (`Some(Ok(sha))`; errors are not shared).
type Answer = watch::Receiver<Option<Result<String, ()>>>;

#[derive(Default)]
pub struct SharedResolutions {
    latest: Mutex<HashMap<Key, (DateTime<Utc>, Answer)>>,
    freshness: chrono::Duration,
}

/// Most keys kept; past it the map is cleared (a key is cheap to learn again).
const MAX_KEYS: usize = 4096;

impl SharedResolutions {
    /// Resolutions that serve jobs submitted up to `freshness` after they started.
    pub fn new(freshness: std::time::Duration) -> Self {
        let freshness = chrono::Duration::from_std(freshness).unwrap_or(chrono::Duration::zero());
        Self { latest: Mutex::default(), freshness }
    }

    /// The commit `git_ref` of `mirror` names for a job submitted at `submitted_at`:
    /// the answer of a resolution that started after that instant less the
    /// freshness window (waiting for it if it is under way), else the answer of
    /// `resolve`, which is then shared.
    pub async fn resolve<E, F>(
        &self,
        mirror: PathBuf,
        git_ref: &str,
        submitted_at: DateTime<Utc>,
        resolve: impl FnOnce() -> F,
    ) -> Result<String, E>
    where
        F: Future<Output = Result<String, E>>,
    {
        let key = (mirror, git_ref.to_owned());
        let horizon = submitted_at - self.freshness;
        let shared = {
            let latest = self.latest.lock().expect("resolutions lock");
            latest.get(&key).filter(|(started, _)| *started > horizon).map(|(_, answer)| answer.clone())
        };
        if let Some(mut answer) = shared {
            if let Ok(given) = answer.wait_for(Option::is_some).await {
                if let Some(Ok(sha)) = given.as_ref() {
                    return Ok(sha.clone());
                }
            }
        }
        let (tx, rx) = watch::channel(None);
        {
            let mut latest = self.latest.lock().expect("resolutions lock");
            if latest.len() >= MAX_KEYS {
                latest.clear();
            }
            latest.insert(key, (Utc::now(), rx));
        }
        let resolved = resolve().await;
        let _ = tx.send(Some(resolved.as_ref().map(Clone::clone).map_err(|_| ())));
        resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A resolution answering `sha`, counted in `calls`.
    fn counted<'a>(
        calls: &'a AtomicUsize,
        sha: &'static str,
    ) -> impl FnOnce() -> std::future::Ready<Result<String, ()>> + 'a {
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(sha.to_owned()))
        }
    }

    #[tokio::test]
    async fn a_resolution_serves_only_jobs_submitted_before_it_started() {
        let shared = SharedResolutions::default();
        let calls = AtomicUsize::new(0);
        let resolve = |sha| counted(&calls, sha);
        let mirror = PathBuf::from("/cache/a.git");
        let early = Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(shared.resolve(mirror.clone(), "main", early, resolve("one")).await, Ok("one".into()));
        // submitted before that resolution started: its answer, no second call
        assert_eq!(shared.resolve(mirror.clone(), "main", early, resolve("two")).await, Ok("one".into()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // submitted after it (a push may have come in between): resolved again
        let late = Utc::now();
        assert_eq!(shared.resolve(mirror.clone(), "main", late, resolve("two")).await, Ok("two".into()));
        // another ref or another mirror (another token) shares nothing
        assert_eq!(shared.resolve(mirror, "dev", early, resolve("three")).await, Ok("three".into()));
        assert_eq!(shared.resolve("/cache/b.git".into(), "main", early, resolve("four")).await, Ok("four".into()));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_freshness_window_lets_a_recent_resolution_serve_later_jobs() {
        let shared = SharedResolutions::new(std::time::Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let resolve = |sha| counted(&calls, sha);
        assert_eq!(shared.resolve("/m".into(), "main", Utc::now(), resolve("one")).await, Ok("one".into()));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // submitted after that resolution started, but within the window
        assert_eq!(shared.resolve("/m".into(), "main", Utc::now(), resolve("two")).await, Ok("one".into()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // past the window: resolved again
        let later = Utc::now() + chrono::Duration::seconds(61);
        assert_eq!(shared.resolve("/m".into(), "main", later, resolve("two")).await, Ok("two".into()));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_error_is_not_shared() {
        let shared = SharedResolutions::default();
        let early = Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let failed = shared.resolve("/m".into(), "main", early, || async { Err::<String, _>("unreachable") }).await;
        assert_eq!(failed, Err("unreachable"));
        let retried = shared.resolve("/m".into(), "main", early, || async { Ok::<_, &str>("sha".into()) }).await;
        assert_eq!(retried, Ok("sha".into()));
    }
}

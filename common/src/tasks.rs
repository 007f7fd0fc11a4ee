//! Every background task of a service, owned: spawned through [`Tasks`] under a
//! name, told to stop by one token, and awaited at shutdown within a deadline
//! (the names of those that outlive it are logged).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A service's background tasks. Cloning shares them.
#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
    /// How many tasks of each name are running.
    running: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

/// Counts its task as running until dropped (when the task ends or panics).
struct Running {
    name: &'static str,
    running: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = running.get_mut(self.name) {
            *count -= 1;
            if *count == 0 {
                running.remove(self.name);
            }
        }
    }
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled when shutdown begins: every task's signal to stop.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Begins the shutdown (cancels [`Self::stopping`]) when `signal` completes:
    /// a service's own shutdown future, handed to it by its caller.
    pub fn stop_on(&self, signal: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.spawn("shutdown signal", async move {
            tokio::select! {
                () = signal => stop.cancel(),
                () = stop.cancelled() => {}
            }
        });
    }

    /// Runs `task` in the background as `name`.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        *self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).entry(name).or_default() += 1;
        let guard = Running { name, running: self.running.clone() };
        self.tracker.spawn(async move {
            let _guard = guard;
            task.await;
        });
    }

    /// The names of the tasks still running.
    pub fn running(&self) -> Vec<&'static str> {
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).keys().copied().collect()
    }

    /// Tells every task to stop and waits for them up to `deadline`; false (and
    /// the names logged) when some were still running then. Tasks spawned after
    /// this are not waited for.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait()).await.is_ok() {
            return true;
        }
        tracing::warn!(tasks = ?self.running(), ?deadline, "background tasks still running at the shutdown deadline");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_every_task_and_names_those_past_the_deadline() {
        let tasks = Tasks::new();
        let stop = tasks.stopping();
        tasks.spawn("polite", async move { stop.cancelled().await });
        tasks.spawn("slow", async { tokio::time::sleep(Duration::from_millis(400)).await });
        tokio::task::yield_now().await;
        assert_eq!(tasks.running(), vec!["polite", "slow"]);
        assert!(!tasks.shutdown(Duration::from_millis(50)).await, "the slow one outlives the deadline");
        assert_eq!(tasks.running(), vec!["slow"]);
        assert!(tasks.shutdown(Duration::from_secs(5)).await, "and is awaited by a later one");
        assert!(tasks.running().is_empty());
    }
}

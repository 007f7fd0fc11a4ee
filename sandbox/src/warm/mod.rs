//! Warm sandboxes: containers kept after a run, each with a resident runner that
//! serves the next invocation of the same function without a container start.
//!
//! - [`engine`]: the bookkeeping (keys, LRU, budget, time to live), with no Docker;
//! - [`container`]: one warm container and its framed channel;
//! - `runner.py`, `runner.js`: the resident runners (a fresh process per invocation,
//!   under the function's user while runner and init are root); `sweep.sh`: what
//!   they run as that user between invocations (every process of it killed, the
//!   scratch directories emptied whatever their depth).
//!
//! A sandbox is keyed by everything that makes two runs equivalent ([`WarmKey`]:
//! owner, commit, image id, runner command, limits, network mode), so it is never
//! shared between owners. The job that takes one holds a [`Lease`]; a lease whose
//! invocation did not end by its function's own exit (timeout, OOM, output cap,
//! crash, cancel, a broken channel) is discarded, so the next run starts cold.
//! Python and node are served warm; the `command` runtime runs cold.

mod container;
mod engine;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use gitfaas_common::schema::Resources;

use crate::docker::{Sandbox, SandboxError, SandboxOutcome, SandboxSpec};
use crate::logs::LogSink;
use crate::metrics::WarmMetrics;
use crate::runtime::Launch;
use crate::workspace::Workspace;
use container::WarmContainer;
pub use engine::WarmKey;
use engine::{Engine, Limits};

/// Label on every warm container (value `true`), next to the executor label.
pub const WARM_LABEL: &str = "io.gitfaas.warm";
/// Label naming the owner a warm container serves (a digest of the subject).
pub const OWNER_LABEL: &str = "io.gitfaas.owner";

const PYTHON_RUNNER: &str = include_str!("runner.py");
const NODE_RUNNER: &str = include_str!("runner.js");
/// Run by the resident runners as the function's user between invocations.
const SWEEP: &str = include_str!("sweep.sh");

/// `executor.warm` in the settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarmSettings {
    /// Keep sandboxes warm (default); `false` runs every job in a fresh container.
    pub enabled: bool,
    /// Warm containers (busy and idle) at most.
    pub max_containers: usize,
    /// Sum of the memory limits of warm containers at most.
    pub memory_budget_mb: u64,
    /// An idle warm container is removed after this long.
    pub idle_ttl_secs: u64,
}

impl Default for WarmSettings {
    fn default() -> Self {
        Self { enabled: true, max_containers: 8, memory_budget_mb: 4096, idle_ttl_secs: 300 }
    }
}

/// The warm command for a cold runner command: the resident runner in place of
/// the cold one, which it is given as its last argument after the sweep script.
/// `None`: runs cold.
pub fn warm_command(runtime: &str, cold: &[String]) -> Option<Vec<String>> {
    let (index, resident) = match runtime {
        "python" => (3, PYTHON_RUNNER),
        "node" => (2, NODE_RUNNER),
        _ => return None,
    };
    let mut command = cold.to_vec();
    let cold_runner = std::mem::replace(command.get_mut(index)?, resident.to_owned());
    command.push(SWEEP.to_owned());
    command.push(cold_runner);
    Some(command)
}

/// A digest of the owner's subject, for the owner label.
pub fn owner_digest(subject: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(subject.as_bytes())[..12])
}

pub struct WarmPool {
    engine: Mutex<Engine<WarmContainer>>,
    sandbox: Sandbox,
    /// Set at shutdown: sandboxes are no longer given back, but removed.
    closed: AtomicBool,
    metrics: WarmMetrics,
}

/// A warm sandbox held by one job; given back or discarded by [`WarmPool::finish`].
pub struct Lease {
    key: WarmKey,
    container: Option<WarmContainer>,
    pool: Arc<WarmPool>,
    /// Whether the sandbox had served an invocation before this one.
    pub warm: bool,
    reusable: bool,
}

impl Lease {
    pub fn workspace(&self) -> &Workspace {
        &self.container.as_ref().expect("a lease holds its container until finished").workspace
    }

    /// Runs the invocation; the lease remembers whether the sandbox may serve another.
    pub async fn invoke(
        &mut self,
        request: &[u8],
        timeout: Duration,
        log: &LogSink,
        cancel: &CancellationToken,
    ) -> SandboxOutcome {
        let container = self.container.as_mut().expect("a lease holds its container until finished");
        let invocation = container.invoke(&self.pool.sandbox, request, timeout, log, cancel).await;
        self.reusable = invocation.reusable;
        invocation.outcome
    }
}

impl Drop for Lease {
    /// A lease dropped before [`WarmPool::finish`] (an abandoned run) is discarded.
    fn drop(&mut self) {
        if let Some(container) = self.container.take() {
            self.pool.engine().release(self.key.memory_mb);
            self.pool.count();
            let sandbox = self.pool.sandbox.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { container.remove(&sandbox).await });
            }
        }
    }
}

impl WarmPool {
    pub fn new(sandbox: Sandbox, settings: &WarmSettings, metrics: WarmMetrics) -> Arc<Self> {
        let idle_ttl = Duration::from_secs(settings.idle_ttl_secs);
        let limits =
            Limits { max_containers: settings.max_containers, memory_budget_mb: settings.memory_budget_mb, idle_ttl };
        let pool = Arc::new(Self {
            engine: Mutex::new(Engine::new(limits)),
            sandbox,
            closed: AtomicBool::new(false),
            metrics,
        });
        let every = (idle_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::spawn(Self::expire_idle(Arc::downgrade(&pool), every));
        pool
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine<WarmContainer>> {
        self.engine.lock().expect("warm pool lock")
    }

    /// Sets the pool size gauge after a change.
    fn count(&self) {
        self.metrics.containers.set(self.engine().num_containers() as i64);
    }

    /// A run of a warm runtime found no idle sandbox of its key.
    pub fn missed(&self) {
        self.metrics.misses.inc();
    }

    /// The checkout of an idle sandbox of `owner` at `commit`, if there is one.
    pub fn code_dir_of(&self, owner: &str, commit: &str) -> Option<PathBuf> {
        self.engine().code_dir_of(owner, commit)
    }

    /// The key of a run of `launch` by `owner` at `commit` with `resources`.
    pub async fn key(
        &self,
        owner: &str,
        commit: &str,
        launch: &Launch,
        resources: &Resources,
        job_network: bool,
    ) -> Result<WarmKey, SandboxError> {
        Ok(WarmKey {
            owner: owner.to_owned(),
            commit: commit.to_owned(),
            image_id: self.sandbox.image_id(&launch.image).await?,
            command: launch.command.clone(),
            memory_mb: resources.memory_mb,
            cpu_millis: resources.cpu_millis,
            pids: resources.pids,
            job_network,
        })
    }

    /// An idle sandbox of `key`, if there is one.
    pub fn take(self: &Arc<Self>, key: &WarmKey) -> Option<Lease> {
        let container = self.engine().take(key)?;
        self.metrics.hits.inc();
        Some(Lease { key: key.clone(), container: Some(container), pool: self.clone(), warm: true, reusable: true })
    }

    /// Starts a sandbox for `key` from `spec` (its command already the warm one)
    /// with `workspace`. `Ok(Err(workspace))` when the pool has no room: the caller
    /// runs cold.
    pub async fn start(
        self: &Arc<Self>,
        key: WarmKey,
        spec: &SandboxSpec,
        workspace: Workspace,
    ) -> Result<Result<Lease, Workspace>, SandboxError> {
        let Some(evicted) = self.engine().admit(key.memory_mb) else { return Ok(Err(workspace)) };
        self.count();
        for container in evicted {
            tracing::debug!(container = %container.id, "warm sandbox evicted");
            self.metrics.evictions.inc();
            container.remove(&self.sandbox).await;
        }
        match WarmContainer::start(&self.sandbox, spec, workspace).await {
            Ok(container) => {
                self.count();
                Ok(Ok(Lease { key, container: Some(container), pool: self.clone(), warm: false, reusable: true }))
            }
            Err(error) => {
                self.engine().release(key.memory_mb);
                self.count();
                Err(error)
            }
        }
    }

    /// Gives the lease's sandbox back to the pool, or removes it when its
    /// invocation left it unfit.
    pub async fn finish(&self, mut lease: Lease) {
        let Some(container) = lease.container.take() else { return };
        if lease.reusable && !self.closed.load(Ordering::SeqCst) {
            let code_dir = container.workspace.code();
            self.engine().give_back(lease.key.clone(), code_dir, container, Instant::now());
        } else {
            tracing::info!(container = %container.id, "warm sandbox discarded");
            self.engine().release(lease.key.memory_mb);
            container.remove(&self.sandbox).await;
        }
        self.count();
    }

    /// Removes idle sandboxes past their time to live, for as long as the pool lives.
    async fn expire_idle(pool: std::sync::Weak<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let Some(pool) = pool.upgrade() else { return };
            let expired = pool.engine().expire(Instant::now());
            pool.count();
            for container in expired {
                tracing::debug!(container = %container.id, "idle warm sandbox expired");
                pool.metrics.evictions.inc();
                container.remove(&pool.sandbox).await;
            }
        }
    }

    /// Removes every idle sandbox (shutdown); busy ones go when their jobs finish.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let idle = self.engine().drain();
        self.count();
        let num_removed = idle.len();
        for container in idle {
            container.remove(&self.sandbox).await;
        }
        tracing::info!(num_removed, "warm sandboxes removed");
    }
}

impl Drop for WarmPool {
    /// A pool dropped without [`WarmPool::shutdown`] still removes what it kept.
    fn drop(&mut self) {
        let idle = self.engine.get_mut().map(|engine| engine.drain()).unwrap_or_default();
        if idle.is_empty() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let sandbox = self.sandbox.clone();
            handle.spawn(async move {
                for container in idle {
                    container.remove(&sandbox).await;
                }
            });
        }
    }
}

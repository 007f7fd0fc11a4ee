//! Warm sandboxes: containers kept after a run, each with a resident runner that
//! serves the next invocation of the same function without a container start.
//!
//! - [`engine`]: the bookkeeping (keys, shapes, LRU, budget, time to live), with
//!   no Docker;
//! - [`container`]: one warm container and its framed channel;
//! - [`ready`]: ready sandboxes, started before any function is known and given
//!   one when a run claims them, and the task that keeps them filled;
//! - [`lease`]: a sandbox held by one run;
//! - `runner.py`, `runner.js`: the resident runners (a fresh process per invocation,
//!   under the function's user while runner and init are root); `sweep.sh`: what
//!   they run as that user between invocations (every process of it killed, the
//!   scratch directories emptied whatever their depth).
//!
//! A sandbox is keyed by everything that makes two runs equivalent ([`WarmKey`]:
//! owner, commit, image id, runner command, limits, network mode, dependency
//! layer), so it is never shared between owners. Every warm sandbox starts as a
//! ready one — claimed from the pool, or started for the run that found none —
//! and is given its function's checkout and layer on the host before its first
//! invocation. The run that holds one holds a [`Lease`]; a lease whose invocation
//! did not end by its function's own exit (timeout, OOM, output cap, crash,
//! cancel, a broken channel) is discarded, so the next run starts anew. Python and
//! node are served warm; the `command` runtime runs cold.

mod container;
mod engine;
mod lease;
mod ready;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use gitfaas_common::schema::Resources;

use crate::docker::{Sandbox, SandboxError};
use crate::metrics::WarmMetrics;
use crate::runtime::{cold_runner, Launch};
use crate::workspace::Workspace;
use container::WarmContainer;
use engine::{Engine, Limits};
pub use engine::{ReadyShape, WarmKey};
pub use lease::Lease;
pub use ready::{ReadySettings, Template};

/// Label on every warm container (value `true`), next to the executor label.
pub const WARM_LABEL: &str = "io.gitfaas.warm";

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
    /// Warm and ready containers (busy and idle) at most.
    pub max_containers: usize,
    /// Sum of their memory limits at most.
    pub memory_budget_mb: u64,
    /// An idle warm container is removed after this long.
    pub idle_ttl_secs: u64,
    /// Ready sandboxes: started before a function asks, given its code on its first run.
    pub ready: ReadySettings,
}

impl Default for WarmSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_containers: 8,
            memory_budget_mb: 4096,
            idle_ttl_secs: 300,
            ready: ReadySettings::default(),
        }
    }
}

/// Where the cold runner's text sits in a runtime's command (what follows it are
/// its arguments); `None`: the runtime is not served warm.
fn runner_index(runtime: &str) -> Option<usize> {
    match runtime {
        "python" => Some(3),
        "node" => Some(2),
        _ => None,
    }
}

/// The command of a ready sandbox of `runtime`: its resident runner with no
/// function's arguments (the first request brings them), the sweep script and
/// the cold runner. `None`: the runtime is not served warm.
fn resident_command(runtime: &str) -> Option<Vec<String>> {
    let (resident, cold) = match runtime {
        "python" => (PYTHON_RUNNER, cold_runner("python")?),
        "node" => (NODE_RUNNER, cold_runner("node")?),
        _ => return None,
    };
    let mut command: Vec<String> = if runtime == "python" {
        vec!["python3".into(), "-I".into(), "-c".into()]
    } else {
        vec!["node".into(), "-e".into()]
    };
    command.extend([resident.to_owned(), SWEEP.to_owned(), cold.to_owned()]);
    Some(command)
}

/// The cold runner's arguments in `launch` (code dir, entry, working directory),
/// which a warm sandbox's runner is given in its first request; `None`: the
/// runtime runs cold.
pub fn warm_args(launch: &Launch) -> Option<Vec<String>> {
    if launch.reading.text_output {
        return None; // a script runs cold: it is not a function a runner calls
    }
    let index = runner_index(&launch.runtime)?;
    Some(launch.command.get(index + 1..)?.to_vec())
}

/// A digest of the owner's subject, for the name of the owner's warm containers.
pub fn owner_digest(subject: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(subject.as_bytes())[..12])
}

/// What a new warm sandbox is given: its checkout (moved in), its layer (linked
/// in), the cold runner's arguments, and the name its container takes.
pub struct Function<'a> {
    pub checkout: Workspace,
    pub layer: Option<&'a Path>,
    pub args: Vec<String>,
    pub name: String,
}

pub struct WarmPool {
    engine: Mutex<Engine<WarmContainer>>,
    sandbox: Sandbox,
    template: Template,
    wanted: Arc<ready::Wanted>,
    /// Set at shutdown: sandboxes are no longer given back, but removed.
    closed: AtomicBool,
    metrics: WarmMetrics,
}

impl WarmPool {
    pub fn new(sandbox: Sandbox, settings: &WarmSettings, metrics: WarmMetrics, template: Template) -> Arc<Self> {
        let idle_ttl = Duration::from_secs(settings.idle_ttl_secs);
        let limits =
            Limits { max_containers: settings.max_containers, memory_budget_mb: settings.memory_budget_mb, idle_ttl };
        let pool = Arc::new(Self {
            engine: Mutex::new(Engine::new(limits)),
            sandbox,
            template,
            wanted: Arc::new(ready::Wanted::new(settings.ready.clone())),
            closed: AtomicBool::new(false),
            metrics,
        });
        let every = (idle_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::spawn(Self::expire_idle(Arc::downgrade(&pool), every));
        tokio::spawn(ready::refill(Arc::downgrade(&pool), pool.wanted.clone(), Duration::from_secs(10)));
        pool
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
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

    /// The key of a run of `launch` by `owner` at `commit` with `resources`, and
    /// with the dependency layer of digest `layer`, if it has one.
    pub async fn key(
        &self,
        owner: &str,
        commit: &str,
        launch: &Launch,
        resources: &Resources,
        layer: Option<&str>,
    ) -> Result<WarmKey, SandboxError> {
        Ok(WarmKey {
            owner: owner.to_owned(),
            commit: commit.to_owned(),
            image_id: self.sandbox.image_id(&launch.image).await?,
            command: launch.command.clone(),
            memory_mb: resources.memory_mb,
            cpu_millis: resources.cpu_millis,
            pids: resources.pids,
            job_network: self.template.job_network,
            layer: layer.map(str::to_owned),
        })
    }

    /// An idle sandbox of `key`, if there is one.
    pub fn take(self: &Arc<Self>, key: &WarmKey) -> Option<Lease> {
        let container = self.engine().take(key)?;
        self.metrics.hits.inc();
        let pool = self.clone();
        Some(Lease { key: key.clone(), container: Some(container), pool, warm: true, ready: false, reusable: true })
    }

    /// A new warm sandbox of `key` for `function` of `runtime`: a ready one of its
    /// shape if one waits, else one started now (evicting idle ones for room). It
    /// is given the function's checkout and layer, and its runner the function's
    /// arguments. `Ok(Err(checkout))` when the pool has no room: the caller runs cold.
    pub async fn place(
        self: &Arc<Self>,
        key: WarmKey,
        runtime: &str,
        image: &str,
        function: Function<'_>,
    ) -> Result<Result<Lease, Workspace>, SandboxError> {
        let shape = ReadyShape {
            runtime: runtime.to_owned(),
            image: image.to_owned(),
            image_id: key.image_id.clone(),
            memory_mb: key.memory_mb,
            cpu_millis: key.cpu_millis,
            pids: key.pids,
            job_network: key.job_network,
        };
        self.wanted.ask(&shape);
        let claimed = self.engine().claim_ready(&shape);
        let ready = claimed.is_some();
        let container = match claimed {
            Some(container) => {
                self.metrics.ready_claims.inc();
                container
            }
            None => {
                let Some(evicted) = self.engine().admit(key.memory_mb) else { return Ok(Err(function.checkout)) };
                self.count();
                for container in evicted {
                    tracing::debug!(container = %container.id, "warm sandbox evicted");
                    self.metrics.evictions.inc();
                    container.remove(&self.sandbox).await;
                }
                match ready::start(self, &shape).await {
                    Ok(container) => container,
                    Err(error) => {
                        self.engine().release(key.memory_mb);
                        self.count();
                        return Err(error);
                    }
                }
            }
        };
        self.count();
        // from here on the lease owns it: dropped on an error, it is removed
        let mut lease =
            Lease { key, container: Some(container), pool: self.clone(), warm: false, ready, reusable: false };
        let container = lease.container.as_mut().expect("just placed");
        container.workspace.inject(&function.checkout, function.layer).map_err(SandboxError::Workspace)?;
        container.name_function(&function.args).await.map_err(SandboxError::Workspace)?;
        let (sandbox, id, name) = (self.sandbox.clone(), container.id.clone(), function.name);
        // off the run's path: only what `docker ps` shows depends on it
        tokio::spawn(async move {
            if let Err(error) = sandbox.rename(&id, &name).await {
                tracing::warn!(container = %id, %name, %error, "naming a warm sandbox failed");
            }
        });
        lease.reusable = true;
        Ok(Ok(lease))
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
        self.wanted.wake.notify_one();
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

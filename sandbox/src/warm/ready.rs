//! Ready sandboxes: warm containers started before any function is known, their
//! resident runner waiting, kept per [`ReadyShape`] (runtime image and limits).
//! A run whose function has no idle warm sandbox claims one, gets its checkout
//! moved in and its dependency layer linked in on the host
//! ([`Workspace::inject`](crate::workspace::Workspace::inject)), names the
//! function to the runner in its first request, and from then on it is that
//! function's warm sandbox: keyed by owner and commit like any other, never
//! handed to anyone else. It has run no code of anyone's before; its container
//! is made exactly like a warm one (same image, limits, user, seccomp profile, no
//! network, read-only root) with the dependency directory mounted read-only
//! whether or not a layer comes.
//!
//! A refill task keeps `per_shape` of each wanted shape: the prefilled runtimes
//! (with the limits most jobs run with) always, any other shape for `keep_secs`
//! after a run last asked for it. A prefilled shape's ready sandbox may evict the
//! least recently used idle warm sandbox for room (a pool full of idle warm
//! sandboxes must not leave every first run to a container start); any other
//! shape only fills free room. A ready sandbox is the first evicted for a new
//! warm one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::deps::{layer_env, DEPS_MOUNT};
use crate::docker::{SandboxError, SandboxSpec, EXECUTOR_LABEL};
use crate::logs::LogSink;
use crate::workspace::Workspace;

use super::container::WarmContainer;
use super::engine::ReadyShape;
use super::{resident_command, WarmPool, WARM_LABEL};

/// `executor.warm.ready` in the settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadySettings {
    /// Ready sandboxes kept per shape; 0: none (every first run starts a container).
    pub per_shape: usize,
    /// A shape no run has asked for this long is no longer kept (prefilled ones are).
    pub keep_secs: u64,
    /// Runtimes kept ready from the start, with the limits below.
    pub runtimes: Vec<String>,
    /// The limits of the prefilled shapes: those most jobs run with (the
    /// frontend's default limits).
    pub memory_mb: u32,
    pub cpu_millis: u32,
    pub pids: u32,
}

impl Default for ReadySettings {
    fn default() -> Self {
        Self {
            per_shape: 1,
            keep_secs: 1800,
            runtimes: vec!["python".into(), "node".into()],
            memory_mb: 256,
            cpu_millis: 1000,
            pids: 128,
        }
    }
}

/// What every container of the pool is made with, whoever's it becomes.
#[derive(Clone, Debug)]
pub struct Template {
    pub executor_id: String,
    pub work_dir: PathBuf,
    /// Where the checkout is mounted (the runners' first argument).
    pub code_mount: String,
    /// The runtime images by name, for the prefilled shapes.
    pub images: Vec<(String, String)>,
    pub job_network: bool,
}

/// The shapes kept ready, and when a run last asked for each.
pub(super) struct Wanted {
    settings: ReadySettings,
    asked: Mutex<HashMap<ReadyShape, Instant>>,
    pub(super) wake: tokio::sync::Notify,
}

impl Wanted {
    pub(super) fn new(settings: ReadySettings) -> Self {
        Self { settings, asked: Mutex::new(HashMap::new()), wake: tokio::sync::Notify::new() }
    }

    /// A run asked for `shape`: keep it ready (again).
    pub(super) fn ask(&self, shape: &ReadyShape) {
        if self.settings.per_shape == 0 {
            return;
        }
        self.asked.lock().expect("ready shapes lock").insert(shape.clone(), Instant::now());
        self.wake.notify_one();
    }

    /// The shapes to keep now: those asked for lately, then the prefilled ones.
    fn current(&self, pinned: Vec<ReadyShape>) -> Vec<ReadyShape> {
        let keep = Duration::from_secs(self.settings.keep_secs);
        let mut asked = self.asked.lock().expect("ready shapes lock");
        asked.retain(|shape, at| at.elapsed() < keep || pinned.contains(shape));
        let mut shapes: Vec<ReadyShape> = asked.keys().cloned().collect();
        shapes.extend(pinned.into_iter().filter(|s| !asked.contains_key(s)));
        shapes
    }
}

/// The container of a ready sandbox of `shape`, with `workspace` (still empty).
pub(super) fn spec(template: &Template, shape: &ReadyShape, workspace: &Workspace) -> Option<SandboxSpec> {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    Some(SandboxSpec {
        name: format!("gitfaas-ready-{}", &suffix[16..]),
        image: shape.image.clone(),
        command: resident_command(&shape.runtime)?,
        labels: HashMap::from([
            (EXECUTOR_LABEL.to_owned(), template.executor_id.clone()),
            (WARM_LABEL.to_owned(), "true".to_owned()),
        ]),
        code_dir: workspace.code(),
        code_mount: template.code_mount.clone(),
        working_dir: template.code_mount.clone(),
        input_dir: Some(workspace.input()),
        output_dir: Some(workspace.output()),
        job_network: shape.job_network,
        network: None,
        mounts: vec![(workspace.deps(), DEPS_MOUNT.to_owned(), true)],
        env: layer_env(&shape.runtime).into_iter().collect(),
        stdin: Default::default(),
        memory_mb: shape.memory_mb,
        cpu_millis: shape.cpu_millis,
        pids: shape.pids,
        timeout: Duration::ZERO,
        log: LogSink::off(),
    })
}

/// Starts one container of `shape` for the pool (counted by the caller).
pub(super) async fn start(pool: &WarmPool, shape: &ReadyShape) -> Result<WarmContainer, SandboxError> {
    let workspace = Workspace::create(&pool.template.work_dir).map_err(SandboxError::Workspace)?;
    let Some(spec) = spec(&pool.template, shape, &workspace) else {
        return Err(SandboxError::Workspace(std::io::Error::other(format!("{} is not served warm", shape.runtime))));
    };
    WarmContainer::start(&pool.sandbox, &spec, workspace).await
}

/// Keeps the wanted shapes filled, for as long as the pool lives: woken by a
/// run's claim or miss, and every `every` (shapes age out).
pub(super) async fn refill(pool: Weak<WarmPool>, wanted: Arc<Wanted>, every: Duration) {
    loop {
        {
            let Some(pool) = pool.upgrade() else { return };
            if pool.is_closed() {
                return;
            }
            refill_once(&pool).await;
        }
        let _ = tokio::time::timeout(every, wanted.wake.notified()).await;
    }
}

async fn refill_once(pool: &Arc<WarmPool>) {
    let settings = &pool.wanted.settings;
    if settings.per_shape == 0 {
        return;
    }
    let mut pinned = Vec::new();
    for (runtime, image) in &pool.template.images {
        if !settings.runtimes.contains(runtime) || resident_command(runtime).is_none() {
            continue;
        }
        let Ok(image_id) = pool.sandbox.image_id(image).await else { continue };
        pinned.push(ReadyShape {
            runtime: runtime.clone(),
            image: image.clone(),
            image_id,
            memory_mb: settings.memory_mb,
            cpu_millis: settings.cpu_millis,
            pids: settings.pids,
            job_network: pool.template.job_network,
        });
    }
    let shapes = pool.wanted.current(pinned.clone());
    let gone = pool.engine().unwanted_ready(|s| shapes.contains(s));
    for container in gone {
        container.remove(&pool.sandbox).await;
    }
    // a round per place in each shape's queue: every shape gets its first one before any gets a second
    let places: Vec<(usize, &ReadyShape)> =
        (0..settings.per_shape).flat_map(|round| shapes.iter().map(move |s| (round, s))).collect();
    for (round, shape) in places {
        if !pool.is_closed() && pool.engine().num_ready(shape) <= round {
            // a prefilled shape is worth more than the least recently used idle warm sandbox
            let Some(evicted) = pool.engine().reserve_ready(shape.memory_mb, pinned.contains(shape)) else {
                continue;
            };
            pool.count();
            for container in evicted {
                tracing::debug!(container = %container.id, "idle warm sandbox evicted for a ready one");
                pool.metrics.evictions.inc();
                container.remove(&pool.sandbox).await;
            }
            match start(pool, shape).await {
                Ok(container) => {
                    tracing::debug!(container = %container.id, runtime = %shape.runtime, "ready sandbox started");
                    // under the lock: a shutdown's drain (after it closed the pool) sees it, or it is removed here
                    let closing = {
                        let mut engine = pool.engine();
                        if pool.is_closed() {
                            engine.release(shape.memory_mb);
                            Some(container)
                        } else {
                            engine.add_ready(shape.clone(), container);
                            None
                        }
                    };
                    pool.count();
                    if let Some(container) = closing {
                        container.remove(&pool.sandbox).await;
                    }
                }
                Err(error) => {
                    pool.engine().release(shape.memory_mb);
                    pool.count();
                    tracing::warn!(%error, runtime = %shape.runtime, image = %shape.image, "ready sandbox start failed");
                }
            }
        }
    }
}

//! Third-party dependencies of a function: found in the checkout ([`detect`]),
//! installed once per (runtime image id, declaration content) by a build step
//! ([`build`]) into a content-addressed layer ([`cache`]), and seen by the run at
//! [`DEPS_MOUNT`] — mounted read-only into a cold container, linked file by file
//! into a warm (or ready) sandbox's own read-only `/deps` directory, whose key
//! holds the layer's digest ([`Prepared::digest`]). Python finds `site/` on its
//! path (`GITFAAS_PYTHON_DEPS`, read by the runner, since `python3 -I` ignores
//! `PYTHONPATH`), node finds `node_modules/` through `NODE_PATH`.
//!
//! A job opts out with `"dependencies": "skip"`.

mod build;
mod cache;
mod detect;
mod firewall;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use gitfaas_common::schema::DependencyBuild;

use crate::docker::{Sandbox, SandboxSpec, EXECUTOR_LABEL, JOB_LABEL};
use crate::logs::LogSink;
use crate::runtime::Launch;
use cache::{Layer, LayerCache};

/// Where a run sees its dependency layer (read-only).
pub(crate) use crate::runtime::DEPS_MOUNT;
/// The build's log file, in its log directory.
const BUILD_LOG: &str = "build.log";
/// The most of a build's log kept (on the host, and of its output).
const MAX_KEPT_LOG_BYTES: usize = 1 << 20;
/// The tail of a failed build's log in the job's result.
const LOG_TAIL_BYTES: usize = 8 << 10;

/// `executor.dependencies` in the settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DependencySettings {
    /// The package index pip installs from (`--index-url`), e.g.
    /// `https://pypi.example.org/simple/`. None: python dependencies are refused.
    pub pip_index: Option<String>,
    /// The registry npm installs from. None: node dependencies are refused.
    pub npm_registry: Option<String>,
    /// The layer cache (`layers/`, `logs/`, `tmp/`).
    pub cache_dir: PathBuf,
    /// The installers: `pip.whl` (pip's wheel) and `npm/` (npm's package),
    /// placed by `scripts/setup.sh`.
    pub tools_dir: PathBuf,
    pub build_timeout_secs: u64,
    pub build_memory_mb: u32,
    pub build_cpu_millis: u32,
    pub build_pids: u32,
    /// The largest layer one build may write.
    pub max_layer_mb: u64,
    /// The build's `/tmp` (where pip downloads and unpacks before it copies into
    /// the layer); default `max_layer_mb`. A tmpfs: its pages are memory, so the
    /// build container's memory limit is `build_memory_mb` plus this.
    pub build_scratch_mb: Option<u32>,
    /// All layers together at most; least recently used ones are evicted.
    pub max_cache_mb: u64,
    /// Drop everything a build sends to the host but its proxy (`iptables` on the
    /// build network's bridge; needs root). Off: a host service listening on all
    /// addresses is reachable from builds through the bridge's gateway.
    pub guard_host: bool,
    /// The executor's own container, when it runs in one (its name or id;
    /// `self`: this host name, which is the container id unless set otherwise):
    /// a build's network is made without a host address and this container
    /// joins it, so that the build's proxy listens in here. The layer cache and
    /// the installers must then have the same path on the host and in here
    /// (as `executor.work_dir`). None: the executor runs on the host.
    pub build_from_container: Option<String>,
}

impl Default for DependencySettings {
    fn default() -> Self {
        Self {
            pip_index: None,
            npm_registry: None,
            cache_dir: "/var/lib/gitfaas/deps".into(),
            tools_dir: "/var/lib/gitfaas/deps-tools".into(),
            build_timeout_secs: 300,
            build_memory_mb: 1024,
            build_cpu_millis: 1000,
            build_pids: 256,
            max_layer_mb: 1024,
            build_scratch_mb: None,
            max_cache_mb: 8192,
            guard_host: true,
            build_from_container: None,
        }
    }
}

impl DependencySettings {
    /// The container a build's network is joined by: `build_from_container`,
    /// with `self` read as this host's name.
    pub fn executor_container(&self) -> Option<String> {
        let named = self.build_from_container.as_deref()?.trim();
        match named {
            "self" => std::fs::read_to_string("/etc/hostname").ok().map(|name| name.trim().to_owned()),
            _ => Some(named.to_owned()),
        }
        .filter(|name| !name.is_empty())
    }

    /// Why these settings are unusable, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if self.build_from_container.is_some() && self.executor_container().is_none() {
            return Err("dependencies.build_from_container: `self`, but this host's name cannot be read".into());
        }
        for (field, index) in [("pip_index", &self.pip_index), ("npm_registry", &self.npm_registry)] {
            if let Some(index) = index {
                let url = url::Url::parse(index).map_err(|e| format!("dependencies.{field}: {e}"))?;
                if !["http", "https"].contains(&url.scheme()) || url.host_str().is_none() {
                    return Err(format!("dependencies.{field} must be an http(s) URL with a host"));
                }
            }
        }
        if self.build_timeout_secs == 0 || self.max_layer_mb == 0 || self.max_cache_mb < self.max_layer_mb {
            return Err("dependencies: build_timeout_secs and max_layer_mb must be at least 1, max_cache_mb at least max_layer_mb".into());
        }
        if self.build_scratch_mb == Some(0) {
            return Err("dependencies.build_scratch_mb must be at least 1".into());
        }
        Ok(())
    }

    /// The build's scratch space in MiB: `build_scratch_mb`, else the layer bound.
    fn scratch_mb(&self) -> u32 {
        self.build_scratch_mb.unwrap_or_else(|| u32::try_from(self.max_layer_mb).unwrap_or(u32::MAX))
    }

    fn index_of(&self, runtime: &str) -> Option<&str> {
        match runtime {
            "python" => self.pip_index.as_deref(),
            "node" => self.npm_registry.as_deref(),
            _ => None,
        }
    }
}

/// Why a run's dependencies are not there; the executor's job and a local run map
/// each to a result.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error("dependencies declared but no package index configured (executor.dependencies.{0})")]
    NoIndex(&'static str),
    #[error("{0}")]
    Declaration(String),
    #[error("image `{0}` is not available on this executor")]
    MissingImage(String),
    /// The build ran and failed: `why`, and the tail of its log.
    #[error("dependency install failed: {why}")]
    Failed { why: String, log: String },
    #[error("package index unreachable: {0}")]
    IndexUnreachable(String),
    #[error("the dependency build was cancelled")]
    Cancelled,
    #[error("{0}")]
    Infrastructure(String),
    #[error("dependency cache: {0}")]
    Io(#[from] std::io::Error),
}

impl DepsError {
    /// The executor's own trouble (worth another attempt), not the job's.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, DepsError::IndexUnreachable(_) | DepsError::Infrastructure(_) | DepsError::Io(_))
    }
}

/// The dependency layer of one run; mounted by [`Prepared::apply`].
pub struct Prepared {
    layer: Layer,
    runtime: String,
    /// Whether this run built it (else it was cached).
    pub built: bool,
    /// The declaration it was installed from, relative to the checkout.
    pub file: String,
    /// Time to have the layer (built, waited for or found).
    pub build_ms: u64,
}

impl Prepared {
    /// What a result says of this layer.
    pub fn summary(&self) -> DependencyBuild {
        DependencyBuild { file: self.file.clone(), built: self.built, build_ms: self.build_ms }
    }

    /// Mounts the layer read-only into `spec` and points the runtime at it. A node
    /// script's run also gets the layer's `node_modules` at `/node_modules`, on the
    /// way up from every file of the checkout, where node — its ES module `import`
    /// too, which ignores `NODE_PATH` — finds packages as after `npm install` in the
    /// checkout (a script runs cold, so only a mounted layer needs it).
    pub fn apply(&self, spec: &mut SandboxSpec, script: bool) {
        spec.mounts.push((self.layer.dir.clone(), DEPS_MOUNT.to_owned(), true));
        spec.env.extend(layer_env(&self.runtime));
        let modules = self.layer.dir.join("node_modules");
        if script && self.runtime == "node" && modules.is_dir() {
            spec.mounts.push((modules, "/node_modules".to_owned(), true));
        }
    }

    /// The layer's key (a digest of the image id and the declaration): part of a
    /// warm sandbox's key.
    pub fn digest(&self) -> &str {
        &self.layer.key
    }

    /// The cached layer's directory (a warm sandbox gets it linked, not mounted).
    pub fn dir(&self) -> &Path {
        &self.layer.dir
    }
}

/// What points `runtime` at a layer mounted at [`DEPS_MOUNT`].
pub(crate) fn layer_env(runtime: &str) -> Option<String> {
    match runtime {
        "node" => Some(format!("NODE_PATH={DEPS_MOUNT}/node_modules")),
        "python" => Some(format!("GITFAAS_PYTHON_DEPS={DEPS_MOUNT}/site")),
        _ => None,
    }
}

/// Builds and caches dependency layers for one executor (or a local run).
pub struct Dependencies {
    settings: DependencySettings,
    cache: LayerCache,
    sandbox: Sandbox,
    executor_id: String,
}

impl Dependencies {
    pub fn new(settings: &DependencySettings, sandbox: Sandbox, executor_id: &str) -> std::io::Result<Self> {
        let cache = LayerCache::new(&settings.cache_dir, settings.max_cache_mb << 20)?;
        Ok(Self { settings: settings.clone(), cache, sandbox, executor_id: executor_id.to_owned() })
    }

    /// The layer the run of `launch` from `checkout` needs — cached, or built now —
    /// or `None` when the declaration nearest the entry (see [`detect`]) declares none.
    pub async fn prepare(
        &self,
        checkout: &Path,
        workdir: &str,
        launch: &Launch,
        job: &str,
        log: &LogSink,
        cancel: &CancellationToken,
    ) -> Result<Option<Prepared>, DepsError> {
        let found = detect::declared(checkout, workdir, &launch.entry_dir, &launch.runtime)?;
        let Some((file, declared)) = found else { return Ok(None) };
        let field = if launch.runtime == "node" { "npm_registry" } else { "pip_index" };
        let index = self.settings.index_of(&launch.runtime).ok_or(DepsError::NoIndex(field))?;
        let index = url::Url::parse(index).map_err(|e| DepsError::Infrastructure(format!("package index: {e}")))?;
        let installer =
            self.settings.tools_dir.join(if launch.runtime == "node" { "npm/bin/npm-cli.js" } else { "pip.whl" });
        if !installer.is_file() {
            // the operator's to fix (scripts/setup.sh), not the job's: another executor may have it
            let missing = installer.display();
            return Err(DepsError::Infrastructure(format!("dependency installer {missing} missing on this executor")));
        }
        let image_id =
            self.sandbox.image_id(&launch.image).await.map_err(|_| DepsError::MissingImage(launch.image.clone()))?;
        let mut digest = sha2::Sha256::new();
        digest.update(image_id.as_bytes());
        digest.update(b"\0");
        digest.update(declared.content());
        let key = hex::encode(digest.finalize());
        let started = std::time::Instant::now();
        let plan = build::BuildPlan {
            name: format!("gitfaas-deps-{}-{}", &key[..12], &uuid::Uuid::now_v7().simple().to_string()[20..]),
            image: &launch.image,
            labels: HashMap::from([
                (EXECUTOR_LABEL.to_owned(), self.executor_id.clone()),
                (JOB_LABEL.to_owned(), job.to_owned()),
            ]),
            settings: &self.settings,
            index: &index,
            log: log.clone(),
        };
        let built = self
            .cache
            .get_or_build(&key, |staging| {
                log.push(format!("[gitfaas: installing the dependencies {file} declares]\n").as_bytes());
                build::build(&self.sandbox, plan, &declared, staging, cancel)
            })
            .await;
        let (layer, built) = match built {
            Ok(found) => found,
            Err(DepsError::Failed { why, log: build_log }) => {
                let kept = tail(&build_log, MAX_KEPT_LOG_BYTES);
                if let Err(error) = std::fs::write(self.cache.log_path(&key), kept) {
                    tracing::warn!(layer = %key, %error, "keeping the build log failed");
                }
                tracing::info!(layer = %key, %why, "dependency build failed");
                let why = format!("{why} (installing {file})");
                log.push(format!("[gitfaas: dependency install failed: {why}]\n").as_bytes());
                return Err(DepsError::Failed { why, log: tail(&build_log, LOG_TAIL_BYTES).to_owned() });
            }
            Err(other) => return Err(other),
        };
        let build_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(layer = %key, built, build_ms, runtime = %launch.runtime, declaration = %file, "dependency layer ready");
        if built {
            log.push(format!("[gitfaas: dependencies installed in {:.1} s]\n", build_ms / 1e3).as_bytes());
        }
        let build_ms = build_ms as u64;
        Ok(Some(Prepared { layer, runtime: launch.runtime.clone(), built, file, build_ms }))
    }
}

/// The last `max` bytes of `log`, cut at a character boundary.
fn tail(log: &str, max: usize) -> &str {
    let mut start = log.len().saturating_sub(max);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

/// Whether the checkout declares dependencies for the run of `launch` in
/// `workdir` (a declaration it cannot read counts: the cold path reports it).
pub fn declares(checkout: &Path, workdir: &str, launch: &Launch) -> bool {
    !matches!(detect::declared(checkout, workdir, &launch.entry_dir, &launch.runtime), Ok(None))
}

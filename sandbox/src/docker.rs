//! The container lifecycle, behind one narrow interface: [`Sandbox::run`] takes a
//! [`SandboxSpec`] and returns what the process did ([`SandboxOutcome`]). Nothing
//! else in gitfaas talks to Docker (the warm pool and dependency builds go through
//! this module's crate-private calls).
//!
//! Every container is created with no network, a read-only root file system, a
//! size-capped tmpfs at /tmp, all capabilities dropped, no-new-privileges, a
//! seccomp profile of our own ([`seccomp`]: no call reaches into another process), a
//! non-root user, memory (= memory + swap), CPU, pids and open-file limits, and only
//! the job's read-only checkout, its read-only input directory and its output
//! directory mounted. It is killed at its deadline, killed when its stdout passes
//! the cap, and always removed — also when the future running it is dropped. A job
//! network (a bridge of its own) exists only when the operator enables it.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::logs::LogSink;
use crate::metrics::SandboxMetrics;
use crate::tail::Stderr;

mod build;
mod cleanup;
mod network;
pub mod seccomp;

use cleanup::{remove, RemoveOnDrop};

/// Label put on every job container, with the executor id as its value.
pub const EXECUTOR_LABEL: &str = "io.gitfaas.executor";
pub const JOB_LABEL: &str = "io.gitfaas.job";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("docker error: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("image `{0}` is not available on this executor")]
    MissingImage(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("sandbox workspace: {0}")]
    Workspace(std::io::Error),
}

/// Where the job's input (read-only) and output (read-write) directories are mounted.
pub const INPUT_MOUNT: &str = "/input";
pub const OUTPUT_MOUNT: &str = "/output";

/// Everything that varies between job containers. `stdin` may carry credentials:
/// it is zeroized on drop and left out of `Debug`.
#[derive(Clone)]
pub struct SandboxSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Host directory mounted read-only at [`SandboxSpec::code_mount`].
    pub code_dir: std::path::PathBuf,
    pub code_mount: String,
    /// The container's working directory: the code mount or a directory in it.
    pub working_dir: String,
    /// Host directories mounted at [`INPUT_MOUNT`] (read-only) and [`OUTPUT_MOUNT`].
    pub input_dir: Option<std::path::PathBuf>,
    pub output_dir: Option<std::path::PathBuf>,
    /// Put the container on a bridge network of its own instead of none.
    pub job_network: bool,
    /// Join this existing network instead (a dependency build's internal one).
    pub network: Option<String>,
    /// Further host directories: (host path, container path, read-only).
    pub mounts: Vec<(std::path::PathBuf, String, bool)>,
    /// Further environment variables, `NAME=value`.
    pub env: Vec<String>,
    pub stdin: zeroize::Zeroizing<Vec<u8>>,
    pub memory_mb: u32,
    pub cpu_millis: u32,
    pub pids: u32,
    pub timeout: Duration,
    /// Where the container's stderr goes as it comes (a cold run's live log).
    pub log: LogSink,
}

impl std::fmt::Debug for SandboxSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxSpec").field("name", &self.name).field("image", &self.image).finish_non_exhaustive()
    }
}

/// Settings that are the same for every container an executor starts.
#[derive(Clone, Debug)]
pub struct SandboxPolicy {
    /// OCI runtime: `runc`, or `runsc` for gVisor.
    pub oci_runtime: String,
    pub user: String,
    pub tmpfs_mb: u32,
    pub nofile: i64,
    pub stdout_max_bytes: usize,
    pub stderr_tail_bytes: usize,
}

#[derive(Clone, Debug, Default)]
pub struct SandboxOutcome {
    pub exit_code: Option<i64>,
    pub stdout: Vec<u8>,
    pub stdout_overflow: bool,
    pub stderr_tail: String,
    pub timed_out: bool,
    pub oom_killed: bool,
    /// Killed because the job was cancelled.
    pub cancelled: bool,
}

#[derive(Clone)]
pub struct Sandbox {
    docker: Docker,
    policy: SandboxPolicy,
    metrics: SandboxMetrics,
}

/// The marker appended to the stderr tail of a job stopped for too much output.
pub const STDOUT_CAP_MARKER: &str = "[gitfaas: stdout passed its limit; the function was stopped]";

/// The checkout read-only, the input read-only, the output read-write; nothing else.
fn binds(spec: &SandboxSpec) -> Vec<String> {
    let mut binds = vec![format!("{}:{}:ro", spec.code_dir.display(), spec.code_mount)];
    if let Some(dir) = &spec.input_dir {
        binds.push(format!("{}:{INPUT_MOUNT}:ro", dir.display()));
    }
    if let Some(dir) = &spec.output_dir {
        binds.push(format!("{}:{OUTPUT_MOUNT}:rw", dir.display()));
    }
    for (host, mount, read_only) in &spec.mounts {
        binds.push(format!("{}:{mount}:{}", host.display(), if *read_only { "ro" } else { "rw" }));
    }
    binds
}

/// Tells a warm sandbox's runner which user (`uid:gid`) its invocations run as.
const RUN_AS_ENV: &str = "GITFAAS_RUN_AS";

/// The longest the executor waits on one Docker call that ends a container.
const DOCKER_CALL_LIMIT: Duration = Duration::from_secs(15);

impl Sandbox {
    /// The sandbox of `policy` on the local Docker engine, once the engine answers:
    /// the one policy every run gets (jobs, warm sandboxes, `gitfaas local run`).
    pub async fn connect(policy: SandboxPolicy) -> anyhow::Result<Self> {
        let docker = Docker::connect_with_defaults().context("connecting to docker")?;
        docker.ping().await.context("docker engine is not reachable")?;
        Ok(Self { docker, policy, metrics: SandboxMetrics::default() })
    }

    /// A client that has not reached the engine (an executor with no container
    /// runtimes never uses it, and needs no engine at all): it names no socket
    /// (bollard refuses a `DOCKER_HOST` socket that does not exist) but a
    /// loopback port it never dials.
    pub fn unconnected(policy: SandboxPolicy) -> anyhow::Result<Self> {
        let docker = Docker::connect_with_http("http://127.0.0.1:1", 1, bollard::API_DEFAULT_VERSION)
            .context("creating an unconnected docker client")?;
        Ok(Self { docker, policy, metrics: SandboxMetrics::default() })
    }

    /// The same sandbox, timing its container calls in `metrics`.
    pub fn with_metrics(self, metrics: SandboxMetrics) -> Self {
        Self { metrics, ..self }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub async fn image_exists(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    pub(crate) fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// The image's id (its digest), or why it cannot be used.
    pub(crate) async fn image_id(&self, image: &str) -> Result<String, SandboxError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => inspect.id.ok_or_else(|| SandboxError::MissingImage(image.to_owned())),
            Err(_) => Err(SandboxError::MissingImage(image.to_owned())),
        }
    }

    /// Creates and starts a long-lived container (a warm sandbox) with the same
    /// hardening as [`Sandbox::run`] and an init process that reaps what its runner
    /// kills, but started as root with `SETUID`/`SETGID` (and no-new-privileges)
    /// so that its runner runs each invocation as the policy's user; the caller
    /// drives its attached streams and
    /// ends it with [`Sandbox::discard`].
    pub(crate) async fn start_attached(
        &self,
        spec: &SandboxSpec,
    ) -> Result<(String, bollard::container::AttachContainerResults), SandboxError> {
        if spec.job_network {
            self.create_network(spec).await?;
        }
        let mut config = self.container_config(spec);
        // the runner and init are root with no capability but to change user, and
        // run each invocation as the policy's user: a function can then neither
        // signal, trace nor open the memory or descriptors of either
        config.user = Some("0:0".into());
        config.env.get_or_insert_with(Vec::new).push(format!("{RUN_AS_ENV}={}", self.policy.user));
        if let Some(host) = config.host_config.as_mut() {
            host.cap_add = Some(vec!["SETUID".into(), "SETGID".into()]);
            host.init = Some(true);
            // stdin closes when the executor's attach ends (stdin_once), the runner
            // exits on that, and the engine removes the container: a warm container
            // does not outlive an executor that died without removing it
            host.auto_remove = Some(true);
        }
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let started = async {
            let clock = std::time::Instant::now();
            let id = self.docker.create_container(Some(options), config).await?.id;
            self.metrics.created("warm", clock.elapsed());
            let attach =
                AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).build();
            let io = self.docker.attach_container(&id, Some(attach)).await;
            let io = match io {
                Ok(io) => io,
                Err(e) => {
                    remove(&self.docker, &id).await;
                    return Err(e.into());
                }
            };
            let clock = std::time::Instant::now();
            if let Err(e) = self.docker.start_container(&id, None).await {
                remove(&self.docker, &id).await;
                return Err(e.into());
            }
            self.metrics.started("warm", clock.elapsed());
            Ok((id, io))
        };
        let started = started.await;
        if started.is_err() && spec.job_network {
            let _ = self.docker.remove_network(&spec.name).await;
        }
        started
    }

    /// Names a container anew (a ready sandbox, once it has a job): what
    /// `docker ps` shows then says whose it is.
    pub(crate) async fn rename(&self, id: &str, name: &str) -> Result<(), SandboxError> {
        let options = bollard::query_parameters::RenameContainerOptionsBuilder::default().name(name).build();
        Ok(self.docker.rename_container(id, options).await?)
    }

    /// Removes a container [`Sandbox::start_attached`] started, and its network.
    pub(crate) async fn discard(&self, id: &str, network: Option<&str>) {
        remove(&self.docker, id).await;
        if let Some(network) = network {
            if let Err(error) = self.docker.remove_network(network).await {
                tracing::warn!(%network, %error, "job network removal failed");
            }
        }
    }

    fn container_config(&self, spec: &SandboxSpec) -> ContainerCreateBody {
        let p = &self.policy;
        let memory = i64::from(spec.memory_mb) * 1024 * 1024;
        let host = HostConfig {
            network_mode: Some(match (&spec.network, spec.job_network) {
                (Some(network), _) => network.clone(),
                (None, true) => spec.name.clone(),
                (None, false) => "none".into(),
            }),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([("/tmp".to_owned(), format!("rw,noexec,nosuid,nodev,size={}m", p.tmpfs_mb))])),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into(), format!("seccomp={}", seccomp::profile())]),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some(i64::from(spec.cpu_millis) * 1_000_000),
            pids_limit: Some(i64::from(spec.pids)),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(p.nofile),
                hard: Some(p.nofile),
            }]),
            binds: Some(binds(spec)),
            runtime: Some(p.oci_runtime.clone()),
            ipc_mode: Some("private".into()),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.command.clone()),
            user: Some(p.user.clone()),
            working_dir: Some(spec.working_dir.clone()),
            env: Some(
                ["HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"]
                    .into_iter()
                    .map(String::from)
                    .chain(spec.env.iter().cloned())
                    .collect(),
            ),
            labels: Some(spec.labels.clone()),
            network_disabled: Some(!spec.job_network && spec.network.is_none()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            host_config: Some(host),
            ..Default::default()
        }
    }

    /// Runs one container to completion (or its deadline) and removes it.
    pub async fn run(&self, spec: SandboxSpec, cancel: &CancellationToken) -> Result<SandboxOutcome, SandboxError> {
        if !self.image_exists(&spec.image).await {
            return Err(SandboxError::MissingImage(spec.image));
        }
        if spec.job_network {
            self.create_network(&spec).await?;
        }
        let outcome = self.create_and_run(&spec, cancel).await;
        if spec.job_network {
            if let Err(error) = self.docker.remove_network(&spec.name).await {
                tracing::warn!(network = %spec.name, %error, "job network removal failed");
            }
        }
        outcome
    }

    async fn create_and_run(
        &self,
        spec: &SandboxSpec,
        cancel: &CancellationToken,
    ) -> Result<SandboxOutcome, SandboxError> {
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let clock = std::time::Instant::now();
        let create = tracing::info_span!("sandbox create", sandbox.kind = "cold");
        let created = self.docker.create_container(Some(options), self.container_config(spec)).instrument(create).await;
        let id = created?.id;
        self.metrics.created("cold", clock.elapsed());
        let mut guard = RemoveOnDrop { docker: self.docker.clone(), id: id.clone(), armed: true };
        let outcome = self.run_created(&id, spec, cancel).await;
        remove(&self.docker, &id).await;
        guard.armed = false;
        outcome
    }

    async fn run_created(
        &self,
        id: &str,
        spec: &SandboxSpec,
        cancel: &CancellationToken,
    ) -> Result<SandboxOutcome, SandboxError> {
        let attach =
            AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).build();
        let io = self.docker.attach_container(id, Some(attach)).await?;
        let clock = std::time::Instant::now();
        let start = tracing::info_span!("sandbox start", sandbox.kind = "cold");
        self.docker.start_container(id, None).instrument(start).await?;
        self.metrics.started("cold", clock.elapsed());
        let stdin = spec.stdin.clone(); // zeroized when the feeder ends
        let mut input = io.input;
        let feeder = tokio::spawn(async move {
            // a function that never reads stdin must not block us: errors are ignored
            let _ = input.write_all(&stdin).await;
            let _ = input.shutdown().await;
        });

        let mut outcome = SandboxOutcome::default();
        let mut stderr = Stderr::new(self.policy.stderr_tail_bytes, &spec.log);
        let deadline = tokio::time::sleep(spec.timeout);
        tokio::pin!(deadline);
        let mut output = io.output;
        loop {
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(LogOutput::StdOut { message })) => {
                        if outcome.stdout.len() + message.len() > self.policy.stdout_max_bytes {
                            outcome.stdout_overflow = true;
                            self.kill_draining(id, &mut output, &mut stderr).await;
                            break;
                        }
                        outcome.stdout.extend_from_slice(&message);
                    }
                    Some(Ok(LogOutput::StdErr { message })) => stderr.push(&message),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::warn!(container = %id, %error, "output stream error");
                        break;
                    }
                    None => break,
                },
                () = &mut deadline => {
                    outcome.timed_out = true;
                    self.kill_draining(id, &mut output, &mut stderr).await;
                    break;
                }
                () = cancel.cancelled() => {
                    outcome.cancelled = true;
                    self.kill_draining(id, &mut output, &mut stderr).await;
                    break;
                }
            }
        }
        // closing the attach stream lets the engine finish the exit without us reading
        drop(output);
        feeder.abort();
        let state = self.wait_exit(id).await?;
        outcome.exit_code = state.0;
        // gVisor's sentry ends a sandbox out of memory with SIGKILL, and Docker does not
        // always learn it was an OOM kill (State.OOMKilled false, seen in CI): under runsc
        // an exit by SIGKILL that the executor did not send (no timeout, cancel or stdout
        // cap) counts as one
        let unasked_kill = state.0 == Some(137) && !(outcome.timed_out || outcome.cancelled || outcome.stdout_overflow);
        outcome.oom_killed = state.1 || (self.policy.oci_runtime == "runsc" && unasked_kill);
        outcome.stderr_tail = stderr.text();
        if outcome.stdout_overflow {
            outcome.stdout.clear();
            outcome.stderr_tail.push_str(STDOUT_CAP_MARKER);
        }
        Ok(outcome)
    }

    /// Kills the container while still reading its output, discarding stdout and
    /// keeping the stderr tail: the engine does not complete a kill while the
    /// attach stream it copies a flooding process's output into is full (a job
    /// past the stdout cap took 46 s to end, two Docker call limits, before this).
    async fn kill_draining<S>(&self, id: &str, output: &mut S, stderr: &mut Stderr<'_>)
    where
        S: futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    {
        let kill = self.kill(id);
        tokio::pin!(kill);
        let mut open = true;
        loop {
            tokio::select! {
                () = &mut kill => return,
                chunk = output.next(), if open => match chunk {
                    Some(Ok(LogOutput::StdErr { message })) => stderr.push(&message),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => open = false,
                },
            }
        }
    }

    async fn kill(&self, id: &str) {
        let options = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
        match tokio::time::timeout(DOCKER_CALL_LIMIT, self.docker.kill_container(id, Some(options))).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(container = %id, %error, "kill failed (container may have exited)"),
            Err(_) => tracing::warn!(container = %id, "kill did not complete in time"),
        }
    }

    /// Waits until the container is no longer running; returns (exit code, oom killed).
    async fn wait_exit(&self, id: &str) -> Result<(Option<i64>, bool), SandboxError> {
        let mut wait = self.docker.wait_container(id, None);
        let _ = tokio::time::timeout(DOCKER_CALL_LIMIT, wait.next()).await;
        let inspect = match tokio::time::timeout(DOCKER_CALL_LIMIT, self.docker.inspect_container(id, None)).await {
            Ok(inspect) => inspect?,
            Err(_) => return Ok((None, false)), // a wedged container still gets its result
        };
        let state = inspect.state.unwrap_or_default();
        Ok((state.exit_code, state.oom_killed.unwrap_or(false)))
    }

    /// (exit code, oom killed) of a container that is no longer running, without
    /// waiting; `Ok((None, false))` for one still running.
    pub(crate) async fn wait_exit_if_exited(&self, id: &str) -> Result<(Option<i64>, bool), SandboxError> {
        let inspect = tokio::time::timeout(DOCKER_CALL_LIMIT, self.docker.inspect_container(id, None)).await;
        let Ok(inspect) = inspect else { return Ok((None, false)) };
        let state = inspect?.state.unwrap_or_default();
        if state.running == Some(true) {
            return Ok((None, false));
        }
        Ok((state.exit_code, state.oom_killed.unwrap_or(false)))
    }
}

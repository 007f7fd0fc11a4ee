//! The container lifecycle, behind one narrow interface: [`Sandbox::run`] takes a
//! [`SandboxSpec`] and returns what the process did ([`SandboxOutcome`]). Nothing
//! else in the executor talks to Docker.
//!
//! Every container is created with no network, a read-only root file system, a
//! size-capped tmpfs at /tmp, all capabilities dropped, no-new-privileges, a
//! non-root user, memory (= memory + swap), CPU, pids and open-file limits, and only
//! the job's read-only checkout mounted. It is killed at its deadline, killed when
//! its stdout passes the cap, and always removed — also when the future running it
//! is dropped.

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Label put on every job container, with the executor id as its value.
pub const EXECUTOR_LABEL: &str = "io.gitfaas.executor";
pub const JOB_LABEL: &str = "io.gitfaas.job";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("docker error: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("image `{0}` is not available on this executor")]
    MissingImage(String),
}

/// Everything that varies between job containers.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Host directory mounted read-only at [`SandboxSpec::code_mount`].
    pub code_dir: std::path::PathBuf,
    pub code_mount: String,
    pub stdin: Vec<u8>,
    pub memory_mb: u32,
    pub cpu_millis: u32,
    pub pids: u32,
    pub timeout: Duration,
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
}

/// Keeps the last `cap` bytes written to it.
struct Tail {
    buf: Vec<u8>,
    cap: usize,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.cap {
            let excess = self.buf.len() - self.cap;
            self.buf.drain(..excess);
        }
    }
}

/// Removes the container when dropped, unless disarmed after an orderly removal.
struct RemoveOnDrop {
    docker: Docker,
    id: String,
    armed: bool,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { remove(&docker, &id).await });
            }
        }
    }
}

async fn remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    if let Err(error) = docker.remove_container(id, Some(options)).await {
        tracing::warn!(container = %id, %error, "container removal failed");
    }
}

impl Sandbox {
    pub fn new(docker: Docker, policy: SandboxPolicy) -> Self {
        Self { docker, policy }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub async fn image_exists(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    fn container_config(&self, spec: &SandboxSpec) -> ContainerCreateBody {
        let p = &self.policy;
        let memory = i64::from(spec.memory_mb) * 1024 * 1024;
        let host = HostConfig {
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([("/tmp".to_owned(), format!("rw,noexec,nosuid,nodev,size={}m", p.tmpfs_mb))])),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some(i64::from(spec.cpu_millis) * 1_000_000),
            pids_limit: Some(i64::from(spec.pids)),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(p.nofile),
                hard: Some(p.nofile),
            }]),
            binds: Some(vec![format!("{}:{}:ro", spec.code_dir.display(), spec.code_mount)]),
            runtime: Some(p.oci_runtime.clone()),
            ipc_mode: Some("private".into()),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.command.clone()),
            user: Some(p.user.clone()),
            working_dir: Some(spec.code_mount.clone()),
            env: Some(vec![
                "HOME=/tmp".into(),
                "TMPDIR=/tmp".into(),
                "PYTHONDONTWRITEBYTECODE=1".into(),
                "PYTHONUNBUFFERED=1".into(),
            ]),
            labels: Some(spec.labels.clone()),
            network_disabled: Some(true),
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
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).build();
        let id = self.docker.create_container(Some(options), self.container_config(&spec)).await?.id;
        let mut guard = RemoveOnDrop { docker: self.docker.clone(), id: id.clone(), armed: true };
        let outcome = self.run_created(&id, &spec, cancel).await;
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
        let mut io = self.docker.attach_container(id, Some(attach)).await?;
        self.docker.start_container(id, None).await?;
        let stdin = spec.stdin.clone();
        let mut input = io.input;
        let feeder = tokio::spawn(async move {
            // a function that never reads stdin must not block us: errors are ignored
            let _ = input.write_all(&stdin).await;
            let _ = input.shutdown().await;
        });

        let mut outcome = SandboxOutcome::default();
        let mut stderr = Tail { buf: Vec::new(), cap: self.policy.stderr_tail_bytes };
        let deadline = tokio::time::sleep(spec.timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                chunk = io.output.next() => match chunk {
                    Some(Ok(LogOutput::StdOut { message })) => {
                        if outcome.stdout.len() + message.len() > self.policy.stdout_max_bytes {
                            outcome.stdout_overflow = true;
                            self.kill(id).await;
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
                    self.kill(id).await;
                    break;
                }
                () = cancel.cancelled() => {
                    outcome.cancelled = true;
                    self.kill(id).await;
                    break;
                }
            }
        }
        feeder.abort();
        let state = self.wait_exit(id).await?;
        outcome.exit_code = state.0;
        outcome.oom_killed = state.1;
        outcome.stderr_tail = String::from_utf8_lossy(&stderr.buf).into_owned();
        Ok(outcome)
    }

    async fn kill(&self, id: &str) {
        let options = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
        if let Err(error) = self.docker.kill_container(id, Some(options)).await {
            tracing::debug!(container = %id, %error, "kill failed (container may have exited)");
        }
    }

    /// Waits until the container is no longer running; returns (exit code, oom killed).
    async fn wait_exit(&self, id: &str) -> Result<(Option<i64>, bool), SandboxError> {
        let mut wait = self.docker.wait_container(id, None);
        let _ = tokio::time::timeout(Duration::from_secs(30), wait.next()).await;
        let inspect = self.docker.inspect_container(id, None).await?;
        let state = inspect.state.unwrap_or_default();
        Ok((state.exit_code, state.oom_killed.unwrap_or(false)))
    }

    /// Removes containers left by a crashed executor with the same id, or every
    /// gitfaas container when `executor_id` is `None`. Returns how many were removed.
    pub async fn remove_orphans(&self, executor_id: Option<&str>) -> Result<usize, SandboxError> {
        let label = match executor_id {
            Some(id) => format!("{EXECUTOR_LABEL}={id}"),
            None => EXECUTOR_LABEL.to_owned(),
        };
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([("label", vec![label.as_str()])]))
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        for container in &containers {
            if let Some(id) = &container.id {
                remove(&self.docker, id).await;
            }
        }
        Ok(containers.len())
    }
}

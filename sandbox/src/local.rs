//! A function from a local directory, run once in the sandbox every job runs in —
//! the same images, policy (user, tmpfs, nofile, stdout cap, OCI runtime), runtime
//! plan and runner — with no broker, git server or frontend: what `gitfaas local
//! run` calls. The directory is copied (without `.git`) into a workspace of its own,
//! as a checkout would be, and the container is removed after its run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gitfaas_common::schema::Resources;
use gitfaas_common::schema::{Attempt, DependencyBuild};
use gitfaas_common::{JobId, JobResult, JobStatus, Owner};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use gitfaas_common::logs::{LogLimits, LogRun};

use crate::deps::{Dependencies, DepsError, Prepared};
use crate::docker::{Sandbox, SandboxError, SandboxSpec, EXECUTOR_LABEL, JOB_LABEL};
use crate::logs::{LogSink, LogStreamer, Outlet, Redactor};
use crate::metrics::WasmMetrics;
use crate::outcome::interpret;
use crate::runtime::{self, Launch, Offer, WASM_RUNTIME};
use crate::settings::SandboxSettings;
use crate::wasm::{run_wasm, WasmRun};
use gitfaas_wasm::WasmRuntime;

const CODE_MOUNT: &str = "/code";

/// What to run.
pub struct LocalRun<'a> {
    pub dir: &'a Path,
    pub runtime: Option<&'a str>,
    pub input: &'a Value,
    pub resources: Resources,
    pub timeout: Duration,
    /// Print the function's stderr on this process's stderr as it comes (the same
    /// chunks, cap included, a job's live log has).
    pub live_log: bool,
    /// Install the dependencies the directory declares (a job's `install`).
    pub dependencies: bool,
    /// The entry, workdir and args, as a job names them over the manifest.
    pub chosen: runtime::Chosen<'a>,
}

/// How it ended, in the terms of a job's result.
#[derive(Debug)]
pub struct LocalOutcome {
    pub status: JobStatus,
    pub reason: Option<String>,
    /// The runtime and image the plan chose (empty when the plan was refused).
    pub runtime: String,
    pub image: String,
    pub exit_code: Option<i64>,
    pub output: Option<Value>,
    pub stderr_tail: String,
    /// The dependency layer the run had, when it had one.
    pub dependencies: Option<DependencyBuild>,
}

/// Runs the function in `run.dir` once; an error is the machine's (Docker, disk), a
/// refused plan or a failed function is an outcome.
pub async fn run_local(
    settings: &SandboxSettings,
    run: LocalRun<'_>,
    cancel: &CancellationToken,
) -> anyhow::Result<LocalOutcome> {
    let workspace = tempfile::Builder::new().prefix("gitfaas-local-").tempdir().context("creating a workspace")?;
    let code = workspace.path().join("code");
    prepare(workspace.path(), run.dir, &code).with_context(|| format!("copying {}", run.dir.display()))?;
    let offer = Offer { images: &settings.images, allowed_images: &settings.allowed_images, wasm: true };
    let launch = match runtime::plan(&code, CODE_MOUNT, run.runtime, &run.chosen, &offer, run.input, b"{}") {
        Ok(launch) => launch,
        Err(error) => return Ok(LocalOutcome::refused(error.to_string())),
    };
    if launch.runtime == WASM_RUNTIME {
        return run_module(settings, &run, launch, workspace.path(), cancel).await;
        // no Docker
    }
    let sandbox = Sandbox::connect(settings.policy()).await?;
    let workdir = run.chosen.workdir.unwrap_or(".");
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let streamer = run.live_log.then(|| print_live(&settings.logs));
    // the cache is made only for a directory that declares something
    let prepared = match run.dependencies && crate::deps::declares(&code, workdir, &launch) {
        true => {
            let deps =
                Dependencies::new(&settings.dependencies, sandbox.clone(), "local").context("dependency cache")?;
            let log = streamer.as_ref().map(LogStreamer::sink).unwrap_or_else(LogSink::off);
            match deps.prepare(&code, workdir, &launch, &format!("local-{suffix}"), &log, cancel).await {
                Ok(prepared) => prepared,
                Err(DepsError::Failed { why, log }) => {
                    if let Some(streamer) = streamer {
                        streamer.finish().await; // the build's output is printed before its end
                    }
                    return Ok(LocalOutcome::build_failed(&why, log));
                }
                Err(error) if error.is_infrastructure() => return Err(error).context("building the dependencies"),
                Err(error) => return Ok(LocalOutcome::refused(error.to_string())),
            }
        }
        false => None,
    };
    let mut spec = SandboxSpec {
        name: format!("gitfaas-local-{}", &suffix[16..]),
        image: launch.image.clone(),
        command: launch.command.clone(),
        labels: HashMap::from([
            (EXECUTOR_LABEL.to_owned(), "local".to_owned()),
            (JOB_LABEL.to_owned(), format!("local-{suffix}")),
        ]),
        code_dir: code,
        code_mount: CODE_MOUNT.to_owned(),
        working_dir: launch.working_dir.clone(),
        input_dir: Some(workspace.path().join("input")),
        output_dir: Some(workspace.path().join("output")),
        job_network: settings.job_network,
        network: None,
        mounts: Vec::new(),
        env: launch.env.clone(),
        stdin: launch.stdin.clone(),
        memory_mb: run.resources.memory_mb,
        cpu_millis: run.resources.cpu_millis,
        pids: run.resources.pids,
        timeout: run.timeout,
        log: streamer.as_ref().map(LogStreamer::sink).unwrap_or_else(LogSink::off),
    };
    if let Some(prepared) = &prepared {
        prepared.apply(&mut spec, launch.reading.text_output);
    }
    let out = sandbox.run(spec, cancel).await;
    if let Some(streamer) = streamer {
        streamer.finish().await;
    }
    let out = match out {
        Ok(out) => out,
        Err(error @ SandboxError::MissingImage(_)) => return Ok(LocalOutcome::refused(error.to_string())),
        Err(error) => return Err(error).context("running the sandbox"),
    };
    let at = local_attempt();
    let timeout_secs = u32::try_from(run.timeout.as_secs()).unwrap_or(u32::MAX);
    let (runtime, image) = (launch.runtime.clone(), launch.image.clone());
    let result = interpret(&at, out, &launch.reading, timeout_secs, settings.stdout_max_bytes);
    Ok(LocalOutcome::of(result, runtime, image, prepared.as_ref().map(Prepared::summary)))
}

/// A wasm module's run, in this process.
async fn run_module(
    settings: &SandboxSettings,
    run: &LocalRun<'_>,
    launch: Launch,
    workspace: &Path,
    cancel: &CancellationToken,
) -> anyhow::Result<LocalOutcome> {
    let runtime = Arc::new(WasmRuntime::new(&settings.wasm).context("starting the wasm runtime")?);
    let streamer = run.live_log.then(|| print_live(&settings.logs));
    let wasm = WasmRun {
        launch,
        code_dir: workspace.join("code"),
        input_dir: workspace.join("input"),
        output_dir: workspace.join("output"),
        memory_mb: run.resources.memory_mb,
        timeout: run.timeout,
        stdout_max_bytes: settings.stdout_max_bytes,
        stderr_tail_bytes: settings.stderr_tail_bytes,
        log: streamer.as_ref().map(LogStreamer::sink).unwrap_or_else(LogSink::off),
        metrics: WasmMetrics::default(),
    };
    let result = run_wasm(&runtime, &local_attempt(), wasm, cancel).await;
    if let Some(streamer) = streamer {
        streamer.finish().await;
    }
    let result = result.map_err(|why| anyhow::anyhow!(why))?;
    Ok(LocalOutcome::of(result, WASM_RUNTIME.to_owned(), String::new(), None))
}

/// A local run is one attempt of no job: only the reading of its outcome matters.
fn local_attempt() -> Attempt {
    let started_at = chrono::Utc::now();
    Attempt {
        job_id: JobId::new(),
        owner: Owner { subject: "local".into(), name: None },
        submitted_at: started_at,
        executor_id: "local".into(),
        number: 1,
        started_at: Some(started_at),
        delivery: Default::default(),
        function: None,
    }
}

/// A live log printed on stderr, chunk by chunk, a little more often than a job's.
fn print_live(limits: &LogLimits) -> LogStreamer {
    let run = LogRun { job_id: JobId::new(), attempt: 1, executor_id: "local".into(), started_at: chrono::Utc::now() };
    let limits = LogLimits { interval_ms: limits.interval_ms.min(50), ..limits.clone() };
    let outlet: Outlet = Box::new(|chunk| {
        use std::io::Write;
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(chunk.text.as_bytes());
        if chunk.truncated {
            let _ = stderr.write_all(b"\n[gitfaas: the log reached its size limit; the rest was dropped]\n");
        }
        let _ = stderr.flush();
        Box::pin(async {})
    });
    LogStreamer::start(run, &limits, Redactor::default(), outlet)
}

impl LocalOutcome {
    fn of(result: JobResult, runtime: String, image: String, dependencies: Option<DependencyBuild>) -> Self {
        Self {
            status: result.status,
            reason: result.reason,
            runtime,
            image,
            exit_code: result.exit_code,
            output: result.output,
            stderr_tail: result.stderr_tail,
            dependencies,
        }
    }

    fn refused(reason: String) -> Self {
        Self {
            status: JobStatus::Rejected,
            reason: Some(reason),
            runtime: String::new(),
            image: String::new(),
            exit_code: None,
            output: None,
            stderr_tail: String::new(),
            dependencies: None,
        }
    }

    fn build_failed(why: &str, log: String) -> Self {
        let reason = format!("{}: {why}", gitfaas_common::schema::DEPENDENCY_INSTALL_FAILED);
        Self { status: JobStatus::Failed, reason: Some(reason), stderr_tail: log, ..Self::refused(String::new()) }
    }
}

/// The workspace's `code` (a copy of `source`), `input` and `output`, readable by
/// the sandbox's non-root user (and `output` writable by it).
fn prepare(root: &Path, source: &Path, code: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
    copy_tree(source, code)?;
    for (sub, mode) in [("input", 0o755), ("output", 0o777)] {
        std::fs::create_dir(root.join(sub))?;
        std::fs::set_permissions(root.join(sub), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Copies files, directories and symlinks (as links, like a checkout), leaving out
/// `.git`; files keep their executable bit and become world-readable.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (kind, target) = (entry.file_type()?, to.join(entry.file_name()));
        if entry.file_name() == ".git" {
            continue;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            let executable = entry.metadata()?.permissions().mode() & 0o111 != 0;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }))?;
        }
    }
    Ok(())
}

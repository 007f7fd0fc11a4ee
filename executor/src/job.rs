//! Runs one job attempt: policy, credentials, checkout, sources, plan, sandbox,
//! sinks, and the mapping of what happened to exactly one terminal [`JobResult`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::limits;
use gitfaas_common::schema::Attempt;
use gitfaas_common::{Job, JobResult, JobStatus};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use std::path::PathBuf;

use crate::credentials::{Credentials, GIT_TOKEN};
use crate::data::{self, DataError};
use crate::git::GitCache;
use crate::runtime::{self, Launch, Offer};
use crate::sandbox::{Sandbox, SandboxError, SandboxOutcome, SandboxSpec, EXECUTOR_LABEL, JOB_LABEL};
use crate::settings::ExecutorSettings;
use gitfaas_common::policy::{PolicyError, RepoUrl};

const CODE_MOUNT: &str = "/code";

/// The job's directories on the host; removed when dropped.
struct Workspace(tempfile::TempDir);

impl Workspace {
    fn code(&self) -> PathBuf {
        self.0.path().join("code")
    }
    fn input(&self) -> PathBuf {
        self.0.path().join("input")
    }
    fn output(&self) -> PathBuf {
        self.0.path().join("output")
    }
}

pub struct JobRunner {
    pub executor_id: String,
    pub settings: ExecutorSettings,
    pub git: Arc<GitCache>,
    pub sandbox: Sandbox,
}

/// How an attempt ended: its result, and whether a failure was the executor's own.
struct Ending {
    result: JobResult,
    /// The executor's own trouble (disk, Docker), not the job's: worth retrying.
    infrastructure: bool,
}

impl From<JobResult> for Ending {
    fn from(result: JobResult) -> Self {
        Self { result, infrastructure: false }
    }
}

impl Ending {
    fn infrastructure(attempt: &Attempt, reason: impl Into<String>) -> Self {
        Self { result: JobResult::failed(attempt, reason), infrastructure: true }
    }
}

/// One attempt's result, and whether its failure was the executor's own.
pub struct RunOutcome {
    pub result: JobResult,
    pub infrastructure_failure: bool,
}

impl JobRunner {
    /// Runs one attempt; `cancel` kills the function and ends it as `cancelled`.
    pub async fn run(
        &self,
        job: &Job,
        attempt: u32,
        started_at: DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> RunOutcome {
        let at = Attempt::of(job, &self.executor_id, attempt).started(started_at);
        let mut commit_sha = None;
        let ending = self.attempt(job, &at, &mut commit_sha, cancel).await;
        let result = JobResult { commit_sha, ..ending.result.finished(Utc::now()) };
        RunOutcome { result, infrastructure_failure: ending.infrastructure }
    }

    async fn attempt(
        &self,
        job: &Job,
        at: &Attempt,
        commit_sha: &mut Option<String>,
        cancel: &CancellationToken,
    ) -> Ending {
        let spec = &job.spec;
        let policy = &self.settings.policy;
        let repo = match RepoUrl::parse(&spec.repo, policy) {
            Ok(repo) if gitfaas_common::schema::is_valid_ref(&spec.git_ref) => repo,
            Ok(_) => return JobResult::rejected(at, PolicyError::Ref(spec.git_ref.clone()).to_string()).into(),
            Err(e) => return JobResult::rejected(at, e.to_string()).into(),
        };
        let limits = &self.settings.data;
        if let Err(e) = data::check_links(&spec.sources, false, limits, policy).and(data::check_links(
            &spec.sinks,
            true,
            limits,
            policy,
        )) {
            return JobResult::rejected(at, e.to_string()).into();
        }
        let credentials = match self.open_credentials(job, at) {
            Ok(credentials) => credentials,
            Err(ending) => return *ending,
        };
        let dirs = match self.workspace() {
            Ok(dirs) => dirs,
            Err(e) => return Ending::infrastructure(at, format!("executor could not create a workspace: {e}")),
        };
        let checkout = dirs.code();
        let (git, git_ref, policy) = (self.git.clone(), spec.git_ref.clone(), policy.clone());
        let token = credentials.get(GIT_TOKEN);
        let fetched = tokio::task::spawn_blocking(move || {
            git.checkout_checked(&repo, &policy, &git_ref, &checkout, token.as_deref().map(|t| t.as_str()))
        })
        .await;
        match fetched {
            Ok(Ok(sha)) => *commit_sha = Some(sha),
            Ok(Err(e)) if e.is_infrastructure() => return Ending::infrastructure(at, e.to_string()),
            Ok(Err(e)) if e.is_policy() => return JobResult::rejected(at, e.to_string()).into(),
            Ok(Err(e)) => return JobResult::failed(at, e.to_string()).into(),
            Err(e) => return Ending::infrastructure(at, format!("checkout task failed: {e}")),
        }
        if let Err(e) = data::download(&spec.sources, &dirs.input(), limits, &self.settings.policy).await {
            return JobResult::failed(at, e.to_string()).into();
        }
        if cancel.is_cancelled() {
            return JobResult::cancelled_before_run(at).into();
        }
        let offer = Offer { images: &self.settings.images, allowed_images: &self.settings.allowed_images };
        let planned =
            runtime::plan(&dirs.code(), CODE_MOUNT, spec.runtime.as_deref(), &offer, &spec.input, credentials.json());
        drop(credentials);
        let launch = match planned {
            Ok(launch) => launch,
            Err(e) => return JobResult::rejected(at, e.to_string()).into(),
        };
        tracing::info!(job_id = %job.id, runtime = %launch.runtime, image = %launch.image, "running job");
        let mut ending = match self.sandbox.run(self.sandbox_spec(job, launch, &dirs), cancel).await {
            Ok(outcome) => self.interpret(at, outcome, spec.timeout_secs).into(),
            Err(e @ SandboxError::MissingImage(_)) => JobResult::rejected(at, e.to_string()).into(),
            Err(e) => Ending::infrastructure(at, format!("sandbox error: {e}")),
        };
        if ending.result.status == JobStatus::Succeeded && !spec.sinks.is_empty() {
            if let Err(e) = data::upload(&spec.sinks, &dirs.output(), limits, &self.settings.policy).await {
                let failed = match e {
                    DataError::OutputTooLarge(_) => JobResult::output_too_large(at, e.to_string()),
                    _ => JobResult::failed(at, e.to_string()),
                };
                // the run's result (output, stderr) with the status and reason of the upload
                ending.result = JobResult { status: failed.status, reason: failed.reason, ..ending.result };
            }
        }
        ending
    }

    fn open_credentials(&self, job: &Job, at: &Attempt) -> Result<Credentials, Box<Ending>> {
        let Some(sealed) = job.spec.sealed_credentials.as_deref() else { return Ok(Credentials::none()) };
        let key = self.settings.private_key().map_err(|e| Box::new(Ending::infrastructure(at, e.to_string())))?;
        Credentials::open(Some(sealed), key.as_ref())
            .map_err(|e| Box::new(JobResult::rejected(at, e.to_string()).into()))
    }

    /// A directory of the job's own: `code` (the checkout, read-only in the
    /// container), `input` (read-only) and `output` (writable by the sandbox user).
    fn workspace(&self) -> std::io::Result<Workspace> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&self.settings.work_dir)?;
        let dir = tempfile::Builder::new().prefix("job-").tempdir_in(&self.settings.work_dir)?;
        // the sandbox user is not root: it must be able to read the checkout and input
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        for (sub, mode) in [("code", 0o755), ("input", 0o755), ("output", 0o777)] {
            std::fs::create_dir(dir.path().join(sub))?;
            std::fs::set_permissions(dir.path().join(sub), std::fs::Permissions::from_mode(mode))?;
        }
        Ok(Workspace(dir))
    }

    fn sandbox_spec(&self, job: &Job, launch: Launch, dirs: &Workspace) -> SandboxSpec {
        let suffix = uuid::Uuid::now_v7().simple().to_string(); // last hex digits are random
        SandboxSpec {
            name: format!("gitfaas-{}-{}", job.id, &suffix[24..]),
            image: launch.image,
            command: launch.command,
            labels: HashMap::from([
                (EXECUTOR_LABEL.to_owned(), self.executor_id.clone()),
                (JOB_LABEL.to_owned(), job.id.to_string()),
            ]),
            code_dir: dirs.code(),
            code_mount: CODE_MOUNT.to_owned(),
            input_dir: Some(dirs.input()),
            output_dir: Some(dirs.output()),
            job_network: self.settings.job_network,
            stdin: launch.stdin,
            memory_mb: job.spec.resources.memory_mb,
            cpu_millis: job.spec.resources.cpu_millis,
            pids: job.spec.resources.pids,
            timeout: Duration::from_secs(u64::from(job.spec.timeout_secs)),
        }
    }

    fn interpret(&self, at: &Attempt, out: SandboxOutcome, timeout_secs: u32) -> JobResult {
        let result = if out.cancelled {
            JobResult::cancelled_while_running(at)
        } else if out.timed_out {
            JobResult::timed_out(at, timeout_secs)
        } else if out.stdout_overflow {
            JobResult::stdout_too_large(at, self.settings.stdout_max_bytes)
        } else if out.oom_killed {
            JobResult::oom_killed(at)
        } else if out.exit_code != Some(0) {
            JobResult::exited_with(at, out.exit_code)
        } else {
            match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(value) if limits::check_depth(&value).is_err() => {
                    JobResult::bad_output(at, limits::LimitError::TooDeep)
                }
                Ok(value) => JobResult::succeeded(at, value),
                // serde_json's own limit (128 levels) is past ours: the same reason
                Err(e) if e.to_string().starts_with("recursion limit exceeded") => {
                    JobResult::bad_output(at, limits::LimitError::TooDeep)
                }
                Err(e) => JobResult::bad_output(at, format!("not valid json: {e}")),
            }
        };
        result.with_process(out.exit_code, out.stderr_tail)
    }
}

//! Runs one job attempt: policy, credentials, checkout, sources, plan, sandbox,
//! sinks, and the mapping of what happened to exactly one terminal [`JobResult`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::limits;
use gitfaas_common::schema::SCHEMA_VERSION;
use gitfaas_common::{Job, JobResult, JobStatus, Timings};
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

/// How an attempt ended before it produced a result value.
struct Ending {
    status: JobStatus,
    reason: Option<String>,
    exit_code: Option<i64>,
    output: Option<Value>,
    stderr_tail: String,
    /// The executor's own trouble (disk, Docker), not the job's: worth retrying.
    infrastructure: bool,
}

impl Ending {
    fn failed(status: JobStatus, reason: impl Into<String>) -> Self {
        let reason = Some(reason.into());
        Self { status, reason, exit_code: None, output: None, stderr_tail: String::new(), infrastructure: false }
    }

    fn infrastructure(reason: impl Into<String>) -> Self {
        Self { infrastructure: true, ..Self::failed(JobStatus::Failed, reason) }
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
        let mut commit_sha = None;
        let ending = self.attempt(job, &mut commit_sha, cancel).await;
        let finished_at = Utc::now();
        let infrastructure_failure = ending.infrastructure;
        let result = JobResult {
            version: SCHEMA_VERSION,
            job_id: job.id,
            owner: job.owner.clone(),
            status: ending.status,
            reason: ending.reason,
            exit_code: ending.exit_code,
            output: ending.output,
            stderr_tail: ending.stderr_tail,
            commit_sha,
            executor_id: self.executor_id.clone(),
            attempt,
            submitted_at: job.submitted_at,
            started_at: Some(started_at),
            finished_at,
            timings: Timings::between(job.submitted_at, Some(started_at), finished_at),
        };
        RunOutcome { result, infrastructure_failure }
    }

    async fn attempt(&self, job: &Job, commit_sha: &mut Option<String>, cancel: &CancellationToken) -> Ending {
        let spec = &job.spec;
        let policy = &self.settings.policy;
        let repo = match RepoUrl::parse(&spec.repo, policy) {
            Ok(repo) if gitfaas_common::schema::is_valid_ref(&spec.git_ref) => repo,
            Ok(_) => return Ending::failed(JobStatus::Rejected, PolicyError::Ref(spec.git_ref.clone()).to_string()),
            Err(e) => return Ending::failed(JobStatus::Rejected, e.to_string()),
        };
        let limits = &self.settings.data;
        if let Err(e) = data::check_links(&spec.sources, false, limits, policy).and(data::check_links(
            &spec.sinks,
            true,
            limits,
            policy,
        )) {
            return Ending::failed(JobStatus::Rejected, e.to_string());
        }
        let credentials = match self.open_credentials(job) {
            Ok(credentials) => credentials,
            Err(ending) => return ending,
        };
        let dirs = match self.workspace() {
            Ok(dirs) => dirs,
            Err(e) => return Ending::infrastructure(format!("executor could not create a workspace: {e}")),
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
            Ok(Err(e)) if e.is_infrastructure() => return Ending::infrastructure(e.to_string()),
            Ok(Err(e)) if e.is_policy() => return Ending::failed(JobStatus::Rejected, e.to_string()),
            Ok(Err(e)) => return Ending::failed(JobStatus::Failed, e.to_string()),
            Err(e) => return Ending::infrastructure(format!("checkout task failed: {e}")),
        }
        if let Err(e) = data::download(&spec.sources, &dirs.input(), limits, &self.settings.policy).await {
            return Ending::failed(JobStatus::Failed, e.to_string());
        }
        if cancel.is_cancelled() {
            return Ending::failed(JobStatus::Cancelled, "cancelled before it ran");
        }
        let offer = Offer { images: &self.settings.images, allowed_images: &self.settings.allowed_images };
        let planned =
            runtime::plan(&dirs.code(), CODE_MOUNT, spec.runtime.as_deref(), &offer, &spec.input, credentials.json());
        drop(credentials);
        let launch = match planned {
            Ok(launch) => launch,
            Err(e) => return Ending::failed(JobStatus::Rejected, e.to_string()),
        };
        tracing::info!(job_id = %job.id, runtime = %launch.runtime, image = %launch.image, "running job");
        let mut ending = match self.sandbox.run(self.sandbox_spec(job, launch, &dirs), cancel).await {
            Ok(outcome) => self.interpret(outcome, spec.timeout_secs),
            Err(e @ SandboxError::MissingImage(_)) => Ending::failed(JobStatus::Rejected, e.to_string()),
            Err(e) => Ending::infrastructure(format!("sandbox error: {e}")),
        };
        if ending.status == JobStatus::Succeeded && !spec.sinks.is_empty() {
            if let Err(e) = data::upload(&spec.sinks, &dirs.output(), limits, &self.settings.policy).await {
                ending.status = match e {
                    DataError::OutputTooLarge(_) => JobStatus::OutputTooLarge,
                    _ => JobStatus::Failed,
                };
                ending.reason = Some(e.to_string());
            }
        }
        ending
    }

    fn open_credentials(&self, job: &Job) -> Result<Credentials, Ending> {
        let Some(sealed) = job.spec.sealed_credentials.as_deref() else { return Ok(Credentials::none()) };
        let key = self.settings.private_key().map_err(|e| Ending::infrastructure(e.to_string()))?;
        Credentials::open(Some(sealed), key.as_ref()).map_err(|e| Ending::failed(JobStatus::Rejected, e.to_string()))
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

    fn interpret(&self, out: SandboxOutcome, timeout_secs: u32) -> Ending {
        let mut ending = Ending {
            status: JobStatus::Failed,
            reason: None,
            exit_code: out.exit_code,
            output: None,
            stderr_tail: out.stderr_tail,
            infrastructure: false,
        };
        if out.cancelled {
            ending.status = JobStatus::Cancelled;
            ending.reason = Some("cancelled while running".into());
        } else if out.timed_out {
            ending.status = JobStatus::TimedOut;
            ending.reason = Some(format!("killed after the {timeout_secs}s timeout"));
        } else if out.stdout_overflow {
            ending.status = JobStatus::OutputTooLarge;
            ending.reason = Some(format!(
                "output exceeded the {} byte limit; the function was stopped",
                self.settings.stdout_max_bytes
            ));
        } else if out.oom_killed {
            ending.status = JobStatus::OomKilled;
            ending.reason = Some("killed: out of memory".into());
        } else if out.exit_code != Some(0) {
            let code = out.exit_code.map_or("unknown".into(), |c| c.to_string());
            ending.reason = Some(format!("function exited with code {code}"));
        } else {
            match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(value) if limits::check_depth(&value).is_err() => ending.reason = Some(too_deep()),
                Ok(value) => {
                    ending.status = JobStatus::Succeeded;
                    ending.output = Some(value);
                }
                // serde_json's own limit (128 levels) is past ours: the same reason
                Err(e) if e.to_string().starts_with("recursion limit exceeded") => ending.reason = Some(too_deep()),
                Err(e) => ending.reason = Some(format!("function output is not valid json: {e}")),
            }
        }
        ending
    }
}

fn too_deep() -> String {
    format!("function output is {}", limits::LimitError::TooDeep)
}

/// A result whose message would be past [`limits::MAX_MESSAGE_BYTES`] (the broker
/// would refuse it, and the job would never end) becomes `output_too_large`,
/// without its output and with its stderr tail cut to what fits.
pub fn within_message_limit(mut result: JobResult) -> JobResult {
    let encoded = |r: &JobResult| serde_json::to_vec(r).map_or(usize::MAX, |v| v.len() + 32); // + the event tag
    let len = encoded(&result);
    if limits::check_message_len(len).is_ok() {
        return result;
    }
    tracing::warn!(job_id = %result.job_id, len, "result past the message limit");
    result.status = JobStatus::OutputTooLarge;
    result.reason = Some(format!("the result is {}", limits::LimitError::TooLarge(len)));
    result.output = None;
    while limits::check_message_len(encoded(&result)).is_err() && !result.stderr_tail.is_empty() {
        let keep = result.stderr_tail.len() / 2;
        let cut = (keep..=result.stderr_tail.len()).find(|&i| result.stderr_tail.is_char_boundary(i)).unwrap_or(0);
        result.stderr_tail.drain(..cut);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfaas_common::{JobId, Owner};

    #[test]
    fn a_result_past_the_message_limit_ends_output_too_large_and_fits() {
        let owner = Owner { subject: "u".into(), name: None };
        let mut result =
            JobResult::without_run(JobId::new(), owner, Utc::now(), JobStatus::Succeeded, "".into(), "e", 1);
        result.reason = None;
        result.output = Some(Value::String("x".repeat(limits::MAX_MESSAGE_BYTES)));
        result.stderr_tail = "y".repeat(limits::MAX_MESSAGE_BYTES);
        let bounded = within_message_limit(result.clone());
        assert_eq!(bounded.status, JobStatus::OutputTooLarge);
        assert!(bounded.output.is_none() && bounded.reason.as_deref().unwrap().contains("message"));
        assert!(serde_json::to_vec(&bounded).unwrap().len() < limits::MAX_MESSAGE_BYTES);
        result.output = Some(Value::from(1));
        result.stderr_tail.clear();
        assert_eq!(within_message_limit(result.clone()), result);
    }
}

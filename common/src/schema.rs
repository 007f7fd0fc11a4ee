//! The messages on gitfaas's Kafka topics, as versioned JSON.
//!
//! - jobs topic: [`Job`], keyed by job id, published by the frontend;
//! - results topic: [`JobEvent`] — `started` when an executor begins an attempt,
//!   `finished` with the one terminal [`JobResult`] of that attempt.
//!
//! Every message carries `version` ([`SCHEMA_VERSION`]). Fields added later are
//! optional with defaults, so older readers and writers keep working; a change that
//! cannot be made that way bumps the version and readers reject what they do not know.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kafka::{Message, Topic};
use crate::policy::RepoUrl;
use crate::JobId;

mod entry;
mod fields;
mod function;
mod origin;
mod result;
mod trigger;

pub use entry::{check_args, is_checkout_path, MAX_ARGS, MAX_ARG_CHARS, MAX_PATH_CHARS};
pub use fields::{CheckoutPath, GitRef, InvalidField, RuntimeName, MAX_RUNTIME_CHARS};
pub use function::{
    is_valid_function_name, FunctionRef, FunctionState, FunctionVersion, RollbackError, MAX_FUNCTION_NAME_CHARS,
    MAX_VERSIONS_KEPT,
};
pub use origin::{JobOrigin, MAX_PIPELINE_STEPS};
pub use result::{Attempt, DependencyBuild, JobResult, Timings, DEPENDENCY_INSTALL_FAILED, EXECUTOR_LOST};
pub use trigger::{
    MissedTicks, Schedule, TopicBinding, TriggerSource, TriggerState, MAX_CATCH_UP_TICKS, MAX_TOPIC_CONCURRENCY,
};

pub const SCHEMA_VERSION: u32 = 1;

/// The compacted topics' key of `subject`'s definition `name` (a function, a
/// trigger): unambiguous for any strings.
pub fn owned_key(subject: &str, name: &str) -> String {
    serde_json::to_string(&(subject, name)).expect("strings serialise")
}

/// Who submitted a job. Filled in by the frontend from the authenticated caller;
/// whatever a client sends in its place is ignored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Stable subject identifier (`sub` of the OIDC token).
    pub subject: String,
    /// Human-readable name (`preferred_username`), display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Resource limits of the job's sandbox, resolved by the frontend from the
/// request, the defaults and the operator's caps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub memory_mb: u32,
    /// CPU quota in thousandths of a core.
    pub cpu_millis: u32,
    pub pids: u32,
}

/// What to run: a commit of a git repository, and the data to call it with.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub repo: RepoUrl,
    /// Branch, tag, commit SHA, or `HEAD` for the default branch.
    #[serde(rename = "ref")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub git_ref: GitRef,
    /// Runtime requested by the client; the repository's manifest must agree with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub runtime: Option<RuntimeName>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub input: Value,
    pub timeout_secs: u32,
    pub resources: Resources,
    /// Credentials sealed to the executors' public key (base64 of an X25519 sealed
    /// box holding a JSON object). Only an executor can open it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_credentials: Option<String>,
    /// Data the executor downloads into the job's input directory before running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<DataLink>,
    /// Outputs the executor uploads after a successful run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<DataLink>,
    /// Extra attempts after a failure of the function itself (infrastructure
    /// failures are retried regardless, up to the executor's limit).
    #[serde(default)]
    pub retries: u32,
    /// What to run, overriding the manifest's `entry`: a path inside the checkout,
    /// for python `package.module:function`, for node `file.js:export`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub entry: Option<CheckoutPath>,
    /// Arguments of the `command` runtime's executable, passed exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Directory inside the checkout the function runs in; default its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub workdir: Option<CheckoutPath>,
    /// The processing guarantee: at most once, or at least once (the default, and
    /// what a message without the field gets).
    #[serde(default)]
    pub delivery: Delivery,
    /// The named function (and version) this job invokes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionRef>,
    /// Only resolve `ref` to a commit (the deployment of a named function): the
    /// result's `commit_sha`, and nothing runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resolve_only: bool,
    /// Whether the executor installs the dependencies the checkout declares.
    #[serde(default, skip_serializing_if = "Dependencies::is_install")]
    pub dependencies: Dependencies,
    /// What becomes of the checkout's submodules.
    #[serde(default, skip_serializing_if = "Submodules::is_empty")]
    pub submodules: Submodules,
    /// How the python or node runtime runs the entry, over the manifest's `mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// The trigger tick or record (or pipeline step) that made the job, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<JobOrigin>,
    /// Topics the function may publish to (`ctx.publish`), each claimed for the
    /// job's owner by the frontend as a topic trigger's are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
}

/// `install` (the default): dependencies the checkout declares (`requirements.txt`,
/// `pyproject.toml`, `package.json` with its lock file) are installed in a build
/// step before the run; `skip`: they are ignored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dependencies {
    #[default]
    Install,
    Skip,
}

impl Dependencies {
    pub fn is_install(&self) -> bool {
        *self == Dependencies::Install
    }
}

/// `empty` (the default): a submodule's path is an empty directory, as `git clone`
/// leaves it, and the result has a note saying so; `fetch`: each submodule is
/// fetched at the commit its gitlink pins, under the same URL policy, mirror cache
/// and checkout bounds as the repository.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Submodules {
    #[default]
    Empty,
    Fetch,
}

impl Submodules {
    pub fn is_empty(&self) -> bool {
        *self == Submodules::Empty
    }
}

/// How the python and node runtimes run an entry. `function` (the default): a
/// function is called with the input and returns the output. `script`: the entry
/// runs as its authors run it — `python3 ENTRY ARGS…`, `python3 -m MODULE ARGS…`,
/// `node ENTRY ARGS…` — the input as JSON on stdin, the exit code the status, and
/// stdout the output (JSON when it parses, else its text).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Function,
    Script,
}

/// How often a job's function may run. `at_most_once`: its start is made durable
/// before the function can have any effect, so it never runs twice; a run whose
/// executor is lost ends `failed`. `at_least_once`: a run whose executor is lost
/// runs again elsewhere; either way the job has one terminal result.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    AtMostOnce,
    #[default]
    AtLeastOnce,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtMostOnce => "at_most_once",
            Delivery::AtLeastOnce => "at_least_once",
        }
    }
}

/// A data source or sink: a file of the job's input or output directory and the
/// URL it comes from or goes to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataLink {
    /// File name inside the input (sources) or output (sinks) directory.
    pub name: String,
    pub url: String,
    /// HTTP method of an upload: `PUT` (default) or `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// The longest ref a job may name, in characters.
pub const MAX_REF_CHARS: usize = 255;

/// Whether `git_ref` may name a branch, tag or commit: the one rule both the
/// frontend (at submit) and the executor (before fetching) apply. Refuses what git
/// would read as an option (leading `-`), ranges, revision syntax and controls.
pub fn is_valid_ref(git_ref: &str) -> bool {
    !(git_ref.is_empty()
        || git_ref.chars().count() > MAX_REF_CHARS
        || git_ref.starts_with('-')
        || git_ref.contains("..")
        || git_ref.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c)))
}

/// A job as published on the jobs topic.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub version: u32,
    pub id: JobId,
    pub owner: Owner,
    pub submitted_at: DateTime<Utc>,
    /// 1 when first published; a retry republishes the job with the next number.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// A job picked up after this instant ends as `expired` without running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub spec: JobSpec,
}

fn first_attempt() -> u32 {
    1
}

impl Job {
    pub fn new(owner: Owner, spec: JobSpec) -> Self {
        Self {
            version: SCHEMA_VERSION,
            id: JobId::new(),
            owner,
            submitted_at: Utc::now(),
            attempt: 1,
            expires_at: None,
            spec,
        }
    }
}

/// Lifecycle of a job as users see it. Everything but `queued` and `running` is terminal.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    /// The function ran and failed (non-zero exit, exception, bad output), or the
    /// job could not be prepared (unknown repository or ref).
    Failed,
    TimedOut,
    OomKilled,
    OutputTooLarge,
    /// Refused by policy before running.
    Rejected,
    Expired,
    Cancelled,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::TimedOut => "timed_out",
            JobStatus::OomKilled => "oom_killed",
            JobStatus::OutputTooLarge => "output_too_large",
            JobStatus::Rejected => "rejected",
            JobStatus::Expired => "expired",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(s.to_owned())).map_err(|_| format!("unknown job status `{s}`"))
    }
}

/// Published when an executor starts an attempt of a job.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStarted {
    pub version: u32,
    pub job_id: JobId,
    pub owner: Owner,
    pub executor_id: String,
    pub attempt: u32,
    pub started_at: DateTime<Utc>,
}

impl JobStarted {
    /// `executor_id` starts attempt `attempt` of `job` at `started_at`.
    pub fn new(job: &Job, executor_id: &str, attempt: u32, started_at: DateTime<Utc>) -> Self {
        let (job_id, owner, executor_id) = (job.id, job.owner.clone(), executor_id.to_owned());
        Self { version: SCHEMA_VERSION, job_id, owner, executor_id, attempt, started_at }
    }
}

/// A message on the results topic.
// one per message, decoded and matched once: the variants' sizes do not matter
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobEvent {
    Started(JobStarted),
    Finished(JobResult),
}

impl JobEvent {
    pub fn job_id(&self) -> JobId {
        match self {
            JobEvent::Started(s) => s.job_id,
            JobEvent::Finished(r) => r.job_id,
        }
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not valid json for this schema: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported schema version {found} (this build reads {SCHEMA_VERSION})")]
    Version { found: u32 },
}

impl Message for Job {
    const TOPIC: Topic = Topic::Jobs;

    fn key(&self) -> String {
        self.id.to_string()
    }

    fn version(&self) -> u32 {
        self.version
    }
}

impl Message for JobEvent {
    const TOPIC: Topic = Topic::Results;

    /// The job: its events stay in order on one partition.
    fn key(&self) -> String {
        self.job_id().to_string()
    }

    fn version(&self) -> u32 {
        match self {
            JobEvent::Started(s) => s.version,
            JobEvent::Finished(r) => r.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> JobSpec {
        JobSpec {
            repo: "git://127.0.0.1/fn".parse().unwrap(),
            git_ref: "main".parse().unwrap(),
            runtime: None,
            input: json!({"x": 1}),
            timeout_secs: 30,
            resources: Resources { memory_mb: 128, cpu_millis: 500, pids: 64 },
            sealed_credentials: None,
            sources: Vec::new(),
            sinks: Vec::new(),
            retries: 0,
            entry: None,
            args: Vec::new(),
            workdir: None,
            function: None,
            resolve_only: false,
            delivery: Delivery::AtLeastOnce,
            dependencies: Dependencies::Install,
            submodules: Submodules::Empty,
            mode: None,
            origin: None,
            publish: Vec::new(),
        }
    }

    #[test]
    fn job_round_trips_with_version_and_ref_field_name() {
        let owner = Owner { subject: "u1".into(), name: None };
        let job = Job::new(owner, spec());
        let text = serde_json::to_value(&job).unwrap();
        assert_eq!(text["version"], 1);
        assert_eq!(text["spec"]["ref"], "main");
        assert_eq!(crate::kafka::decode::<Job>(&serde_json::to_vec(&job).unwrap()).unwrap(), job);
    }

    #[test]
    fn events_are_tagged_by_kind_and_unknown_versions_are_refused() {
        let started = JobEvent::Started(JobStarted {
            version: 2,
            job_id: JobId::new(),
            owner: Owner { subject: "u".into(), name: None },
            executor_id: "e".into(),
            attempt: 1,
            started_at: Utc::now(),
        });
        let bytes = serde_json::to_vec(&started).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap()["kind"], "started");
        assert!(matches!(crate::kafka::decode::<JobEvent>(&bytes), Err(DecodeError::Version { found: 2 })));
        assert!(matches!(crate::kafka::decode::<JobEvent>(b"{}"), Err(DecodeError::Json(_))));
    }

    #[test]
    fn a_job_without_a_delivery_mode_is_at_least_once_and_the_mode_round_trips() {
        let mut text = serde_json::to_value(Job::new(Owner { subject: "u".into(), name: None }, spec())).unwrap();
        text["spec"].as_object_mut().unwrap().remove("delivery");
        let job = crate::kafka::decode::<Job>(&serde_json::to_vec(&text).unwrap()).unwrap();
        assert_eq!(job.spec.delivery, Delivery::AtLeastOnce, "older messages decode");
        text["spec"]["delivery"] = "at_most_once".into();
        let job = crate::kafka::decode::<Job>(&serde_json::to_vec(&text).unwrap()).unwrap();
        assert_eq!(job.spec.delivery, Delivery::AtMostOnce);
        assert_eq!(serde_json::to_value(Delivery::AtMostOnce).unwrap(), Delivery::AtMostOnce.as_str());
    }

    #[test]
    fn status_text_matches_its_json_and_terminality() {
        for s in [JobStatus::Queued, JobStatus::OomKilled, JobStatus::TimedOut] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
        }
        assert!(!JobStatus::Running.is_terminal());
        assert!(JobStatus::Cancelled.is_terminal());
    }
}

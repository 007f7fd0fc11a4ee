//! The terminal result of a job, and the one place each kind of ending is made:
//! a constructor per terminal case, each with its reason written here once, so
//! that the executor and the frontend end jobs in the same words.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Delivery, FunctionRef, Job, JobStatus, Owner, SCHEMA_VERSION};
use crate::limits;
use crate::JobId;

/// The reason of a job ended by [`JobResult::executor_lost`].
pub const EXECUTOR_LOST: &str = "executor lost during an at-most-once run";
/// The reason of a job whose dependency build step failed, before what failed.
pub const DEPENDENCY_INSTALL_FAILED: &str = "dependency install failed";

/// Elapsed times in milliseconds: waiting in the queue, running, and both; and,
/// once a frontend stored the result, from its end to then (when it became visible
/// through the API).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub queue_ms: u64,
    pub run_ms: u64,
    pub total_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_ms: Option<u64>,
}

impl Timings {
    /// A job that never started spent all of its time in the queue.
    pub fn between(submitted: DateTime<Utc>, started: Option<DateTime<Utc>>, finished: DateTime<Utc>) -> Self {
        let ms = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds().max(0) as u64;
        let started = started.unwrap_or(finished);
        let (queue_ms, run_ms) = (ms(submitted, started), ms(started, finished));
        // the sum rather than a third rounding, so that the parts always add up
        Self { queue_ms, run_ms, total_ms: queue_ms + run_ms, visible_ms: None }
    }
}

/// How the run's dependency layer came to be: the declaration it was installed
/// from, and whether this run built it or reused a cached one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyBuild {
    /// The declaration file, relative to the checkout (`functions/a/requirements.txt`).
    pub file: String,
    /// Built by this run (else a cached layer was reused).
    pub built: bool,
    /// Time to have the layer: the build, a wait for another job's, or the lookup.
    pub build_ms: u64,
}

/// The terminal outcome of one attempt of a job.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub version: u32,
    pub job_id: JobId,
    pub owner: Owner,
    pub status: JobStatus,
    /// Why the job ended the way it did, for anything but success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The function's return value (python) or its JSON stdout (command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The last bytes the function wrote to stderr.
    #[serde(default)]
    pub stderr_tail: String,
    /// The commit that ran, once the ref was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    pub executor_id: String,
    pub attempt: u32,
    pub submitted_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub timings: Timings,
    /// The function ran in a warm sandbox (one that had served its function
    /// before), not in a container started for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
    /// The function's first run in a ready sandbox: one started before the job
    /// asked (no container start on its path), given the function's code then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ready: bool,
    /// The job's processing guarantee (results of older executors: at least once).
    #[serde(default)]
    pub delivery: Delivery,
    /// The named function (and version) the job invoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionRef>,
    /// The run's dependency layer, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<DependencyBuild>,
    /// What the run did differently from what the repository may expect, without
    /// failing (a submodule left empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// How many chunks the attempt's log was sent in, once it closed. `0`: the
    /// function wrote no log, and no closing chunk comes (a reader waits for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_chunks: Option<u64>,
}

/// What every result of one attempt shares: the job, its owner, which attempt,
/// who ends it, and when the attempt started (none: it never ran).
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub job_id: JobId,
    pub owner: Owner,
    pub submitted_at: DateTime<Utc>,
    pub executor_id: String,
    pub number: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub delivery: Delivery,
    pub function: Option<FunctionRef>,
}

impl Attempt {
    /// Attempt `number` of `job` by `executor_id`, not started.
    pub fn of(job: &Job, executor_id: &str, number: u32) -> Self {
        Self {
            job_id: job.id,
            owner: job.owner.clone(),
            submitted_at: job.submitted_at,
            executor_id: executor_id.to_owned(),
            number,
            started_at: None,
            delivery: job.spec.delivery,
            function: job.spec.function.clone(),
        }
    }

    /// The same attempt, started at `at`.
    pub fn started(self, at: DateTime<Utc>) -> Self {
        Self { started_at: Some(at), ..self }
    }
}

impl JobResult {
    /// The result of `attempt` ending now with `status`; the constructors below
    /// name each terminal case.
    fn ended(attempt: &Attempt, status: JobStatus, reason: Option<String>) -> Self {
        let now = Utc::now();
        Self {
            version: SCHEMA_VERSION,
            job_id: attempt.job_id,
            owner: attempt.owner.clone(),
            status,
            reason,
            exit_code: None,
            output: None,
            stderr_tail: String::new(),
            commit_sha: None,
            executor_id: attempt.executor_id.clone(),
            attempt: attempt.number,
            submitted_at: attempt.submitted_at,
            started_at: attempt.started_at,
            finished_at: now,
            timings: Timings::between(attempt.submitted_at, attempt.started_at, now),
            warm: false,
            ready: false,
            delivery: attempt.delivery,
            function: attempt.function.clone(),
            dependencies: None,
            notes: Vec::new(),
            log_chunks: None,
        }
    }

    pub fn succeeded(attempt: &Attempt, output: Value) -> Self {
        Self { output: Some(output), ..Self::ended(attempt, JobStatus::Succeeded, None) }
    }

    /// The function failed, or the job could not be prepared, for `reason`.
    pub fn failed(attempt: &Attempt, reason: impl Into<String>) -> Self {
        Self::ended(attempt, JobStatus::Failed, Some(reason.into()))
    }

    /// The dependency build step failed (`why`, e.g. its exit or its time limit);
    /// the tail of the build's log stands in the result's `stderr_tail`.
    pub fn dependency_install_failed(attempt: &Attempt, why: &str, log_tail: String) -> Self {
        let reason = format!("{DEPENDENCY_INSTALL_FAILED}: {why}");
        Self { stderr_tail: log_tail, ..Self::failed(attempt, reason) }
    }

    /// The function exited with a code other than 0 (none: unknown).
    pub fn exited_with(attempt: &Attempt, code: Option<i64>) -> Self {
        let code_text = code.map_or("unknown".into(), |c| c.to_string());
        Self { exit_code: code, ..Self::failed(attempt, format!("function exited with code {code_text}")) }
    }

    /// The function's output is not json, or nests too deep (`why`).
    pub fn bad_output(attempt: &Attempt, why: impl std::fmt::Display) -> Self {
        Self::failed(attempt, format!("function output is {why}"))
    }

    /// Refused by policy before running, for `reason`.
    pub fn rejected(attempt: &Attempt, reason: impl Into<String>) -> Self {
        Self::ended(attempt, JobStatus::Rejected, Some(reason.into()))
    }

    /// A job message that is not a job of this schema (`error` says why).
    pub fn malformed(attempt: &Attempt, error: &str) -> Self {
        Self::rejected(attempt, format!("malformed job: {error}"))
    }

    pub fn timed_out(attempt: &Attempt, timeout_secs: u32) -> Self {
        Self::ended(attempt, JobStatus::TimedOut, Some(format!("killed after the {timeout_secs}s timeout")))
    }

    pub fn oom_killed(attempt: &Attempt) -> Self {
        Self::ended(attempt, JobStatus::OomKilled, Some("killed: out of memory".into()))
    }

    /// The function wrote more than `limit_bytes` to stdout and was stopped.
    pub fn stdout_too_large(attempt: &Attempt, limit_bytes: usize) -> Self {
        let reason = format!("output exceeded the {limit_bytes} byte limit; the function was stopped");
        Self::ended(attempt, JobStatus::OutputTooLarge, Some(reason))
    }

    /// The function's output could not be stored where the job said (`reason`).
    pub fn output_too_large(attempt: &Attempt, reason: impl Into<String>) -> Self {
        Self::ended(attempt, JobStatus::OutputTooLarge, Some(reason.into()))
    }

    /// Picked up at `now`, past the job's `deadline`.
    pub fn expired(attempt: &Attempt, deadline: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let late = (now - deadline).num_seconds();
        let reason = format!("expired {late}s before it could start (deadline {deadline})");
        Self::ended(attempt, JobStatus::Expired, Some(reason))
    }

    /// A pipeline's step that could not be queued (`why`): it never runs, and
    /// the run ends with it.
    pub fn not_queued(attempt: &Attempt, why: &str) -> Self {
        Self::failed(attempt, format!("the step could not be queued: {why}"))
    }

    /// Cancelled by its owner before any executor started it.
    pub fn cancelled_before_start(attempt: &Attempt) -> Self {
        Self::ended(attempt, JobStatus::Cancelled, Some("cancelled by its owner before it started".into()))
    }

    /// Stopped by a cancel between its checkout and its run.
    pub fn cancelled_before_run(attempt: &Attempt) -> Self {
        Self::ended(attempt, JobStatus::Cancelled, Some("cancelled before it ran".into()))
    }

    /// Killed by a cancel while its function ran.
    pub fn cancelled_while_running(attempt: &Attempt) -> Self {
        Self::ended(attempt, JobStatus::Cancelled, Some("cancelled while running".into()))
    }

    /// An at-most-once run whose executor died or lost the job's partition: it is
    /// never run again.
    pub fn executor_lost(attempt: &Attempt) -> Self {
        Self::failed(attempt, EXECUTOR_LOST)
    }

    /// Its result message could not be read (`error`): the job ends failed.
    pub fn unreadable(attempt: &Attempt, error: &str) -> Self {
        Self::failed(attempt, format!("its result message could not be read: {error}"))
    }

    /// Ended by the operator `by` while the job was `was`.
    pub fn ended_by_operator(attempt: &Attempt, by: &str, was: JobStatus) -> Self {
        Self::failed(attempt, format!("ended by an operator ({by}) while {was}"))
    }

    /// This result, with the exit code and the stderr tail of its process.
    pub fn with_process(self, exit_code: Option<i64>, stderr_tail: String) -> Self {
        Self { exit_code, stderr_tail, ..self }
    }

    /// This result, finished at `at` (the timings follow).
    pub fn finished(self, at: DateTime<Utc>) -> Self {
        Self { finished_at: at, timings: Timings::between(self.submitted_at, self.started_at, at), ..self }
    }

    /// A run its owner cancelled at `requested_at`: `cancelled`, with that reason.
    pub fn cancelled_by_owner(self, requested_at: DateTime<Utc>) -> Self {
        let reason = Some(format!("cancelled by its owner at {requested_at}"));
        Self { status: JobStatus::Cancelled, reason, ..self }
    }

    /// The last of `attempts` that failed in the executor (not in the function):
    /// the job is given up, with the last failure as the cause.
    pub fn given_up(self, attempts: u32) -> Self {
        let cause = self.reason.as_deref().unwrap_or("unknown");
        let reason = Some(format!("gave up after {attempts} attempts failing in the executor: {cause}"));
        Self { reason, ..self }
    }

    /// A result whose message would be past [`limits::MAX_MESSAGE_BYTES`] (the
    /// broker would refuse it, and the job would never end) becomes
    /// `output_too_large`, without its output and with its stderr tail cut to what fits.
    pub fn within_message_limit(mut self) -> Self {
        let encoded = |r: &JobResult| serde_json::to_vec(r).map_or(usize::MAX, |v| v.len() + 32); // + the event tag
        let len = encoded(&self);
        if limits::check_message_len(len).is_ok() {
            return self;
        }
        tracing::warn!(job_id = %self.job_id, len, "result past the message limit");
        self.status = JobStatus::OutputTooLarge;
        self.reason = Some(format!("the result is {}", limits::LimitError::TooLarge(len)));
        self.output = None;
        while limits::check_message_len(encoded(&self)).is_err() && !self.stderr_tail.is_empty() {
            let keep = self.stderr_tail.len() / 2;
            let cut = (keep..=self.stderr_tail.len()).find(|&i| self.stderr_tail.is_char_boundary(i)).unwrap_or(0);
            self.stderr_tail.drain(..cut);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> Attempt {
        let owner = Owner { subject: "u".into(), name: None };
        Attempt {
            job_id: JobId::new(),
            owner,
            submitted_at: Utc::now(),
            executor_id: "e".into(),
            number: 2,
            started_at: None,
            delivery: Delivery::AtMostOnce,
            function: None,
        }
    }

    #[test]
    fn timings_of_a_job_that_never_started_are_all_queue() {
        let submitted = Utc::now();
        let finished = submitted + chrono::Duration::milliseconds(1500);
        let t = Timings::between(submitted, None, finished);
        assert_eq!((t.queue_ms, t.run_ms, t.total_ms), (1500, 0, 1500));
        let started = submitted + chrono::Duration::milliseconds(500);
        let t = Timings::between(submitted, Some(started), finished);
        assert_eq!((t.queue_ms, t.run_ms, t.total_ms), (500, 1000, 1500));
    }

    #[test]
    fn results_without_a_run_carry_the_attempt_and_spend_all_their_time_queued() {
        let at = attempt();
        let result = JobResult::cancelled_before_start(&at);
        assert_eq!((result.status, result.attempt, result.executor_id.as_str()), (JobStatus::Cancelled, 2, "e"));
        assert_eq!(result.reason.as_deref(), Some("cancelled by its owner before it started"));
        assert!(result.started_at.is_none() && result.timings.run_ms == 0);
        let ran = JobResult::succeeded(&at.clone().started(at.submitted_at), Value::from(1));
        assert_eq!((ran.status, ran.reason.as_deref(), ran.output), (JobStatus::Succeeded, None, Some(Value::from(1))));
        assert_eq!(ran.started_at, Some(at.submitted_at));
    }

    #[test]
    fn each_terminal_case_has_its_status_and_reason() {
        let at = attempt();
        let cases = [
            (JobResult::malformed(&at, "bad"), JobStatus::Rejected, "malformed job: bad"),
            (JobResult::timed_out(&at, 3), JobStatus::TimedOut, "killed after the 3s timeout"),
            (JobResult::oom_killed(&at), JobStatus::OomKilled, "killed: out of memory"),
            (JobResult::exited_with(&at, Some(2)), JobStatus::Failed, "function exited with code 2"),
            (JobResult::exited_with(&at, None), JobStatus::Failed, "function exited with code unknown"),
            (JobResult::executor_lost(&at), JobStatus::Failed, "executor lost during an at-most-once run"),
            (JobResult::unreadable(&at, "x"), JobStatus::Failed, "its result message could not be read: x"),
            (JobResult::not_queued(&at, "gone"), JobStatus::Failed, "the step could not be queued: gone"),
            (
                JobResult::ended_by_operator(&at, "ops", JobStatus::Running),
                JobStatus::Failed,
                "ended by an operator (ops) while running",
            ),
            (
                JobResult::failed(&at, "boom").given_up(3),
                JobStatus::Failed,
                "gave up after 3 attempts failing in the executor: boom",
            ),
        ];
        for (result, status, reason) in cases {
            assert_eq!((result.status, result.reason.as_deref()), (status, Some(reason)));
        }
        assert_eq!(JobResult::exited_with(&at, Some(2)).exit_code, Some(2));
        assert_eq!(JobResult::executor_lost(&at).delivery, Delivery::AtMostOnce, "the mode comes from the attempt");
        let late = JobResult::expired(&at, at.submitted_at, at.submitted_at + chrono::Duration::seconds(7));
        assert_eq!(late.status, JobStatus::Expired);
        assert!(late.reason.unwrap().starts_with("expired 7s before it could start"));
        let requested_at = Utc::now();
        let cancelled = JobResult::succeeded(&at, Value::Null).cancelled_by_owner(requested_at);
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        assert_eq!(cancelled.reason, Some(format!("cancelled by its owner at {requested_at}")));
    }

    #[test]
    fn a_result_past_the_message_limit_ends_output_too_large_and_fits() {
        let mut result = JobResult::succeeded(&attempt(), Value::String("x".repeat(limits::MAX_MESSAGE_BYTES)));
        result.stderr_tail = "y".repeat(limits::MAX_MESSAGE_BYTES);
        let bounded = result.clone().within_message_limit();
        assert_eq!(bounded.status, JobStatus::OutputTooLarge);
        assert!(bounded.output.is_none() && bounded.reason.as_deref().unwrap().contains("message"));
        assert!(serde_json::to_vec(&bounded).unwrap().len() < limits::MAX_MESSAGE_BYTES);
        result.output = Some(Value::from(1));
        result.stderr_tail.clear();
        assert_eq!(result.clone().within_message_limit(), result);
    }
}

//! A pipeline run as its owner sees it, told from its steps' jobs alone: no state
//! of its own to lose or to keep in step with them. The first step that has not
//! succeeded says how the run stands; a run whose steps all succeeded has the last
//! one's output as its own.

use chrono::{DateTime, Utc};
use gitfaas_common::{JobId, JobStatus};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::JobRecord;

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Its first step waits for an executor.
    Queued,
    /// A step is queued or running, or the next one is being queued.
    Running,
    Succeeded,
    /// A step ended other than `succeeded` or `cancelled`; later steps never start.
    Failed,
    /// A step was cancelled; later steps never start.
    Cancelled,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// One step of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// The step's position, from 1 (as reasons name it).
    pub index: u32,
    pub function: String,
    /// The function's version the step runs (the one current when the run started), once it has a job.
    pub version: Option<u32>,
    /// The step's job, once there is one.
    pub job_id: Option<JobId>,
    /// The job's status, or `pending` for a step not queued (yet, or ever).
    pub status: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// From submission to the end (or to now, while it runs).
    pub elapsed_ms: Option<u64>,
    /// Why the step ended other than `succeeded`.
    pub reason: Option<String>,
}

/// Links of a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub cancel: String,
}

/// A pipeline run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub status: RunStatus,
    pub steps: Vec<StepView>,
    /// The last step's output, once the run succeeded.
    #[schema(value_type = Option<Value>)]
    pub output: Option<Value>,
    /// Why the run failed or was cancelled: `step 2 (fn-b) failed: …`.
    pub reason: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub links: RunLinks,
}

impl RunView {
    /// The run `id` of the functions `steps`, whose steps' jobs are `records`
    /// (none: the step has no job), as it stands at `now`.
    pub fn of(id: &str, steps: &[String], records: &[Option<JobRecord>], now: DateTime<Utc>) -> Self {
        let views: Vec<StepView> = steps
            .iter()
            .enumerate()
            .map(|(i, name)| step_view(i, name, records.get(i).and_then(Option::as_ref), now))
            .collect();
        let mut status = RunStatus::Succeeded;
        let mut reason = None;
        for (i, step) in views.iter().enumerate() {
            let ended = match records.get(i).and_then(Option::as_ref).map(|r| r.status) {
                Some(JobStatus::Succeeded) => continue,
                Some(JobStatus::Queued) if i == 0 => RunStatus::Queued,
                None | Some(JobStatus::Queued | JobStatus::Running) => RunStatus::Running,
                Some(JobStatus::Cancelled) => RunStatus::Cancelled,
                Some(_) => RunStatus::Failed,
            };
            if ended.is_terminal() {
                let why = step.reason.as_deref().unwrap_or("no reason given");
                reason = Some(format!("step {} ({}) {}: {why}", step.index, step.function, step.status));
            }
            status = ended;
            break;
        }
        let last = records.last().and_then(Option::as_ref);
        let output =
            (status == RunStatus::Succeeded).then(|| last.and_then(|r| r.result.as_ref()?.output.clone())).flatten();
        let finished_at = status.is_terminal().then(|| views.iter().filter_map(|s| s.finished_at).max()).flatten();
        let self_ = format!("/v1/pipelines/{id}");
        Self {
            id: id.to_owned(),
            status,
            submitted_at: views.first().and_then(|s| s.submitted_at),
            steps: views,
            output,
            reason,
            finished_at,
            links: RunLinks { cancel: format!("{self_}/cancel"), self_ },
        }
    }

    /// The first step not succeeded (from 0), or none when all have.
    pub fn current_step(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.status != JobStatus::Succeeded.as_str())
    }
}

fn step_view(i: usize, name: &str, record: Option<&JobRecord>, now: DateTime<Utc>) -> StepView {
    let job = record.and_then(|r| r.job.as_ref());
    let result = record.and_then(|r| r.result.as_ref());
    let submitted_at = job.map(|j| j.submitted_at).or(result.map(|r| r.submitted_at));
    let finished_at = result.map(|r| r.finished_at);
    let elapsed_ms = match (result, submitted_at) {
        (Some(result), _) => Some(result.timings.total_ms),
        (None, Some(at)) => Some((now - at).num_milliseconds().max(0) as u64),
        (None, None) => None,
    };
    let function = job.and_then(|j| j.spec.function.as_ref()).or(result.and_then(|r| r.function.as_ref()));
    StepView {
        index: i as u32 + 1,
        function: name.to_owned(),
        version: function.map(|f| f.version),
        job_id: record.map(|r| r.id),
        status: record.map_or("pending", |r| r.status.as_str()).to_owned(),
        submitted_at,
        finished_at,
        elapsed_ms,
        reason: result
            .and_then(|r| r.reason.clone())
            .filter(|_| record.is_some_and(|r| r.status != JobStatus::Succeeded)),
    }
}

#[cfg(test)]
mod tests {
    use gitfaas_common::schema::{Attempt, FunctionRef};
    use gitfaas_common::{JobResult, Owner};

    use super::*;

    fn ended(status: JobStatus, output: Value, reason: &str) -> Option<JobRecord> {
        let attempt = Attempt {
            job_id: JobId::new(),
            owner: Owner { subject: "alice".into(), name: None },
            submitted_at: Utc::now(),
            executor_id: "e".into(),
            number: 1,
            started_at: None,
            delivery: Default::default(),
            function: Some(FunctionRef { name: "f".into(), version: 3 }),
        };
        let mut result = JobResult::failed(&attempt, reason);
        result.status = status;
        result.output = Some(output);
        Some(JobRecord {
            id: attempt.job_id,
            owner: "alice".into(),
            status,
            job: None,
            started_at: None,
            executor_id: None,
            attempt: Some(1),
            result: Some(result),
            cancel_requested_at: None,
        })
    }

    fn waiting(status: JobStatus) -> Option<JobRecord> {
        let mut record = ended(status, Value::Null, "")?;
        record.result = None;
        Some(record)
    }

    fn steps() -> Vec<String> {
        vec!["fn-a".into(), "fn-b".into(), "fn-c".into()]
    }

    #[test]
    fn a_run_stands_where_its_first_unfinished_step_does() {
        let now = Utc::now();
        let ok = |n| ended(JobStatus::Succeeded, Value::from(n), "");
        let queued = RunView::of("r", &steps(), &[waiting(JobStatus::Queued), None, None], now);
        assert_eq!(queued.status, RunStatus::Queued);
        assert_eq!(queued.steps[1].status, "pending");
        let between = RunView::of("r", &steps(), &[ok(1), None, None], now);
        assert_eq!((between.status, between.current_step()), (RunStatus::Running, Some(1)));
        let second = RunView::of("r", &steps(), &[ok(1), waiting(JobStatus::Queued), None], now);
        assert_eq!(second.status, RunStatus::Running, "a later step queued is a running run");
        let done = RunView::of("r", &steps(), &[ok(1), ok(2), ok(3)], now);
        assert_eq!((done.status, &done.output, &done.reason), (RunStatus::Succeeded, &Some(Value::from(3)), &None));
        assert_eq!(done.current_step(), None);
        assert_eq!(done.steps[2].version, Some(3));
        assert!(done.finished_at.is_some() && between.finished_at.is_none());
    }

    #[test]
    fn a_failed_or_cancelled_step_ends_the_run_with_its_reason() {
        let now = Utc::now();
        let ok = ended(JobStatus::Succeeded, Value::from(1), "");
        let failed = ended(JobStatus::Failed, Value::Null, "boom");
        let run = RunView::of("r", &steps(), &[ok.clone(), failed, None], now);
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.reason.as_deref(), Some("step 2 (fn-b) failed: boom"));
        assert_eq!((run.output, run.steps[1].reason.as_deref()), (None, Some("boom")));
        let timed_out = ended(JobStatus::TimedOut, Value::Null, "killed after the 1s timeout");
        let run = RunView::of("r", &steps(), &[timed_out, None, None], now);
        assert_eq!(run.reason.as_deref(), Some("step 1 (fn-a) timed_out: killed after the 1s timeout"));
        let cancelled = ended(JobStatus::Cancelled, Value::Null, "cancelled while running");
        let run = RunView::of("r", &steps(), &[ok, cancelled.clone(), cancelled], now);
        assert_eq!(run.status, RunStatus::Cancelled);
        assert_eq!(run.reason.as_deref(), Some("step 2 (fn-b) cancelled: cancelled while running"));
    }
}

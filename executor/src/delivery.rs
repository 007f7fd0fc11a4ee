//! Delivery rules of one job message, the worker loop's decisions as pure
//! functions: what a malformed message comes to, a job cancelled before it
//! started, one past its deadline, a run stopped from outside; retries of
//! infrastructure failures with exponential backoff (then dead letter), and retries
//! of the function's own failures when the job asked for them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::control::CancelRequest;
use gitfaas_common::schema::{Attempt, Delivery};
use gitfaas_common::{Job, JobResult, JobStatus, Owner};

use crate::cancel::Stop;
use crate::job::RunOutcome;
use crate::settings::DeliverySettings;

/// What becomes of a job message.
#[derive(Debug, PartialEq)]
pub enum End {
    /// No result from here, and the offset stays uncommitted: whoever owns the
    /// partition next runs the job.
    Leave,
    /// Done: its result is out already.
    Done,
    /// Done once this result is acknowledged.
    Publish(Box<JobResult>),
}

/// The `rejected` result of the job a message that is not a job of this schema
/// names (by its readable fields, else by its key), if it names one; an owner
/// left unknown is the one the frontend has on record.
pub fn malformed(key: Option<&[u8]>, payload: &[u8], error: &str, executor_id: &str) -> Option<JobResult> {
    let found = gitfaas_common::unreadable::salvage(key, payload)?;
    let attempt = Attempt {
        job_id: found.job_id,
        owner: found.owner.unwrap_or(Owner { subject: String::new(), name: None }),
        submitted_at: found.submitted_at.unwrap_or_else(Utc::now),
        executor_id: executor_id.to_owned(),
        number: found.attempt.unwrap_or(1),
        started_at: None,
        delivery: Default::default(),
        function: None,
    };
    Some(JobResult::malformed(&attempt, error))
}

/// A job cancelled before this executor started it: its `cancelled` result,
/// unless the frontend published that already.
pub fn cancelled_before_start(job: &Job, request: &CancelRequest, executor_id: &str) -> End {
    if request.result_published {
        return End::Done;
    }
    End::Publish(Box::new(JobResult::cancelled_before_start(&Attempt::of(job, executor_id, job.attempt))))
}

/// The job's `expired` result, when it is picked up after its deadline.
pub fn expired(job: &Job, executor_id: &str, now: DateTime<Utc>) -> Option<JobResult> {
    let deadline = job.expires_at?;
    (now > deadline).then(|| JobResult::expired(&Attempt::of(job, executor_id, job.attempt), deadline, now))
}

/// A run stopped from outside, with what it produced if it got that far.
/// Abandoned (partition revoked): no result, the new owner runs it — unless its
/// at-most-once start was `durable` (committed): then it is never run again and
/// ends `failed`, executor lost. Cancelled:
/// the `cancelled` result — or what the run produced, when it finished before the
/// kill — unless the frontend published one already.
pub fn stopped(job: &Job, stop: Stop, outcome: Option<RunOutcome>, executor_id: &str, durable: bool) -> End {
    let request = match stop {
        Stop::Abandoned if durable => {
            let number = outcome.as_ref().map_or(job.attempt, |o| o.result.attempt);
            let attempt = Attempt::of(job, executor_id, number);
            let attempt = match outcome.and_then(|o| o.result.started_at) {
                Some(at) => attempt.started(at),
                None => attempt,
            };
            return End::Publish(Box::new(JobResult::executor_lost(&attempt)));
        }
        Stop::Abandoned => return End::Leave,
        Stop::Cancelled(request) => request,
    };
    match outcome {
        _ if request.result_published => End::Done,
        Some(o) if o.result.status != JobStatus::Cancelled && !o.infrastructure_failure => {
            End::Publish(Box::new(o.result))
        }
        Some(o) => End::Publish(Box::new(o.result.cancelled_by_owner(request.requested_at))),
        None => cancelled_before_start(job, &request, executor_id),
    }
}

/// The result of a job given up after repeated infrastructure failures, the last
/// of them `last`: its reason also goes with the job to the dead-letter topic.
pub fn given_up(job: &Job, last: JobResult) -> JobResult {
    let attempts = last.attempt - job.attempt + 1;
    last.given_up(attempts)
}

/// `next` for an at-most-once job: no retry once the function may have run — a
/// failure of the function itself, or of the executor after the sandbox was placed
/// (the result names the commit that was checked out) — only infrastructure
/// failures before that are retried.
pub fn at_most_once(next: Next, job: &Job, result: &JobResult, infrastructure: bool) -> Next {
    let may_have_run = !infrastructure || result.commit_sha.is_some();
    match next {
        Next::RetryAfter(_) if job.spec.delivery == Delivery::AtMostOnce && may_have_run => Next::Publish,
        next => next,
    }
}

/// What to do after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Publish,
    RetryAfter(Duration),
    GiveUp,
}

/// Decides after attempt number `tries` (1-based, of this delivery) ended with
/// `status`, given whether the failure was the executor's own.
pub fn after_attempt(
    settings: &DeliverySettings,
    job_retries: u32,
    tries: u32,
    infrastructure_failures: u32,
    status: JobStatus,
    infrastructure: bool,
) -> Next {
    let backoff = || {
        let factor = 2u64.saturating_pow(tries.saturating_sub(1));
        Duration::from_millis(settings.retry_backoff_ms.saturating_mul(factor)).min(Duration::from_secs(30))
    };
    if infrastructure {
        return if infrastructure_failures <= settings.infrastructure_retries {
            Next::RetryAfter(backoff())
        } else {
            Next::GiveUp
        };
    }
    let user_failure = matches!(status, JobStatus::Failed | JobStatus::TimedOut | JobStatus::OomKilled);
    let user_tries = tries - infrastructure_failures;
    if user_failure && user_tries <= job_retries {
        return Next::RetryAfter(backoff());
    }
    Next::Publish
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: DeliverySettings = DeliverySettings { infrastructure_retries: 2, retry_backoff_ms: 100 };

    #[test]
    fn infrastructure_failures_back_off_exponentially_then_give_up() {
        assert_eq!(after_attempt(&S, 0, 1, 1, JobStatus::Failed, true), Next::RetryAfter(Duration::from_millis(100)));
        assert_eq!(after_attempt(&S, 0, 2, 2, JobStatus::Failed, true), Next::RetryAfter(Duration::from_millis(200)));
        assert_eq!(after_attempt(&S, 0, 3, 3, JobStatus::Failed, true), Next::GiveUp);
    }

    #[test]
    fn function_failures_are_retried_only_when_the_job_asks() {
        assert_eq!(after_attempt(&S, 0, 1, 0, JobStatus::Failed, false), Next::Publish);
        assert_eq!(
            after_attempt(&S, 1, 1, 0, JobStatus::TimedOut, false),
            Next::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(after_attempt(&S, 1, 2, 0, JobStatus::Failed, false), Next::Publish);
        assert_eq!(after_attempt(&S, 5, 1, 0, JobStatus::Succeeded, false), Next::Publish);
        assert_eq!(after_attempt(&S, 5, 1, 0, JobStatus::Rejected, false), Next::Publish, "policy is final");
    }

    fn job() -> Job {
        let spec: gitfaas_common::JobSpec = serde_json::from_value(serde_json::json!({
            "repo": "git://h/r", "ref": "main", "timeout_secs": 1,
            "resources": {"memory_mb": 64, "cpu_millis": 100, "pids": 16}}))
        .unwrap();
        Job::new(Owner { subject: "u".into(), name: None }, spec)
    }

    fn cancel(job: &Job, result_published: bool) -> CancelRequest {
        let version = gitfaas_common::schema::SCHEMA_VERSION;
        CancelRequest { version, job_id: job.id, owner: "u".into(), requested_at: Utc::now(), result_published }
    }

    fn ran(result: JobResult, infrastructure_failure: bool) -> Option<RunOutcome> {
        Some(RunOutcome { result, effects: None, infrastructure_failure, handover: None })
    }

    #[test]
    fn a_malformed_message_rejects_the_job_it_names_and_a_nameless_one_ends_nothing() {
        let id = gitfaas_common::JobId::new();
        let result = malformed(Some(id.to_string().as_bytes()), b"\xff", "not json", "e").unwrap();
        assert_eq!((result.job_id, result.status, result.attempt), (id, JobStatus::Rejected, 1));
        assert_eq!((result.reason.as_deref(), result.owner.subject.as_str()), (Some("malformed job: not json"), ""));
        let mut readable = serde_json::to_value(job()).unwrap();
        readable["version"] = 7.into();
        readable["attempt"] = 3.into();
        let payload = serde_json::to_vec(&readable).unwrap();
        let result = malformed(None, &payload, "unsupported version", "e").unwrap();
        assert_eq!((result.owner.subject.as_str(), result.attempt), ("u", 3), "its own fields win");
        assert_eq!(malformed(None, b"garbage", "not json", "e"), None);
    }

    #[test]
    fn a_job_cancelled_before_it_started_ends_cancelled_once() {
        let job = job();
        let End::Publish(result) = cancelled_before_start(&job, &cancel(&job, false), "e") else {
            panic!("the executor publishes the result the frontend did not")
        };
        assert_eq!((result.status, result.attempt, result.started_at), (JobStatus::Cancelled, job.attempt, None));
        assert_eq!(cancelled_before_start(&job, &cancel(&job, true), "e"), End::Done, "the frontend's result stands");
    }

    #[test]
    fn a_stopped_run_is_left_to_the_new_owner_or_ends_cancelled_unless_it_finished_first() {
        let job = job();
        let attempt = Attempt::of(&job, "e", 1).started(Utc::now());
        let finished = JobResult::succeeded(&attempt, 1.into());
        assert_eq!(stopped(&job, Stop::Abandoned, ran(finished.clone(), false), "e", false), End::Leave);
        let request = cancel(&job, false);
        let keep = stopped(&job, Stop::Cancelled(request.clone()), ran(finished.clone(), false), "e", false);
        assert_eq!(keep, End::Publish(Box::new(finished)), "a run that finished before the kill keeps its result");
        let killed = JobResult::cancelled_while_running(&attempt);
        let End::Publish(result) = stopped(&job, Stop::Cancelled(request.clone()), ran(killed, false), "e", false)
        else {
            panic!("a killed run ends cancelled")
        };
        assert_eq!(result.status, JobStatus::Cancelled);
        assert_eq!(result.reason, Some(format!("cancelled by its owner at {}", request.requested_at)));
        let broken = JobResult::failed(&attempt, "docker went away");
        let End::Publish(result) = stopped(&job, Stop::Cancelled(request.clone()), ran(broken, true), "e", false)
        else {
            panic!("an infrastructure failure of a cancelled run ends cancelled")
        };
        assert_eq!(result.status, JobStatus::Cancelled);
        let End::Publish(result) = stopped(&job, Stop::Cancelled(request), None, "e", false) else {
            panic!("cancelled between attempts")
        };
        assert_eq!(result.reason.as_deref(), Some("cancelled by its owner before it started"));
        assert_eq!(stopped(&job, Stop::Cancelled(cancel(&job, true)), None, "e", false), End::Done);
    }

    #[test]
    fn an_at_most_once_job_abandoned_after_its_durable_start_ends_executor_lost_and_is_not_rerun() {
        let mut job = job();
        job.spec.delivery = Delivery::AtMostOnce;
        let started = Utc::now();
        let finished = JobResult::succeeded(&Attempt::of(&job, "e", 1).started(started), 1.into());
        assert_eq!(stopped(&job, Stop::Abandoned, None, "e", false), End::Leave, "not started: the new owner runs it");
        let End::Publish(result) = stopped(&job, Stop::Abandoned, ran(finished, false), "e", true) else {
            panic!("a durable start is never left to the new owner")
        };
        assert_eq!(
            (result.status, result.reason.as_deref()),
            (JobStatus::Failed, Some(gitfaas_common::schema::EXECUTOR_LOST))
        );
        assert_eq!((result.started_at, result.delivery), (Some(started), Delivery::AtMostOnce));
    }

    #[test]
    fn an_at_most_once_job_retries_only_infrastructure_failures_before_the_sandbox_was_placed() {
        let mut job = job();
        job.spec.delivery = Delivery::AtMostOnce;
        let retry = || Next::RetryAfter(Duration::from_millis(100));
        let clone_failed = JobResult::failed(&Attempt::of(&job, "e", 1), "clone failed");
        assert_eq!(at_most_once(retry(), &job, &clone_failed, true), retry(), "before placement: retried");
        let placed = JobResult { commit_sha: Some("abc".into()), ..clone_failed.clone() };
        assert_eq!(at_most_once(retry(), &job, &placed, true), Next::Publish, "after placement: never");
        assert_eq!(at_most_once(retry(), &job, &clone_failed, false), Next::Publish, "the function's failure: never");
        assert_eq!(at_most_once(Next::GiveUp, &job, &clone_failed, true), Next::GiveUp);
        job.spec.delivery = Delivery::AtLeastOnce;
        assert_eq!(at_most_once(retry(), &job, &placed, true), retry(), "at least once: unchanged");
    }

    #[test]
    fn a_job_given_up_names_its_attempts_and_last_failure() {
        let job = job();
        let last = JobResult::failed(&Attempt::of(&job, "e", job.attempt + 2), "disk full");
        let result = given_up(&job, last);
        assert_eq!(result.status, JobStatus::Failed);
        assert_eq!(result.reason.as_deref(), Some("gave up after 3 attempts failing in the executor: disk full"));
    }

    #[test]
    fn jobs_past_their_deadline_expire_without_running() {
        let mut job = job();
        let now = Utc::now();
        assert!(expired(&job, "e", now).is_none(), "no deadline, never expires");
        job.expires_at = Some(now + chrono::Duration::seconds(5));
        assert!(expired(&job, "e", now).is_none());
        job.expires_at = Some(now - chrono::Duration::seconds(5));
        let result = expired(&job, "e", now).unwrap();
        assert_eq!(result.status, JobStatus::Expired);
        assert!(result.started_at.is_none());
    }
}

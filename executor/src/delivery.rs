//! Delivery rules of one job message: expiry before running, retries of
//! infrastructure failures with exponential backoff (then dead letter), and retries
//! of the function's own failures when the job asked for them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::{Job, JobResult, JobStatus};

use crate::settings::DeliverySettings;

/// The job's `expired` result, when it is picked up after its deadline.
pub fn expired(job: &Job, executor_id: &str, now: DateTime<Utc>) -> Option<JobResult> {
    let deadline = job.expires_at?;
    (now > deadline).then(|| {
        let late = (now - deadline).num_seconds();
        let reason = format!("expired {late}s before it could start (deadline {deadline})");
        JobResult::without_run(
            job.id,
            job.owner.clone(),
            job.submitted_at,
            JobStatus::Expired,
            reason,
            executor_id,
            job.attempt,
        )
    })
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

    #[test]
    fn jobs_past_their_deadline_expire_without_running() {
        let spec: gitfaas_common::JobSpec = serde_json::from_value(serde_json::json!({
            "repo": "git://h/r", "ref": "main", "timeout_secs": 1,
            "resources": {"memory_mb": 64, "cpu_millis": 100, "pids": 16}}))
        .unwrap();
        let mut job = Job::new(gitfaas_common::Owner { subject: "u".into(), name: None }, spec);
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

//! Terminal results the frontend makes itself, published through the results topic
//! like an executor's, so that the view and the topics agree: for a job whose
//! result message could not be read, and for a job an operator ends.

use gitfaas_common::kafka::{PublishError, Publisher};
use gitfaas_common::schema::Attempt;
use gitfaas_common::{JobEvent, JobId, JobResult, Owner};

use crate::store::{JobRecord, JobStore};

/// Who published a result the frontend made itself.
pub const FRONTEND_EXECUTOR_ID: &str = "frontend";

/// Publishes terminal results on the results topic, keyed by job id.
#[derive(Clone)]
pub struct ResultPublisher {
    pub publisher: Publisher,
}

impl ResultPublisher {
    /// Publishes `result` as a `finished` event, once the broker has it.
    pub async fn publish(&self, result: &JobResult) -> Result<(), PublishError> {
        self.publisher.publish(&JobEvent::Finished(result.clone())).await
    }
}

/// The attempt of a job the store knows that the frontend ends without (more of)
/// a run: its results come from the constructors of [`JobResult`].
pub fn attempt_of(record: &JobRecord) -> Attempt {
    Attempt {
        job_id: record.id,
        owner: record.job.as_ref().map(|j| j.owner.clone()).unwrap_or_else(|| owner_named(&record.owner)),
        submitted_at: record.job.as_ref().map_or_else(chrono::Utc::now, |j| j.submitted_at),
        executor_id: FRONTEND_EXECUTOR_ID.to_owned(),
        number: record.attempt.unwrap_or(1),
        started_at: None,
        delivery: record.job.as_ref().map(|j| j.spec.delivery).unwrap_or_default(),
        function: record.job.as_ref().and_then(|j| j.spec.function.clone()),
    }
}

fn owner_named(subject: &str) -> Owner {
    Owner { subject: subject.to_owned(), name: None }
}

/// Ends the job an unreadable results message names with `failed` and the reason,
/// unless it has ended already: the result is published (when `publisher` is given;
/// the rebuild replays the topic and only applies) and applied to the store.
/// An unreadable `started` event ends nothing: the job's own result still comes.
pub async fn end_unreadable(
    store: &JobStore,
    publisher: Option<&ResultPublisher>,
    key: Option<&[u8]>,
    payload: &[u8],
    error: &str,
) -> redis::RedisResult<()> {
    let Some(found) = gitfaas_common::unreadable::salvage(key, payload) else {
        tracing::warn!(error, "skipping an unreadable event that names no job");
        return Ok(());
    };
    let job_id: JobId = found.job_id;
    if found.kind.as_deref() == Some("started") {
        tracing::warn!(%job_id, error, "skipping an unreadable started event");
        return Ok(());
    }
    let record = store.get(job_id).await?;
    if record.as_ref().is_some_and(|r| r.status.is_terminal()) {
        return Ok(());
    }
    let attempt = match (&record, found.owner) {
        (Some(record), _) => attempt_of(record),
        (None, Some(owner)) if !owner.subject.is_empty() => Attempt {
            job_id,
            owner,
            submitted_at: found.submitted_at.unwrap_or_else(chrono::Utc::now),
            executor_id: FRONTEND_EXECUTOR_ID.to_owned(),
            number: found.attempt.unwrap_or(1),
            started_at: None,
            delivery: Default::default(),
            function: None,
        },
        (None, _) => {
            tracing::warn!(%job_id, error, "skipping an unreadable event of an unknown job");
            return Ok(());
        }
    };
    let result = JobResult::unreadable(&attempt, error);
    tracing::warn!(%job_id, error, "unreadable result: the job ends failed");
    if let Some(publisher) = publisher {
        if let Err(error) = publisher.publish(&result).await {
            tracing::warn!(%job_id, %error, "the failed result of an unreadable event was not published");
        }
    }
    store.apply(&JobEvent::Finished(result)).await.map(|_| ())
}

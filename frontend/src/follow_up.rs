//! What follows a job's end when its origin asks for more: a topic trigger's
//! output record (or dead letter), a pipeline's next step. Run by the results
//! reader for every terminal event before its offset is stored, so a crash
//! replays it; each follow-up is made idempotent by the job it follows.
//!
//! The follow-ups themselves live with their origins ([`crate::triggers`],
//! [`crate::pipelines`]) and take what they need, not this: neither imports it back.

use gitfaas_common::schema::JobOrigin;
use gitfaas_common::JobId;

use crate::ending::ResultPublisher;
use crate::pipelines::StepError;
use crate::submit::Submitter;
use crate::triggers::OutputError;

/// Everything a follow-up needs.
#[derive(Clone)]
pub struct FollowUp {
    pub submit: Submitter,
    /// Results the follow-up makes itself (a pipeline step that cannot be queued).
    pub results: ResultPublisher,
}

/// Why a follow-up is not done yet: the results reader tries it again.
#[derive(Debug, thiserror::Error)]
pub enum FollowUpError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("the job store failed: {0}")]
    Store(#[from] redis::RedisError),
}

impl FollowUp {
    /// Acts on the end of job `id` as its origin asks (nothing for most jobs).
    pub async fn finished(&self, id: JobId) -> Result<(), FollowUpError> {
        let Some(record) = self.submit.store.get(id).await? else { return Ok(()) };
        let Some(origin) = record.job.as_ref().and_then(|job| job.spec.origin.clone()) else { return Ok(()) };
        if !record.status.is_terminal() {
            return Ok(());
        }
        match origin {
            JobOrigin::Schedule { .. } => Ok(()),
            JobOrigin::Topic { .. } => Ok(crate::triggers::record_done(&self.submit, &record, &origin).await?),
            JobOrigin::Pipeline { .. } => {
                Ok(crate::pipelines::step_done(&self.submit, &self.results, &record, &origin).await?)
            }
        }
    }
}

//! What follows a job's end when its origin asks for more: a topic trigger's
//! output record (or dead letter), a pipeline's next step. Run by the results
//! reader for every terminal event before its offset is stored, so a crash
//! replays it; each follow-up is made idempotent by the job it follows.

use gitfaas_common::schema::JobOrigin;
use gitfaas_common::JobId;

use crate::ending::ResultPublisher;
use crate::problem::ApiError;
use crate::submit::Submitter;

/// Everything a follow-up needs.
#[derive(Clone)]
pub struct FollowUp {
    pub submit: Submitter,
    /// Results the follow-up makes itself (a pipeline step that cannot be queued).
    pub results: ResultPublisher,
}

impl FollowUp {
    /// Acts on the end of job `id` as its origin asks (nothing for most jobs).
    pub async fn finished(&self, id: JobId) -> Result<(), ApiError> {
        let Some(record) = self.submit.store.get(id).await? else { return Ok(()) };
        let Some(origin) = record.job.as_ref().and_then(|job| job.spec.origin.clone()) else { return Ok(()) };
        if !record.status.is_terminal() {
            return Ok(());
        }
        match origin {
            JobOrigin::Schedule { .. } => Ok(()),
            JobOrigin::Topic { .. } => crate::triggers::record_done(self, &record, &origin).await,
            JobOrigin::Pipeline { .. } => crate::pipelines::step_done(self, &record, &origin).await,
        }
    }
}

//! Cancelling a job. The request travels as a `cancel` message on the control
//! topic, which every executor reads: a job not started yet never runs, a running
//! one is killed. A job the store still sees queued gets its `cancelled` result
//! from the frontend at once (executors then publish none); a running job's result
//! comes from the executor that kills it.

use actix_web::{web, HttpResponse};
use gitfaas_common::control::{CancelRequest, ControlMessage};
use gitfaas_common::kafka::PublishError;
use gitfaas_common::{JobEvent, JobResult, JobStatus};

use super::jobs::JobView;
use super::owned::own_job;
use crate::ending::attempt_of;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::store::JobRecord;
use crate::AppState;

/// Cancel one of the caller's jobs.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses(
        (status = 200, description = "the job was still queued: it is cancelled and will not run", body = JobView),
        (status = 202, description = "the job is running: its executor kills it; the result will say `cancelled`", body = JobView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the job has already finished", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[tracing::instrument(name = "cancel job", skip_all, fields(job_id = %path, owner = %caller.subject))]
pub async fn cancel(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let record = own_job(&state, &caller, &path).await?;
    if record.status.is_terminal() {
        return Err(ApiError::AlreadyFinished { status: record.status.to_string() });
    }
    cancel_record(&state, &caller.subject, &record).await?;
    let record = own_job(&state, &caller, &path).await?;
    let mut response =
        if record.status == JobStatus::Cancelled { HttpResponse::Ok() } else { HttpResponse::Accepted() };
    Ok(response.json(JobView::from(record)))
}

/// Cancels `subject`'s job of `record`, not terminal: a queued one at once, a
/// running one by its executor (for a job's own cancel and a pipeline run's).
pub(crate) async fn cancel_record(state: &AppState, subject: &str, record: &JobRecord) -> Result<(), ApiError> {
    let queued = record.status == JobStatus::Queued;
    let request = CancelRequest::new(record.id, subject.to_owned(), queued);
    if queued {
        // the result first: should the request then fail to go out, the job may
        // still run, but its result loses to this one; the other order could leave
        // a job with no result at all
        let result = cancelled_result(record);
        publish_result(state, &result).await?;
        publish_request(state, &request).await?;
        state.store.apply(&JobEvent::Finished(result)).await?;
    } else {
        publish_request(state, &request).await?;
        state.store.note_cancel_requested(record.id, request.requested_at).await?;
    }
    tracing::info!(job_id = %record.id, queued, "cancel requested");
    Ok(())
}

fn cancelled_result(record: &JobRecord) -> JobResult {
    JobResult::cancelled_before_start(&attempt_of(record))
}

async fn publish_result(state: &AppState, result: &JobResult) -> Result<(), PublishError> {
    state.results.publish(result).await
}

pub(crate) async fn publish_request(state: &AppState, request: &CancelRequest) -> Result<(), PublishError> {
    let message = ControlMessage::Cancel(request.clone());
    state.publisher.publish(&message).await
}

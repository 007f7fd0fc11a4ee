//! Submit, read, list and erase jobs. Every route sees only the caller's own jobs:
//! anyone else's job answers 404, exactly like a missing one.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use gitfaas_common::schema::Delivery;
use gitfaas_common::{JobId, JobResult, JobStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request;
use crate::store::{Erase, JobRecord};
use crate::AppState;

use super::owned::own_job;
use super::page;
use super::wait::{self, Waited};

/// Links to a job's resources.
#[derive(Serialize, ToSchema)]
pub struct JobLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub result: String,
    pub cancel: String,
}

impl JobLinks {
    fn of(id: JobId) -> Self {
        let self_ = format!("/v1/jobs/{id}");
        Self { result: format!("{self_}/result"), cancel: format!("{self_}/cancel"), self_ }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SubmitResponse {
    pub id: JobId,
    pub status: JobStatus,
    pub submitted_at: DateTime<Utc>,
    pub links: JobLinks,
}

/// A job as its owner sees it.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: JobId,
    pub status: JobStatus,
    pub repo: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    pub runtime: Option<String>,
    /// The job's processing guarantee.
    pub delivery: Option<Delivery>,
    /// The named function (and version) the job invokes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<gitfaas_common::schema::FunctionRef>,
    /// The trigger tick or record (or pipeline step) that made the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<gitfaas_common::schema::JobOrigin>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub started_at: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The attempt that is running or produced the result (1 unless redelivered).
    pub attempt: Option<u32>,
    pub executor_id: Option<String>,
    pub commit_sha: Option<String>,
    /// When the owner asked to cancel the job while it ran (the kill is under way).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_requested_at: Option<String>,
    pub links: JobLinks,
}

impl From<JobRecord> for JobView {
    fn from(record: JobRecord) -> Self {
        let spec = record.job.as_ref().map(|j| &j.spec);
        let result = record.result.as_ref();
        Self {
            id: record.id,
            status: record.status,
            repo: spec.map(|s| s.repo.to_string()),
            git_ref: spec.map(|s| s.git_ref.to_string()),
            runtime: spec.and_then(|s| s.runtime.as_deref().map(str::to_owned)),
            delivery: spec.map(|s| s.delivery).or(result.map(|r| r.delivery)),
            function: spec.and_then(|s| s.function.clone()).or(result.and_then(|r| r.function.clone())),
            origin: spec.and_then(|s| s.origin.clone()),
            submitted_at: record.job.as_ref().map(|j| j.submitted_at).or(result.map(|r| r.submitted_at)),
            started_at: record.started_at.clone(),
            finished_at: result.map(|r| r.finished_at),
            attempt: record.attempt,
            executor_id: record.executor_id.clone(),
            commit_sha: result.and_then(|r| r.commit_sha.clone()),
            cancel_requested_at: record.cancel_requested_at.clone().filter(|_| !record.status.is_terminal()),
            links: JobLinks::of(record.id),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next: Option<JobId>,
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::InvalidRequest { detail: e.to_string(), field: None })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Submit a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body(content = request::SubmitRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "a retried submit with the same key returns the same job"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` (RFC 7240): answer with the result if the job ends within N seconds (at most 60; more is taken as 60)"),
        WaitQuery),
    responses(
        (status = 200, description = "the job ended within the requested wait: its result", body = JobResult,
            headers(("Location" = String), ("Preference-Applied" = String, description = "`wait=N` when the wait came from `Prefer`"))),
        (status = 202, description = "accepted (and, with a wait, still queued or running at its end)", body = SubmitResponse, headers(("Location" = String))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "a `publish` topic is not allowed or is another owner's", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "the job of this Idempotency-Key was erased", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
#[tracing::instrument(name = "submit job", skip_all, fields(job_id = tracing::field::Empty, owner = %caller.subject))]
pub async fn submit(
    http: HttpRequest,
    payload: web::Payload,
    query: web::Query<WaitQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    wait::from_query(query.wait)?; // refused before anything is queued
    let queued = enqueue(&http, payload, &caller, &state).await?;
    answer(&http, &query, &caller, &state, queued).await
}

/// The answer to a request that queued a job: the result when it ends within the
/// wait asked for (`?wait`, or `Prefer: wait`), else 202 with the job's links.
pub(super) async fn answer(
    http: &HttpRequest,
    query: &WaitQuery,
    caller: &Caller,
    state: &AppState,
    (id, status, submitted_at): (JobId, JobStatus, DateTime<Utc>),
) -> Result<HttpResponse, ApiError> {
    let preferred = wait::from_prefer(http.headers());
    let wait = match query.wait {
        Some(_) => wait::from_query(query.wait)?,
        None => preferred.unwrap_or(0),
    };
    let applied = preferred.filter(|_| query.wait.is_none());
    if wait > 0 {
        if let Waited::Ended(result) = wait::for_result(state, caller, &id.to_string(), wait).await? {
            let mut ok = HttpResponse::Ok();
            ok.insert_header((header::LOCATION, JobLinks::of(id).self_));
            if let Some(applied) = applied {
                ok.insert_header(("Preference-Applied", format!("wait={applied}")));
            }
            return Ok(ok.json(result));
        }
    }
    Ok(accepted(id, status, submitted_at))
}

/// Validates, records and publishes a job (or finds the one of a retried
/// Idempotency-Key): its id, status and submission time.
async fn enqueue(
    http: &HttpRequest,
    payload: web::Payload,
    caller: &Caller,
    state: &AppState,
) -> Result<(JobId, JobStatus, DateTime<Utc>), ApiError> {
    let (body, backlog) = admit_json(http, payload, caller, state).await?;
    let spec = request::parse(&body)?.into_spec(&state.settings)?;
    let key = http.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    queue(spec, Some((&body, key)), backlog, caller, state).await
}

/// The checks of every body that makes jobs: JSON, within the caller's rate, not
/// too large. The body, and the backlog of unfinished jobs.
pub(super) async fn admit_json(
    http: &HttpRequest,
    payload: web::Payload,
    caller: &Caller,
    state: &AppState,
) -> Result<(web::BytesMut, u64), ApiError> {
    let settings = &state.settings;
    let json_body = http
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !json_body {
        return Err(ApiError::UnsupportedMediaType);
    }
    let admission =
        state.store.admission(&caller.subject, settings.rate_limit.requests, settings.rate_limit.window_secs).await?;
    if let Some(wait) = admission.retry_after {
        return Err(ApiError::RateLimited(wait));
    }
    if admission.unfinished >= settings.rate_limit.max_unfinished {
        return Err(ApiError::TooManyUnfinished(admission.unfinished));
    }
    Ok((read_body(payload, settings.max_body_bytes).await?, admission.backlog))
}

/// Records and publishes the job of `spec` for the caller ([`crate::submit`]).
pub(super) async fn queue(
    spec: gitfaas_common::JobSpec,
    idempotency: Option<(&[u8], Option<String>)>,
    backlog: u64,
    caller: &Caller,
    state: &AppState,
) -> Result<(JobId, JobStatus, DateTime<Utc>), ApiError> {
    super::topics::claim_publish_topics(state, &caller.subject, &spec.publish).await?;
    Ok(state.submit.queue(spec, idempotency, backlog, caller.owner()).await?)
}

pub(super) fn accepted(id: JobId, status: JobStatus, submitted_at: DateTime<Utc>) -> HttpResponse {
    let links = JobLinks::of(id);
    HttpResponse::Accepted().insert_header((header::LOCATION, links.self_.clone())).json(SubmitResponse {
        id,
        status,
        submitted_at,
        links,
    })
}

/// Status of one of the caller's jobs.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn status(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(JobView::from(own_job(&state, &caller, &path).await?)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Seconds to wait for the job to finish before answering, at most 60 (more is
    /// a 400); the answer comes as soon as the job ends.
    #[param(maximum = 60, minimum = 0)]
    pub wait: Option<u64>,
}

/// The terminal result of one of the caller's jobs, with elapsed times.
#[utoipa::path(get, path = "/v1/jobs/{id}/result", tag = "jobs",
    params(("id" = String, Path, description = "job id"), WaitQuery),
    responses((status = 200, body = JobResult),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not finished yet", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn result(
    path: web::Path<String>,
    query: web::Query<WaitQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wait = wait::from_query(query.wait)?;
    match wait::for_result(&state, &caller, &path, wait).await? {
        Waited::Ended(result) => Ok(HttpResponse::Ok().json(result)),
        Waited::Pending(status) => Err(ApiError::NotFinished { status: status.to_string() }),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs with this status.
    status: Option<JobStatus>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Only jobs older than this job id (the `next` of the previous page).
    before: Option<JobId>,
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(
    query: web::Query<ListQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = page::size(query.limit)?;
    let (records, more) = state.store.list(&caller.subject, query.before, query.status, limit).await?;
    let next = page::next(&records, more, |r| r.id);
    Ok(HttpResponse::Ok().json(JobList { jobs: records.into_iter().map(JobView::from).collect(), next }))
}

/// Erase a finished job of the caller's (after reading its result).
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 204, description = "erased"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "still queued or running", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn erase(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: JobId = path.parse().map_err(|_| ApiError::NotFound)?;
    match state.store.erase(&caller.subject, id).await? {
        Erase::Erased => Ok(HttpResponse::NoContent().finish()),
        Erase::NotFinished(status) => Err(ApiError::NotFinished { status: status.to_string() }),
        Erase::NotFound => Err(ApiError::NotFound),
    }
}

//! Submit a job, read its status and its result.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use gitfaas_common::kafka::trace_headers;
use gitfaas_common::{Job, JobId};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use serde::Deserialize;
use serde_json::json;

use crate::identity::Caller;
use crate::problem::ApiError;
use crate::request;
use crate::store::JobRecord;
use crate::AppState;

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

#[tracing::instrument(name = "submit job", skip_all, fields(job_id = tracing::field::Empty, owner = %caller.subject))]
pub async fn submit(
    http: HttpRequest,
    payload: web::Payload,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let json_body = http
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = read_body(payload, state.settings.max_body_bytes).await?;
    let spec = request::parse(&body)?.into_spec(&state.settings)?;
    let job = Job::new(caller.owner(), spec);
    tracing::Span::current().record("job_id", tracing::field::display(job.id));

    state.store.insert_queued(&job).await?;
    if let Err(error) = publish(&state, &job).await {
        tracing::warn!(%error, "job not published");
        state.store.remove(&job).await?;
        return Err(ApiError::Unavailable("the message broker"));
    }
    tracing::info!(repo = %job.spec.repo, git_ref = %job.spec.git_ref, "job queued");
    let location = format!("/v1/jobs/{}", job.id);
    Ok(HttpResponse::Accepted().insert_header((header::LOCATION, location.clone())).json(json!({
        "id": job.id,
        "status": "queued",
        "submitted_at": job.submitted_at,
        "links": {"self": location, "result": format!("{location}/result")},
    })))
}

async fn publish(state: &AppState, job: &Job) -> Result<(), rdkafka::error::KafkaError> {
    let payload = serde_json::to_vec(job).expect("jobs serialise");
    let key = job.id.to_string();
    let record = FutureRecord::to(&state.topics.jobs).key(&key).payload(&payload).headers(trace_headers());
    state.producer.send(record, Timeout::After(Duration::from_secs(10))).await.map(|_| ()).map_err(|(e, _)| e)
}

/// A job the caller owns; anyone else's job is indistinguishable from a missing one.
async fn own_job(state: &AppState, caller: &Caller, id: &str) -> Result<(JobId, JobRecord), ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::NotFound)?;
    match state.store.get(id).await? {
        Some(record) if record.owner == caller.subject => Ok((id, record)),
        _ => Err(ApiError::NotFound),
    }
}

pub async fn status(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, record) = own_job(&state, &caller, &path).await?;
    let spec = record.job.as_ref().map(|j| &j.spec);
    let result = record.result.as_ref();
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "status": record.status,
        "repo": spec.map(|s| &s.repo),
        "ref": spec.map(|s| &s.git_ref),
        "runtime": spec.and_then(|s| s.runtime.as_ref()),
        "submitted_at": record.job.as_ref().map(|j| j.submitted_at).or(result.map(|r| r.submitted_at)),
        "started_at": record.started_at,
        "finished_at": result.map(|r| r.finished_at),
        "attempt": record.attempt,
        "executor_id": record.executor_id,
        "commit_sha": result.and_then(|r| r.commit_sha.as_ref()),
        "links": {"self": format!("/v1/jobs/{id}"), "result": format!("/v1/jobs/{id}/result")},
    })))
}

#[derive(Deserialize)]
pub struct ResultQuery {
    /// Seconds to wait for the job to finish before answering (at most 60).
    wait: Option<u64>,
}

pub async fn result(
    path: web::Path<String>,
    query: web::Query<ResultQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(query.wait.unwrap_or(0).min(60));
    loop {
        let (_, record) = own_job(&state, &caller, &path).await?;
        if let Some(result) = record.result {
            return Ok(HttpResponse::Ok().json(result));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::NotFinished { status: record.status.to_string() });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

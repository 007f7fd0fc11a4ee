//! Operator endpoints (admin role): set the observer's parameters — published as a
//! typed config message on the observer topic — read its latest report, and end a
//! job stuck queued or running.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use gitfaas_common::control::CancelRequest;
use gitfaas_common::observer::{ConfigUpdate, ObserverMessage, ParamsUpdate};
use gitfaas_common::{JobEvent, JobId, JobResult};
use serde::Deserialize;

use crate::ending::attempt_of;
use crate::identity::Admin;
use crate::problem::{ApiError, Problem};
use crate::routes::cancel::publish_request;
use crate::routes::jobs::JobView;
use crate::AppState;

/// Change some of the observer's parameters; fields left out keep their value.
#[utoipa::path(put, path = "/v1/admin/observer/config", tag = "admin",
    request_body(content = Object, content_type = "application/json",
        description = "any of: target_statistic (mean|p95), target_response_ms, rate_window_secs, latency_window_secs, min_workers, max_workers, scale_out_cooldown_secs, scale_in_cooldown_secs, interval_secs, drain_horizon_secs, hysteresis"),
    responses((status = 202, description = "published to the observer topic", body = Object),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn set_config(admin: Admin, body: web::Bytes, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let invalid = |detail: String| ApiError::InvalidRequest { detail, field: None };
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("invalid observer parameters: {e}")))?;
    if !value.is_object() {
        return Err(invalid("observer parameters must be a json object".into()));
    }
    let update: ParamsUpdate =
        serde_json::from_value(value).map_err(|e| invalid(format!("invalid observer parameters: {e}")))?;
    let current = state.reports.latest().map(|r| r.params);
    let effective = current
        .unwrap_or_default()
        .apply(&update)
        .map_err(|e| ApiError::InvalidRequest { detail: e.to_string(), field: e.1.map(str::to_owned) })?;
    let message = ObserverMessage::Config(ConfigUpdate::new(admin.0.subject.clone(), update));
    state.publisher.publish(&message).await?;
    tracing::info!(by = %admin.0.subject, "observer parameters published");
    Ok(HttpResponse::Accepted().json(serde_json::json!({"published": message, "effective": effective})))
}

/// The observer's latest report: measured rates and times, workers, decision and reason.
#[utoipa::path(get, path = "/v1/admin/observer/status", tag = "admin",
    responses((status = 200, body = Object),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no report seen yet", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn status(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let latest = state.reports.latest();
    latest.map(|report| HttpResponse::Ok().json(report)).ok_or(ApiError::NoReport)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsQuery {
    /// Only reports made after this time (RFC 3339).
    since: Option<String>,
}

/// The observer's reports this frontend keeps (the last 900, oldest first), or
/// those made after `since`: the operator view's charts start from them and then
/// follow with `since` the last one it has.
#[utoipa::path(get, path = "/v1/admin/observer/reports", tag = "admin",
    params(("since" = Option<DateTime<Utc>>, Query, description = "only reports made after this time (RFC 3339)")),
    responses((status = 200, description = "`{\"reports\": [...]}`, oldest first", body = Object),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reports(
    _admin: Admin,
    query: web::Query<ReportsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let reports = state.reports.since(since(query.since.as_deref())?);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "reports": reports })))
}

/// A `since` query parameter: an RFC 3339 time, or a 400 naming the field.
pub(super) fn since(since: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    since
        .map(|since| {
            DateTime::parse_from_rfc3339(since).map(|t| t.with_timezone(&Utc)).map_err(|e| ApiError::InvalidRequest {
                detail: format!("since must be an RFC 3339 time: {e}"),
                field: Some("since".into()),
            })
        })
        .transpose()
}

/// End any caller's job that is stuck `queued` or `running`: its terminal `failed`
/// result (reason: ended by an operator) goes out on the results topic like any
/// other, then a cancel request that stops a run still going without a second result.
#[utoipa::path(post, path = "/v1/admin/jobs/{id}/end", tag = "admin",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "the job has ended `failed`", body = JobView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the job has already finished", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[tracing::instrument(name = "end job", skip_all, fields(job_id = %path, by = %admin.0.subject))]
pub async fn end_job(
    admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: JobId = path.parse().map_err(|_| ApiError::NotFound)?;
    let record = state.store.get(id).await?.ok_or(ApiError::NotFound)?;
    if record.status.is_terminal() {
        return Err(ApiError::AlreadyFinished { status: record.status.to_string() });
    }
    let result = JobResult::ended_by_operator(&attempt_of(&record), &admin.0.subject, record.status);
    state.results.publish(&result).await?;
    let request = CancelRequest::new(id, record.owner.clone(), true);
    publish_request(&state, &request).await?;
    state.store.apply(&JobEvent::Finished(result)).await?;
    tracing::warn!(was = %record.status, "job ended by an operator");
    let record = state.store.get(id).await?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(JobView::from(record)))
}

//! Operator endpoints (admin role): set the observer's parameters — published as a
//! typed config message on the observer topic — and read its latest report.

use actix_web::{web, HttpResponse};
use gitfaas_common::observer::{ConfigUpdate, ObserverMessage, ParamsUpdate};
use rdkafka::producer::FutureRecord;

use crate::identity::Admin;
use crate::problem::{ApiError, Problem};
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
    let current = state.latest_report.read().expect("report lock").as_ref().map(|r| r.params.clone());
    let effective = current
        .unwrap_or_default()
        .apply(&update)
        .map_err(|e| ApiError::InvalidRequest { detail: e.to_string(), field: None })?;
    let message = ObserverMessage::Config(ConfigUpdate::new(admin.0.subject.clone(), update));
    let payload = message.encode();
    let key = message.key();
    let record = FutureRecord::to(&state.topics.observer).key(&key).payload(&payload);
    state.publish(record).await.map_err(|_| ApiError::Unavailable("the message broker"))?;
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
    let latest = state.latest_report.read().expect("report lock").clone();
    latest.map(|report| HttpResponse::Ok().json(report)).ok_or(ApiError::NoReport)
}

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::problem::ApiError;
use crate::AppState;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when Redis answers and the broker serves the jobs topic's metadata.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    let producer = state.producer.clone();
    let topic = state.topics.jobs.clone();
    let metadata = tokio::task::spawn_blocking(move || {
        use rdkafka::producer::Producer;
        producer.client().fetch_metadata(Some(&topic), Duration::from_secs(3)).map(|_| ())
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    if let Err(error) = metadata {
        tracing::warn!(%error, "broker not ready");
        return Err(ApiError::Unavailable("the message broker"));
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

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
    state.publisher.serves(&state.topics.jobs, Duration::from_secs(3)).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use gitfaas_common::kafka::Topic;

use crate::problem::ApiError;
use crate::AppState;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when Redis answers and the broker serves the jobs topic's metadata.
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    state.publisher.serves(Topic::Jobs, Duration::from_secs(3)).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

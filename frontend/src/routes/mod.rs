//! HTTP routes. Every error is problem+json (see [`crate::problem`]).

pub mod health;
pub mod jobs;

use actix_web::web;

use crate::problem::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/jobs", web::post().to(jobs::submit))
            .route("/jobs/{id}", web::get().to(jobs::status))
            .route("/jobs/{id}/result", web::get().to(jobs::result)),
    )
    .route("/health/live", web::get().to(health::live))
    .route("/health/ready", web::get().to(health::ready))
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

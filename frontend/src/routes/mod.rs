//! HTTP routes. Every error is problem+json (see [`crate::problem`]).

pub mod events;
pub mod health;
pub mod jobs;
pub mod openapi;

use actix_web::web;

use crate::problem::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/jobs", web::post().to(jobs::submit))
            .route("/jobs", web::get().to(jobs::list))
            .route("/jobs/events", web::get().to(events::events))
            .route("/jobs/{id}", web::get().to(jobs::status))
            .route("/jobs/{id}", web::delete().to(jobs::erase))
            .route("/jobs/{id}/result", web::get().to(jobs::result)),
    )
    .route("/openapi.json", web::get().to(openapi::document))
    .route("/health/live", web::get().to(health::live))
    .route("/health/ready", web::get().to(health::ready))
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// Query strings that do not parse are client mistakes: 400 problem+json.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|error, _| ApiError::InvalidRequest { detail: error.to_string(), field: None }.into())
}

/// Path segments that do not parse: treated as a missing resource.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into())
}

//! HTTP routes. Every error is problem+json (see [`crate::problem`]).

mod admin;
mod callers;
mod cancel;
mod events;
mod functions;
mod health;
mod jobs;
mod keys;
mod logs;
mod numbers;
mod openapi;
mod owned;
mod page;
mod pipelines;
mod report_stream;
mod socket;
mod state;
mod topics;
mod triggers;
mod wait;
mod webapp;

use actix_web::web;

use crate::problem::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .service(
                resource("/jobs", "GET, POST").route(web::post().to(jobs::submit)).route(web::get().to(jobs::list)),
            )
            .service(resource("/jobs/events", "GET").route(web::get().to(events::events)))
            .service(
                resource("/jobs/{id}", "GET, DELETE")
                    .route(web::get().to(jobs::status))
                    .route(web::delete().to(jobs::erase)),
            )
            .service(resource("/jobs/{id}/result", "GET").route(web::get().to(jobs::result)))
            .service(resource("/jobs/{id}/logs", "GET").route(web::get().to(logs::logs)))
            .service(resource("/jobs/{id}/cancel", "POST").route(web::post().to(cancel::cancel)))
            .service(resource("/functions", "GET").route(web::get().to(functions::list)))
            .service(
                resource("/functions/{name}", "GET, PUT, DELETE")
                    .route(web::get().to(functions::get))
                    .route(web::put().to(functions::deploy))
                    .route(web::delete().to(functions::delete)),
            )
            .service(
                resource("/functions/{name}/state", "GET, DELETE")
                    .route(web::get().to(state::list))
                    .route(web::delete().to(state::clear)),
            )
            .service(
                resource("/functions/{name}/state/{key}", "GET, DELETE")
                    .route(web::get().to(state::get))
                    .route(web::delete().to(state::delete)),
            )
            .service(resource("/functions/{name}/versions", "GET").route(web::get().to(functions::versions)))
            .service(resource("/functions/{name}/rollback", "POST").route(web::post().to(functions::rollback)))
            .service(resource("/functions/{name}/invoke", "POST").route(web::post().to(functions::invoke)))
            .service(resource("/triggers", "GET").route(web::get().to(triggers::list)))
            .service(
                resource("/triggers/{name}", "GET, PUT, DELETE")
                    .route(web::get().to(triggers::get))
                    .route(web::put().to(triggers::put))
                    .route(web::delete().to(triggers::delete)),
            )
            .service(resource("/triggers/{name}/pause", "POST").route(web::post().to(triggers::pause)))
            .service(resource("/triggers/{name}/resume", "POST").route(web::post().to(triggers::resume)))
            .service(
                resource("/pipelines", "GET, POST")
                    .route(web::post().to(pipelines::start))
                    .route(web::get().to(pipelines::list)),
            )
            .service(resource("/pipelines/{id}", "GET").route(web::get().to(pipelines::get)))
            .service(resource("/pipelines/{id}/cancel", "POST").route(web::post().to(pipelines::cancel)))
            .service(resource("/keys/executor", "GET").route(web::get().to(keys::executor)))
            .service(resource("/admin/observer/config", "PUT").route(web::put().to(admin::set_config)))
            .service(resource("/admin/observer/status", "GET").route(web::get().to(admin::status)))
            .service(resource("/admin/observer/reports", "GET").route(web::get().to(admin::reports)))
            .service(
                resource("/admin/observer/reports/stream", "GET").route(web::get().to(report_stream::report_stream)),
            )
            .service(resource("/admin/jobs/{id}/end", "POST").route(web::post().to(admin::end_job))),
    )
    .service(resource("/openapi.json", "GET").route(web::get().to(openapi::document)))
    .service(resource("/metrics", "GET").route(web::get().to(crate::metrics::serve)))
    .service(resource("/health/live", "GET").route(web::get().to(health::live)))
    .service(resource("/health/ready", "GET").route(web::get().to(health::ready)))
    .service(resource("/", "GET").route(web::get().to(webapp::index)))
    .service(resource("/app/config.json", "GET").route(web::get().to(webapp::config)))
    .service(resource("/app/{name}", "GET").route(web::get().to(webapp::asset)))
    .default_service(web::to(not_found));
}

/// A resource that answers 405 problem+json, with `Allow`, to methods it lacks.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed(allow))
    }))
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

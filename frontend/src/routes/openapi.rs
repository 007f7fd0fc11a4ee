//! The OpenAPI 3 document of exactly the routes this frontend serves, generated
//! from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, cancel, jobs, keys};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "gitfaas", description = "Functions as a service, straight from git."),
    paths(jobs::submit, jobs::status, jobs::result, jobs::list, jobs::erase, cancel::cancel, admin::set_config, admin::status, admin::end_job, keys::executor),
    modifiers(&BearerAuth),
    tags((name = "jobs", description = "submit jobs and read their results"),
         (name = "admin", description = "operator endpoints (admin role)"))
)]
pub struct ApiDoc;

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

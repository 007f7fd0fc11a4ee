//! The executors' public key, for clients that seal their credentials themselves.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExecutorKey {
    /// `x25519-sealed-box` (libsodium `crypto_box_seal`).
    pub algorithm: &'static str,
    /// Base64 of the 32-byte X25519 public key.
    pub public_key: String,
}

/// The public key to seal `sealed_credentials` to; 404 when credentials are off.
#[utoipa::path(
    get,
    path = "/v1/keys/executor",
    tag = "jobs",
    security(("bearer" = [])),
    responses(
        (status = 200, body = ExecutorKey),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json",
            description = "this deployment accepts no credentials"),
    )
)]
pub async fn executor(_caller: Caller, state: actix_web::web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let key = state.settings.executor_public_key.clone().ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(ExecutorKey { algorithm: "x25519-sealed-box", public_key: key }))
}

//! The operator view's live feed (admin role): a websocket sending the observer's
//! reports as JSON text frames — first those this frontend kept (after `since`,
//! when given), then each one as it is read from the observer topic. Browsers
//! cannot set headers on a websocket, so the token may also come as
//! `?access_token=`. Like the events websocket, it is not in the OpenAPI document
//! (which describes request and response routes); README describes it.

use actix_web::{web, HttpRequest, HttpResponse};
use gitfaas_common::observer::ObserverReport;
use serde::Deserialize;

use crate::identity::{bearer, Authenticator};
use crate::problem::ApiError;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    access_token: Option<String>,
    /// Only kept reports made after this time (RFC 3339) are sent first.
    since: Option<String>,
}

pub async fn report_stream(
    request: HttpRequest,
    body: web::Payload,
    query: web::Query<StreamQuery>,
    authenticator: web::Data<Authenticator>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = bearer(&request).or_else(|| query.access_token.clone());
    let caller = authenticator.authenticate_token(token.as_deref()).await?;
    if !authenticator.is_admin(&caller) {
        return Err(ApiError::Forbidden);
    }
    let (kept, arrivals) = state.reports.follow(super::admin::since(query.since.as_deref())?);
    tracing::info!(by = %caller.subject, "observer report stream opened");
    let json = |report: ObserverReport| serde_json::to_string(&report).ok();
    let first = kept.into_iter().filter_map(json).collect();
    super::socket::stream(&request, body, first, arrivals, json, "observer reports")
}

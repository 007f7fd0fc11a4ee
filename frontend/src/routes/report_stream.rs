//! The operator view's live feed (admin role): a websocket sending the observer's
//! reports as JSON text frames — first those this frontend kept (after `since`,
//! when given), then each one as it is read from the observer topic. Browsers
//! cannot set headers on a websocket, so the token may also come as
//! `?access_token=`. Like the events websocket, it is not in the OpenAPI document
//! (which describes request and response routes); README describes it.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Message;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;

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
    if !caller.roles.iter().any(|r| r == authenticator.admin_role()) {
        return Err(ApiError::Forbidden);
    }
    let since = match &query.since {
        Some(since) => Some(DateTime::parse_from_rfc3339(since).map_err(|e| ApiError::InvalidRequest {
            detail: format!("since must be an RFC 3339 time: {e}"),
            field: Some("since".into()),
        })?),
        None => None,
    };
    let (kept, mut arrivals) = state.reports.follow(since.map(|t| t.with_timezone(&Utc)));
    let (response, mut session, mut incoming) = actix_ws::handle(&request, body)
        .map_err(|e| ApiError::InvalidRequest { detail: format!("websocket upgrade required: {e}"), field: None })?;
    tracing::info!(by = %caller.subject, "observer report stream opened");
    actix_web::rt::spawn(async move {
        for report in kept {
            if session.text(serde_json::to_string(&report).unwrap_or_default()).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                report = arrivals.recv() => match report {
                    Ok(report) => {
                        if session.text(serde_json::to_string(&report).unwrap_or_default()).await.is_err() {
                            break;
                        }
                    }
                    // a slow reader misses reports; the next one still comes
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "observer report stream lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                frame = incoming.next() => match frame {
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

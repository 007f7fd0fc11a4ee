//! Live updates: a websocket streaming the caller's job transitions
//! (`queued` → `running` → terminal) as JSON text frames, from the Redis channel the
//! store publishes to; with `?logs=true` also the log chunks of those jobs as they
//! are stored (`{"id","kind":"log","index","attempt","seq","stream","text","truncated","last"}`). Browsers cannot set headers on a websocket, so the token may
//! also come as `?access_token=`. Every stream reads the one shared subscription of
//! [`crate::event_hub`]; a caller holding too many gets 429.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Message;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::event_hub::HubError;
use crate::identity::{bearer, Authenticator};
use crate::problem::ApiError;
use crate::AppState;

#[derive(Deserialize)]
pub struct TokenQuery {
    access_token: Option<String>,
    /// Also send the log chunks of the caller's jobs (`"kind": "log"`) as they are stored.
    #[serde(default)]
    logs: bool,
}

/// Whether an update is a log chunk (the store publishes them with `"kind": "log"`).
fn is_log(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|update| update["kind"] == "log")
}

pub async fn events(
    request: HttpRequest,
    body: web::Payload,
    query: web::Query<TokenQuery>,
    authenticator: web::Data<Authenticator>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = bearer(&request).or_else(|| query.access_token.clone());
    let with_logs = query.logs;
    let caller = authenticator.authenticate_token(token.as_deref()).await?;
    let mut subscription = state.events.subscribe(&caller.subject).await.map_err(|error| match error {
        HubError::TooMany(open) => ApiError::TooManyStreams(open),
        HubError::NotReady => ApiError::Unavailable("the job store"),
    })?;
    let (response, mut session, mut incoming) = actix_ws::handle(&request, body)
        .map_err(|e| ApiError::InvalidRequest { detail: format!("websocket upgrade required: {e}"), field: None })?;
    tracing::info!(owner = %caller.subject, "event stream opened");
    actix_web::rt::spawn(async move {
        loop {
            tokio::select! {
                update = subscription.updates.recv() => match update {
                    Ok(text) if !with_logs && is_log(&text) => {}
                    Ok(text) => {
                        if session.text(text).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event stream lagged; updates dropped");
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

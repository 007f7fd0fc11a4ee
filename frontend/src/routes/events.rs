//! Live updates: a websocket streaming the caller's job transitions
//! (`queued` → `running` → terminal) as JSON text frames, from the Redis channel the
//! store publishes to; with `?logs=true` also the log chunks of those jobs as they
//! are stored (`{"id","kind":"log","index","attempt","seq","stream","text","truncated","last"}`). Browsers cannot set headers on a websocket, so the token may
//! also come as `?access_token=`. Every stream reads the one shared subscription of
//! [`crate::event_hub`]; a caller holding too many gets 429.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::event_hub::{HubError, Subscription};
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
    let subscription = state.events.subscribe(&caller.subject).await.map_err(|error| match error {
        HubError::TooMany(open) => ApiError::TooManyStreams(open),
        HubError::NotReady => ApiError::Unavailable("the job store"),
    })?;
    tracing::info!(owner = %caller.subject, "event stream opened");
    let render = move |text: String| (with_logs || !is_log(&text)).then_some(text);
    super::socket::stream(&request, body, Vec::new(), subscription, render, "job events")
}

/// A stream holds its subscription, and with it its place among the caller's streams.
impl super::socket::Updates<String> for Subscription {
    fn receiver(&mut self) -> &mut broadcast::Receiver<String> {
        &mut self.updates
    }
}

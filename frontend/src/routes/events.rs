//! Live updates: a websocket streaming the caller's job transitions
//! (`queued` → `running` → terminal) as JSON text frames, from the Redis channel the
//! store publishes to. Browsers cannot set headers on a websocket, so the token may
//! also come as `?access_token=`.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Message;
use futures::StreamExt;
use serde::Deserialize;

use crate::identity::{bearer, Authenticator};
use crate::problem::ApiError;
use crate::AppState;

#[derive(Deserialize)]
pub struct TokenQuery {
    access_token: Option<String>,
}

pub async fn events(
    request: HttpRequest,
    body: web::Payload,
    query: web::Query<TokenQuery>,
    authenticator: web::Data<Authenticator>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = bearer(&request).or_else(|| query.access_token.clone());
    let caller = authenticator.authenticate_token(token.as_deref()).await?;
    let mut pubsub = state.store.pubsub().await?;
    pubsub.subscribe(state.store.channel(&caller.subject)).await?;
    let (response, mut session, mut incoming) = actix_ws::handle(&request, body)
        .map_err(|e| ApiError::InvalidRequest { detail: format!("websocket upgrade required: {e}"), field: None })?;
    tracing::info!(owner = %caller.subject, "event stream opened");
    actix_web::rt::spawn(async move {
        let mut updates = pubsub.into_on_message();
        loop {
            tokio::select! {
                update = updates.next() => {
                    let Some(update) = update else { break };
                    let text: String = update.get_payload().unwrap_or_default();
                    if session.text(text).await.is_err() {
                        break;
                    }
                }
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

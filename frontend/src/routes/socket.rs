//! The one loop behind the websockets (a caller's job events, the observer's
//! reports): upgrades the request, sends what comes first, then each update of a
//! broadcast as a text frame, answers pings, and ends when either side does.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Message;
use futures::StreamExt;
use tokio::sync::broadcast;

use crate::problem::ApiError;

/// What a websocket follows: a broadcast's receiver, or something holding one
/// (and whatever must live as long as the stream, such as its slot in a limit).
pub trait Updates<T>: Send + 'static {
    fn receiver(&mut self) -> &mut broadcast::Receiver<T>;
}

impl<T: Send + 'static> Updates<T> for broadcast::Receiver<T> {
    fn receiver(&mut self) -> &mut Self {
        self
    }
}

/// Upgrades `request` to a websocket that sends `first`, then each update of
/// `updates` that `render` turns into text (`None`: skipped). A reader too slow
/// for the broadcast misses updates (logged as `what`); the next one still comes.
pub fn stream<T: Clone + Send + 'static>(
    request: &HttpRequest,
    body: web::Payload,
    first: Vec<String>,
    mut updates: impl Updates<T>,
    render: impl Fn(T) -> Option<String> + 'static,
    what: &'static str,
) -> Result<HttpResponse, ApiError> {
    let (response, mut session, mut incoming) = actix_ws::handle(request, body)
        .map_err(|e| ApiError::InvalidRequest { detail: format!("websocket upgrade required: {e}"), field: None })?;
    actix_web::rt::spawn(async move {
        for text in first {
            if session.text(text).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                update = updates.receiver().recv() => match update {
                    Ok(update) => {
                        let Some(text) = render(update) else { continue };
                        if session.text(text).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, stream = what, "websocket lagged; updates dropped");
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

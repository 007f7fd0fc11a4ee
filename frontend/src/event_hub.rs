//! One Redis subscription shared by every event websocket of this frontend.
//!
//! The store publishes each job transition on its owner's channel; the hub holds a
//! single pattern subscription to all of them and fans each message out to the
//! websockets of that owner, and to the result route's long-polls, which wake on it
//! rather than polling. A caller may hold at most `max_per_caller` streams at once,
//! so no one caller can open Redis connections or memory without bound; a long-poll
//! is not counted (it ends within 60 s and holds only a channel receiver).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gitfaas_common::tasks::Tasks;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::store::JobStore;

/// Updates buffered per caller before a slow websocket starts missing some.
const BUFFER: usize = 256;

/// Why a stream was not opened.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0} event streams are open for this caller already")]
    TooMany(usize),
    #[error("the job store's event subscription is not ready")]
    NotReady,
}

struct Caller {
    updates: broadcast::Sender<String>,
    /// Open event streams (capped) and result waits (not capped).
    streams: usize,
    waits: usize,
}

/// The callers with open streams, and the subscription's state.
#[derive(Clone)]
pub struct EventHub {
    callers: Arc<Mutex<HashMap<String, Caller>>>,
    max_per_caller: usize,
    subscribed: watch::Receiver<bool>,
}

/// One open stream or wait: its updates, and its place in the caller's count until dropped.
pub struct Subscription {
    pub updates: broadcast::Receiver<String>,
    hub: EventHub,
    subject: String,
    stream: bool,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut callers = self.hub.callers.lock().expect("hub lock");
        if let Some(caller) = callers.get_mut(&self.subject) {
            if self.stream {
                caller.streams -= 1;
            } else {
                caller.waits -= 1;
            }
            if caller.streams == 0 && caller.waits == 0 {
                callers.remove(&self.subject);
            }
        }
    }
}

impl EventHub {
    /// Starts the shared subscription (reconnecting after errors) until `shutdown`.
    pub fn start(store: JobStore, max_per_caller: usize, tasks: &Tasks) -> Self {
        let (subscribed_tx, subscribed) = watch::channel(false);
        let hub = Self { callers: Arc::default(), max_per_caller, subscribed };
        tasks.spawn("event hub", hub.clone().follow(store, subscribed_tx, tasks.stopping()));
        hub
    }

    /// Opens a stream for `subject`, once the shared subscription is in place (so
    /// no transition after this call is missed).
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, HubError> {
        self.open(subject, true).await
    }

    /// The transitions of `subject`'s jobs for a result long-poll: like
    /// [`EventHub::subscribe`], but not counted against the cap on streams.
    pub async fn wait_updates(&self, subject: &str) -> Result<Subscription, HubError> {
        self.open(subject, false).await
    }

    async fn open(&self, subject: &str, stream: bool) -> Result<Subscription, HubError> {
        let mut subscribed = self.subscribed.clone();
        let ready = tokio::time::timeout(Duration::from_secs(5), subscribed.wait_for(|s| *s)).await;
        if !matches!(ready, Ok(Ok(_))) {
            return Err(HubError::NotReady);
        }
        let mut callers = self.callers.lock().expect("hub lock");
        let caller = callers.entry(subject.to_owned()).or_insert_with(|| Caller {
            updates: broadcast::channel(BUFFER).0,
            streams: 0,
            waits: 0,
        });
        if stream && caller.streams >= self.max_per_caller {
            return Err(HubError::TooMany(caller.streams));
        }
        if stream {
            caller.streams += 1;
        } else {
            caller.waits += 1;
        }
        let updates = caller.updates.subscribe();
        Ok(Subscription { updates, hub: self.clone(), subject: subject.to_owned(), stream })
    }

    async fn follow(self, store: JobStore, subscribed: watch::Sender<bool>, shutdown: CancellationToken) {
        let prefix = store.channel("");
        let mut backoff = Duration::from_millis(100);
        loop {
            match store.pubsub().await {
                Ok(mut pubsub) => match pubsub.psubscribe(format!("{prefix}*")).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        subscribed.send_replace(true);
                        let mut messages = pubsub.into_on_message();
                        loop {
                            let message = tokio::select! {
                                () = shutdown.cancelled() => return,
                                message = messages.next() => message,
                            };
                            let Some(message) = message else { break };
                            let Some(subject) = message.get_channel_name().strip_prefix(&prefix) else { continue };
                            let text: String = message.get_payload().unwrap_or_default();
                            self.deliver(subject, text);
                        }
                        subscribed.send_replace(false);
                        tracing::warn!("job event subscription lost; resubscribing");
                    }
                    Err(error) => tracing::warn!(%error, "job event subscription failed"),
                },
                Err(error) => tracing::warn!(%error, "job event connection failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn deliver(&self, subject: &str, text: String) {
        if let Some(caller) = self.callers.lock().expect("hub lock").get(subject) {
            let _ = caller.updates.send(text); // no receiver left: nobody to tell
        }
    }
}

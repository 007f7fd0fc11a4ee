//! Reads the results topic into the job store. Offsets are stored for commit only
//! after Redis has the event, so a crash replays events rather than losing them;
//! applying an event twice changes nothing. An event that cannot be read ends its
//! job `failed` with the reason ([`crate::ending::end_unreadable`]).

use std::time::Duration;

use gitfaas_common::schema::decode_event;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use crate::ending::{end_unreadable, ResultPublisher};
use crate::store::JobStore;

pub async fn consume(
    consumer: StreamConsumer,
    store: JobStore,
    publisher: ResultPublisher,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "results topic receive error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let payload = message.payload().unwrap_or_default();
        let decoded = decode_event(payload);
        let mut backoff = Duration::from_millis(100);
        loop {
            let stored = match &decoded {
                Ok(event) => store
                    .apply(event)
                    .await
                    .map(|applied| tracing::debug!(job_id = %event.job_id(), applied, "event stored")),
                Err(error) => {
                    end_unreadable(&store, Some(&publisher), message.key(), payload, &error.to_string()).await
                }
            };
            match stored {
                Ok(()) => break,
                Err(error) => tracing::warn!(%error, offset = message.offset(), "storing event failed; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        if let Err(error) = consumer.store_offset_from_message(&message) {
            tracing::debug!(%error, "offset not stored");
        }
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "final commit");
    }
}

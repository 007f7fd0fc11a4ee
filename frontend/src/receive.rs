//! The frontend's topic readers share one way to wait for their next message.

use std::time::Duration;

use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use tokio_util::sync::CancellationToken;

/// The next message of `consumer`, or `None` once `shutdown` is cancelled. A
/// receive error is logged (naming `topic`) and retried after half a second.
pub async fn next_message<'a, C: ConsumerContext + 'static>(
    consumer: &'a StreamConsumer<C>,
    shutdown: &CancellationToken,
    topic: &str,
) -> Option<BorrowedMessage<'a>> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            received = consumer.recv() => match received {
                Ok(message) => return Some(message),
                Err(error) => {
                    tracing::warn!(%error, topic, "receive error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
        }
    }
}

//! The one way a gitfaas service publishes: [`Publisher`].

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::Header;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::message::{Message, Topic};
use super::trace::trace_headers;
use crate::settings::{KafkaSettings, TopicSettings};

/// How long a send may wait for room in the producer's local queue. Delivery itself
/// is bounded by `message.timeout.ms` (30 s, [`super::reliable_producer_config`]): a
/// send returns once the broker acknowledged the message, or with the error that
/// ended its delivery.
pub const SEND_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("message could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("message not acknowledged by the broker: {0}")]
    Broker(#[from] KafkaError),
}

/// The idempotent producer of [`super::reliable_producer_config`], the configured
/// topic names, the current trace context on every message, and
/// [`SEND_QUEUE_TIMEOUT`]. A [`Message`] goes to its own topic under its own key;
/// cloning shares the producer.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    topics: Arc<TopicSettings>,
}

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let producer = super::reliable_producer_config(settings).create()?;
        Ok(Self { producer, topics: Arc::new(settings.topics.clone()) })
    }

    /// Publishes `message` to its topic under its key, once the broker has it.
    pub async fn publish<M: Message>(&self, message: &M) -> Result<(), PublishError> {
        self.publish_to(None, message).await
    }

    /// Publishes `message` to `partition` of its topic (`None`: the partition its
    /// key hashes to), once the broker has it.
    pub async fn publish_to<M: Message>(&self, partition: Option<i32>, message: &M) -> Result<(), PublishError> {
        let (payload, key) = (serde_json::to_vec(message)?, message.key());
        let mut record = FutureRecord::<[u8], [u8]>::to(self.topics.name(M::TOPIC))
            .key(key.as_bytes())
            .payload(&payload)
            .headers(trace_headers());
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        self.deliver(record).await
    }

    /// Publishes `message` under its key to `topic` rather than its own: a job
    /// an executor hands over to the executors that have its runtime.
    pub async fn publish_as<M: Message>(&self, topic: Topic, message: &M) -> Result<(), PublishError> {
        let (payload, key) = (serde_json::to_vec(message)?, message.key());
        self.send_raw(self.topics.name(topic), Some(key.as_bytes()), &payload, &[]).await
    }

    /// The configured topic names.
    pub fn topics(&self) -> &TopicSettings {
        &self.topics
    }

    /// The configured name of `topic`.
    pub fn topic_name(&self, topic: Topic) -> &str {
        self.topics.name(topic)
    }

    /// Publishes a tombstone (no value) for `key` on `M`'s compacted topic: the
    /// end of what `key` named.
    pub async fn retract<M: Message>(&self, key: &str) -> Result<(), PublishError> {
        debug_assert!(M::TOPIC.is_compacted(), "a tombstone on a topic that is not compacted");
        let record = FutureRecord::<[u8], [u8]>::to(self.topics.name(M::TOPIC)).key(key.as_bytes());
        self.deliver(record.headers(trace_headers())).await
    }

    /// Publishes a message that could not be read to the dead-letter topic as it
    /// was, with `headers` (why, and where it came from) next to the trace context.
    pub async fn dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), PublishError> {
        self.send_raw(self.topics.name(Topic::DeadLetter), key, payload, headers).await
    }

    /// Publishes `payload` as it is to a topic that is not gitfaas's own (a
    /// trigger's output topic, a bench's floor), with `headers` next to the trace
    /// context.
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(), PublishError> {
        let headers =
            headers.iter().fold(trace_headers(), |all, (key, value)| all.insert(Header { key, value: Some(*value) }));
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.deliver(record).await
    }

    async fn deliver(&self, record: FutureRecord<'_, [u8], [u8]>) -> Result<(), PublishError> {
        self.producer
            .send(record, Timeout::After(SEND_QUEUE_TIMEOUT))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error.into())
    }

    /// How many partitions `topic` has, as the broker answers within `timeout`.
    pub async fn partitions(&self, topic: &str, timeout: Duration) -> Result<usize, KafkaError> {
        let (producer, topic) = (self.producer.clone(), topic.to_owned());
        let fetched = tokio::task::spawn_blocking(move || {
            let metadata = producer.client().fetch_metadata(Some(&topic), timeout)?;
            Ok(metadata.topics().first().map_or(0, |t| t.partitions().len()))
        });
        fetched.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// Whether the broker serves `topic`'s metadata within `timeout` (readiness).
    pub async fn serves(&self, topic: Topic, timeout: Duration) -> Result<(), KafkaError> {
        let (producer, topic) = (self.producer.clone(), self.topics.name(topic).to_owned());
        let fetched =
            tokio::task::spawn_blocking(move || producer.client().fetch_metadata(Some(&topic), timeout).map(|_| ()));
        fetched.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// Waits up to `timeout` for every message sent to be delivered (shutdown).
    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "producer not flushed");
        }
    }
}

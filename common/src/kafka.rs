//! Kafka helpers: client configuration from [`KafkaSettings`], idempotent topic
//! creation, the one [`Publisher`] every service sends through, and W3C trace
//! context (`traceparent`) carried in message headers.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use serde::Serialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::settings::KafkaSettings;

/// Base client configuration: brokers, the settings every gitfaas client shares, and
/// the operator's pass-through map last (it wins over all of them, but for what a
/// service sets for itself afterwards, such as its group id).
///
/// - `socket.nagle.disable`: jobs and results are small messages sent one at a time;
///   with Nagle's algorithm a second small write on a connection waits for the ACK of
///   the first, which a peer delays by up to 40 ms.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    with_defaults(settings, &[])
}

/// Brokers, the shared settings and `defaults`, then the pass-through map over them.
fn with_defaults(settings: &KafkaSettings, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers).set("socket.nagle.disable", "true");
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in &settings.client {
        config.set(key, value);
    }
    config
}

/// Producer configuration for messages that must not be lost or duplicated by
/// producer retries: idempotence and acknowledgement by all in-sync replicas (these
/// two the pass-through map cannot turn off).
///
/// - `linger.ms=0`: a job or result is sent at once rather than held up to 5 ms (the
///   librdkafka default) for a batch; under a burst, messages that queue while a
///   request is in flight still travel together in the next one.
pub fn reliable_producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = with_defaults(settings, &[("message.timeout.ms", "30000"), ("linger.ms", "0")]);
    config.set("enable.idempotence", "true").set("acks", "all");
    config
}

/// Consumer configuration of a job-path reader (the executors' jobs consumer, the
/// frontend's results consumer) in `group_id`.
///
/// - `fetch.wait.max.ms=100`: Kafka answers a waiting fetch as soon as data arrives,
///   so this bounds only how long an empty fetch is held — and with it how long a
///   partition resumed after a pause (all job slots were busy) waits to be included
///   in the next fetch (500 ms by default).
pub fn job_path_consumer_config(settings: &KafkaSettings, group_id: &str) -> ClientConfig {
    let mut config = with_defaults(settings, &[("fetch.wait.max.ms", "100")]);
    config.set("group.id", group_id);
    config
}

/// How long a send may wait for room in the producer's local queue. Delivery itself
/// is bounded by `message.timeout.ms` (30 s, [`reliable_producer_config`]): a send
/// returns once the broker acknowledged the message, or with the error that ended
/// its delivery.
pub const SEND_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("message could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("message not acknowledged by the broker: {0}")]
    Broker(#[from] KafkaError),
}

/// The one way a gitfaas service publishes: the idempotent producer of
/// [`reliable_producer_config`], the current trace context on every message, and
/// [`SEND_QUEUE_TIMEOUT`]. Cloning shares the producer.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
}

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Ok(Self { producer: reliable_producer_config(settings).create()? })
    }

    /// Publishes `message` as JSON under `key`, once the broker has it.
    pub async fn send<T: Serialize + ?Sized>(&self, topic: &str, key: &str, message: &T) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(message)?;
        self.send_raw(topic, Some(key.as_bytes()), &payload, &[]).await
    }

    /// Publishes `message` as JSON under `key` to `partition` of `topic` (`None`:
    /// the partition the key hashes to), once the broker has it.
    pub async fn send_to<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        message: &T,
    ) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(message)?;
        let mut record =
            FutureRecord::<[u8], [u8]>::to(topic).key(key.as_bytes()).payload(&payload).headers(trace_headers());
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        self.deliver(record).await
    }

    /// Publishes `payload` as it is (a dead-lettered message), with `headers` next
    /// to the trace context.
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

    /// Publishes a tombstone (no value) for `key`: on a compacted topic, its end.
    pub async fn tombstone(&self, topic: &str, key: &str) -> Result<(), PublishError> {
        self.deliver(FutureRecord::<[u8], [u8]>::to(topic).key(key.as_bytes()).headers(trace_headers())).await
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
            use rdkafka::producer::Producer;
            let metadata = producer.client().fetch_metadata(Some(&topic), timeout)?;
            Ok(metadata.topics().first().map_or(0, |t| t.partitions().len()))
        });
        fetched.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// Whether the broker serves `topic`'s metadata within `timeout` (readiness).
    pub async fn serves(&self, topic: &str, timeout: Duration) -> Result<(), KafkaError> {
        let (producer, topic) = (self.producer.clone(), topic.to_owned());
        let fetched = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            producer.client().fetch_metadata(Some(&topic), timeout).map(|_| ())
        });
        fetched.await.unwrap_or(Err(KafkaError::Canceled))
    }
}

impl From<FutureProducer> for Publisher {
    fn from(producer: FutureProducer) -> Self {
        Self { producer }
    }
}

/// Creates every configured topic that does not exist yet and waits until each
/// partition of each has a leader, retrying for about a minute while the broker is
/// starting. (Kafka answers a creation before the new partitions have elected their
/// leaders; a reader that asks for offsets or watermarks in between is refused with
/// `NotLeaderForPartition`.)
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let mut attempt = 0;
    loop {
        let ready = match create_topics(settings).await {
            Ok(()) => wait_for_leaders(settings).await,
            Err(error) => Err(error),
        };
        match ready {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 12 => {
                attempt += 1;
                tracing::warn!(%error, attempt, "kafka not ready for topic creation; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Polls the topics' metadata until every partition has a leader that answers for
/// it (about 15 s at most).
async fn wait_for_leaders(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let client: rdkafka::consumer::BaseConsumer = client_config(settings).create()?;
    let client = std::sync::Arc::new(client);
    for _ in 0..150 {
        let (client, topics) =
            (client.clone(), settings.topics.all().into_iter().map(str::to_owned).collect::<Vec<_>>());
        let led = tokio::task::spawn_blocking(move || -> Result<bool, KafkaError> {
            use rdkafka::consumer::Consumer;
            for topic in &topics {
                let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(5))?;
                let Some(found) = metadata.topics().first() else { return Ok(false) };
                if found.error().is_some()
                    || found.partitions().is_empty()
                    || found.partitions().iter().any(|p| p.leader() < 0 || p.error().is_some())
                {
                    return Ok(false);
                }
                // the metadata names a leader a moment before that broker serves the
                // partition: ask it for the offsets, as every reader will
                for partition in found.partitions() {
                    if client.fetch_watermarks(topic, partition.id(), Duration::from_secs(5)).is_err() {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        })
        .await
        .expect("metadata task");
        if led? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(KafkaError::AdminOp(RDKafkaErrorCode::LeaderNotAvailable))
}

async fn create_topics(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings).create()?;
    let topics: Vec<NewTopic<'_>> = settings
        .topics
        .all()
        .into_iter()
        // -1: the broker's default.replication.factor (1 on one node, 3 on a cluster that says so)
        .map(|name| {
            // one partition: its one owner in the frontends' group is the scheduler
            let partitions = if name == settings.topics.triggers { 1 } else { settings.partitions };
            let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
            // a function's or trigger's latest state is its truth: older ones may go
            if name == settings.topics.functions || name == settings.topics.triggers {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(%topic, ?code, "topic creation failed");
                })
            }
        }
    }
    Ok(())
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Headers carrying the current span's trace context (`traceparent`, `tracestate`).
fn trace_headers() -> OwnedHeaders {
    let mut carrier = HashMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut MapInjector(&mut carrier)));
    carrier.into_iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(rdkafka::message::Header { key: &key, value: Some(value.as_bytes()) })
    })
}

/// Makes the trace context found in `headers` (if any) the parent of `span`.
pub fn set_parent_from_headers<H: Headers>(span: &tracing::Span, headers: Option<&H>) {
    let Some(headers) = headers else { return };
    let carrier: HashMap<String, String> =
        headers.iter().filter_map(|h| Some((h.key.to_owned(), String::from_utf8(h.value?.to_vec()).ok()?))).collect();
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&MapExtractor(&carrier)));
    let _ = span.set_parent(parent);
}

//! Publishing several records atomically: a transactional producer, one
//! transaction at a time. Readers that read committed (every gitfaas reader:
//! librdkafka's default) see all of a transaction's records or none.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::Mutex;

use super::message::Message;
use super::publisher::{PublishError, SEND_QUEUE_TIMEOUT};
use super::trace::trace_headers;
use crate::settings::{KafkaSettings, TopicSettings};

/// How long a transaction's commit (or abort) may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// One record of a transaction.
pub struct Outgoing {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Outgoing {
    /// `message` to its own topic under its own key.
    pub fn message<M: Message>(topics: &TopicSettings, message: &M) -> Result<Self, serde_json::Error> {
        let payload = serde_json::to_vec(message)?;
        let key = Some(message.key().into_bytes());
        Ok(Self { topic: topics.name(M::TOPIC).to_owned(), key, payload, headers: Vec::new() })
    }
}

/// A transactional producer (`transactional.id` fences an earlier producer of the
/// same id: a restarted service's zombie can no longer commit).
pub struct Transactor {
    settings: KafkaSettings,
    id: String,
    producer: Mutex<Option<FutureProducer>>,
}

impl Transactor {
    /// A transactor of `transactional.id` `id`; its producer is made (and its
    /// transactions initialised) at the first commit.
    pub fn new(settings: &KafkaSettings, id: &str) -> Self {
        Self { settings: settings.clone(), id: id.to_owned(), producer: Mutex::new(None) }
    }

    /// Publishes `records` in one transaction; once this returns `Ok` they are
    /// committed, on `Err` none of them is visible to a committed reader.
    pub async fn commit(&self, records: &[Outgoing]) -> Result<(), PublishError> {
        let mut slot = self.producer.lock().await;
        let producer = match slot.as_ref() {
            Some(producer) => producer.clone(),
            None => {
                let made = self.make().await?;
                slot.insert(made).clone()
            }
        };
        let outcome = transact(&producer, records).await;
        if let Err(error) = &outcome {
            let fatal = matches!(error, KafkaError::Transaction(e) if e.is_fatal());
            let aborted = blocking(&producer, |p| p.abort_transaction(Timeout::After(TRANSACTION_TIMEOUT))).await;
            if fatal || aborted.is_err() {
                tracing::warn!(%error, "transactional producer dropped; the next commit makes a new one");
                *slot = None;
            }
        }
        outcome.map_err(PublishError::Broker)
    }

    async fn make(&self) -> Result<FutureProducer, KafkaError> {
        let mut config = super::reliable_producer_config(&self.settings);
        config.set("transactional.id", &self.id).set("transaction.timeout.ms", "60000");
        let producer: FutureProducer = config.create()?;
        blocking(&producer, |p| p.init_transactions(Timeout::After(TRANSACTION_TIMEOUT))).await?;
        Ok(producer)
    }
}

async fn transact(producer: &FutureProducer, records: &[Outgoing]) -> Result<(), KafkaError> {
    producer.begin_transaction()?;
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        let headers = record
            .headers
            .iter()
            .fold(trace_headers(), |all: OwnedHeaders, (key, value)| all.insert(Header { key, value: Some(value) }));
        let mut future = FutureRecord::<[u8], [u8]>::to(&record.topic).payload(&record.payload).headers(headers);
        if let Some(key) = &record.key {
            future = future.key(key);
        }
        deliveries.push(producer.send(future, Timeout::After(SEND_QUEUE_TIMEOUT)));
    }
    for delivery in deliveries {
        delivery.await.map_err(|(error, _)| error)?;
    }
    blocking(producer, |p| p.commit_transaction(Timeout::After(TRANSACTION_TIMEOUT))).await
}

async fn blocking(
    producer: &FutureProducer,
    call: impl FnOnce(&FutureProducer) -> Result<(), KafkaError> + Send + 'static,
) -> Result<(), KafkaError> {
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || call(&producer)).await.map_err(|_| KafkaError::Canceled)?
}

//! Publishing several records atomically: a transactional producer, one
//! transaction at a time. Readers that read committed (every gitfaas reader:
//! librdkafka's default) see all of a transaction's records or none.
//!
//! Commits that arrive while a transaction is under way are grouped into the next
//! one (group commit): back-to-back transactions of one producer wait for the
//! previous one's markers (the coordinator answers `CONCURRENT_TRANSACTIONS` and
//! librdkafka retries after 20 ms), so one transaction per commit capped a busy
//! executor near 40 commits a second.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use tokio::sync::oneshot::{self, error::TryRecvError};
use tokio::sync::Mutex;

use super::message::Message;
use super::publisher::{PublishError, SEND_QUEUE_TIMEOUT};
use super::trace::trace_headers;
use crate::settings::{KafkaSettings, TopicSettings};

/// How long a transaction's commit (or abort) may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the coordinator lets a transaction stay open (ours last milliseconds).
const OPEN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a commit whose outcome is unknown is asked again before it is aborted.
const COMMIT_RETRIES: usize = 3;

/// One record of a transaction.
#[derive(Clone)]
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
    /// Held by the commit that leads the group under way.
    producer: Mutex<Option<FutureProducer>>,
    /// Commits waiting for the next transaction.
    waiting: std::sync::Mutex<Vec<Waiting>>,
}

struct Waiting {
    records: Vec<Outgoing>,
    done: oneshot::Sender<Result<(), KafkaError>>,
}

impl Transactor {
    /// A transactor of `transactional.id` `id`; its producer is made (and its
    /// transactions initialised) at the first commit.
    pub fn new(settings: &KafkaSettings, id: &str) -> Self {
        Self {
            settings: settings.clone(),
            id: id.to_owned(),
            producer: Mutex::new(None),
            waiting: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Publishes `records` in one transaction (perhaps with other commits'
    /// records); once this returns `Ok` they are committed, on `Err` none of them
    /// is visible to a committed reader. A commit dropped while it waits may
    /// still be committed by the group it joined.
    pub async fn commit(&self, records: &[Outgoing]) -> Result<(), PublishError> {
        let (done, mut outcome) = oneshot::channel();
        self.waiting.lock().expect("waiting lock").push(Waiting { records: records.to_vec(), done });
        let mut slot = self.producer.lock().await;
        // a leader answers every commit it took before it lets the producer go:
        // either ours is answered or it is still waiting, and we lead it
        let answered = match outcome.try_recv() {
            Ok(answer) => answer,
            // taken by a leader that was dropped before it answered
            Err(TryRecvError::Closed) => Err(KafkaError::Canceled),
            Err(TryRecvError::Empty) => {
                let group = std::mem::take(&mut *self.waiting.lock().expect("waiting lock"));
                self.lead(&mut slot, group).await;
                outcome.await.unwrap_or(Err(KafkaError::Canceled))
            }
        };
        drop(slot);
        answered.map_err(PublishError::Broker)
    }

    /// Commits `group` in one transaction. If that fails and the group holds
    /// several commits, each is tried alone, so one commit's bad record cannot
    /// fail the others.
    async fn lead(&self, slot: &mut Option<FutureProducer>, group: Vec<Waiting>) {
        let all: Vec<&Outgoing> = group.iter().flat_map(|waiting| &waiting.records).collect();
        let outcome = self.transact(slot, &all).await;
        if outcome.is_err() && group.len() > 1 {
            for waiting in group {
                let alone: Vec<&Outgoing> = waiting.records.iter().collect();
                let _ = waiting.done.send(self.transact(slot, &alone).await);
            }
            return;
        }
        for waiting in group {
            let _ = waiting.done.send(outcome.clone());
        }
    }

    /// One transaction of `records`; a producer left unusable by its failure is
    /// dropped, and the next transaction makes a new one.
    async fn transact(&self, slot: &mut Option<FutureProducer>, records: &[&Outgoing]) -> Result<(), KafkaError> {
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
        outcome
    }

    async fn make(&self) -> Result<FutureProducer, KafkaError> {
        let mut config = super::reliable_producer_config(&self.settings);
        // a transaction left open by an executor that died holds every read-committed
        // reader of its partitions until the coordinator aborts it: after this long
        // (the coordinator looks every 10 s), and a record may wait as long to be sent
        let timeout = OPEN_TRANSACTION_TIMEOUT.as_millis().to_string();
        config
            .set("transactional.id", &self.id)
            .set("transaction.timeout.ms", &timeout)
            .set("message.timeout.ms", &timeout);
        let producer: FutureProducer = config.create()?;
        blocking(&producer, |p| p.init_transactions(Timeout::After(TRANSACTION_TIMEOUT))).await?;
        Ok(producer)
    }
}

async fn transact(producer: &FutureProducer, records: &[&Outgoing]) -> Result<(), KafkaError> {
    let start = std::time::Instant::now();
    producer.begin_transaction()?;
    // every record is enqueued before any delivery is awaited: their partitions join
    // the transaction in one AddPartitionsToTxn and their produce requests go out
    // together (awaiting each in turn cost two round trips per record)
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
        match producer.send_result(future) {
            Ok(delivery) => deliveries.push(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), future)) => {
                // no room in the send queue: this one waits for room (and its delivery)
                producer.send(future, Timeout::After(SEND_QUEUE_TIMEOUT)).await.map_err(|(error, _)| error)?;
            }
            Err((error, _)) => return Err(error),
        }
    }
    for delivery in deliveries {
        delivery.await.map_err(|_| KafkaError::Canceled)?.map_err(|(error, _)| error)?;
    }
    let delivered = start.elapsed();
    // a retriable failure (a timeout) leaves the commit's outcome unknown: it is asked
    // again, as librdkafka says to; aborting instead could make a caller that retries
    // commit the records a second time
    let mut asked_again = 0;
    let committed = loop {
        let committed = blocking(producer, |p| p.commit_transaction(Timeout::After(TRANSACTION_TIMEOUT))).await;
        match &committed {
            Err(KafkaError::Transaction(error)) if error.is_retriable() && asked_again < COMMIT_RETRIES => {
                tracing::warn!(%error, "transaction commit not confirmed; asking again");
                asked_again += 1;
            }
            _ => break committed,
        }
    };
    tracing::debug!(records = records.len(), ?delivered, total = ?start.elapsed(), "transaction");
    committed
}

async fn blocking(
    producer: &FutureProducer,
    call: impl FnOnce(&FutureProducer) -> Result<(), KafkaError> + Send + 'static,
) -> Result<(), KafkaError> {
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || call(&producer)).await.map_err(|_| KafkaError::Canceled)?
}

//! A [`StateView`] kept up to date from the state topic by one owned task, read
//! committed (a commit is seen with its job's result, never without it).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{StateCommit, StateView};
use crate::kafka::{decode, ConsumerBuilder, EndsExpected, Role, Topic};
use crate::settings::KafkaSettings;
use crate::tasks::Tasks;

const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The state view one service reads, and whether it has read what the topic
/// held when the service started.
#[derive(Clone)]
pub struct FollowedState {
    view: Arc<RwLock<StateView>>,
    ready: watch::Receiver<bool>,
}

impl FollowedState {
    /// Starts following the state topic from its beginning as `client`, in `tasks`.
    pub async fn start(settings: &KafkaSettings, client: &str, tasks: &Tasks) -> Result<Self, KafkaError> {
        let consumer = ConsumerBuilder::new(settings, Role::Replay, &format!("{client}-state"))
            .client_id(client)
            .reading_committed_to_the_end()
            .create_with(EndsExpected)?;
        let topic = settings.topics.name(Topic::State).to_owned();
        let consumer = Arc::new(consumer);
        let assigning = (consumer.clone(), topic.clone());
        let pending = tokio::task::spawn_blocking(move || assign_from_beginning(&assigning.0, &assigning.1))
            .await
            .map_err(|_| KafkaError::Canceled)??;
        let view = Arc::new(RwLock::new(StateView::default()));
        let (ready_tx, ready) = watch::channel(pending.is_empty());
        let follower = Follower { consumer, view: view.clone(), pending, ready: ready_tx };
        tasks.spawn("state follower", follower.run(tasks.stopping()));
        Ok(Self { view, ready })
    }

    /// Waits up to `within` until the view has read what the topic held at start.
    pub async fn ready(&self, within: Duration) -> bool {
        let mut ready = self.ready.clone();
        tokio::time::timeout(within, ready.wait_for(|r| *r)).await.is_ok_and(|r| r.is_ok())
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Reads the view.
    pub fn read<R>(&self, f: impl FnOnce(&StateView) -> R) -> R {
        f(&self.view.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// Assigns every partition from its beginning; the partitions that hold commits.
fn assign_from_beginning(consumer: &StreamConsumer<EndsExpected>, topic: &str) -> Result<HashSet<i32>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), LOOKUP_TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    let mut pending = HashSet::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())) {
        let (low, high) = consumer.fetch_watermarks(topic, partition, LOOKUP_TIMEOUT)?;
        if high > low {
            pending.insert(partition);
        }
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(pending)
}

struct Follower {
    consumer: Arc<StreamConsumer<EndsExpected>>,
    view: Arc<RwLock<StateView>>,
    /// Partitions not read to their end yet (their end-of-partition is awaited).
    pending: HashSet<i32>,
    ready: watch::Sender<bool>,
}

impl Follower {
    async fn run(mut self, stop: tokio_util::sync::CancellationToken) {
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => return,
                received = self.consumer.recv() => received,
            };
            match received {
                Ok(message) => match decode::<StateCommit>(message.payload().unwrap_or_default()) {
                    Ok(commit) => {
                        self.view.write().unwrap_or_else(|poisoned| poisoned.into_inner()).apply(&commit);
                    }
                    Err(error) => tracing::warn!(%error, offset = message.offset(), "unreadable state commit skipped"),
                },
                Err(KafkaError::PartitionEOF(partition)) => {
                    if self.pending.remove(&partition) && self.pending.is_empty() {
                        tracing::info!("state view caught up");
                        self.ready.send_replace(true);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "state topic receive error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

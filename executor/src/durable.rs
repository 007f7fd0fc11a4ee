//! The durable start of an at-most-once job: its offset counts as done
//! ([`OffsetTracker::settle`]) and is committed synchronously before the function
//! can have any effect, so that a redelivery — to this executor after a restart,
//! or to the partition's next owner — never starts it again.
//!
//! Offsets commit contiguously per partition: the commit waits until every
//! message received before the job on its partition is done (or settled too).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::offsets::{OffsetTracker, Received};
use crate::rebalance::JobConsumer;

/// How often a failed commit of a start is tried, over about half a minute.
const COMMIT_TRIES: u32 = 9;

/// Why a start could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum NotDurable {
    #[error("the partition was revoked before the start was committed")]
    Revoked,
    #[error("the start's offset could not be committed: {0}")]
    Commit(String),
}

/// Where the job's message came from, and how to commit past it.
pub struct StartCommit {
    pub consumer: Arc<JobConsumer>,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub message: Received,
}

impl StartCommit {
    /// Settles the job's offset, waits until the partition's committable position
    /// is past it, and commits that position synchronously — again, while the
    /// partition is still this consumer's, when the commit fails (a broker
    /// restarting, its group coordinator moving).
    pub async fn commit(&self) -> Result<(), NotDurable> {
        let mut backoff = Duration::from_millis(200);
        for _ in 1..COMMIT_TRIES {
            match self.commit_once().await {
                Err(NotDurable::Commit(error)) => {
                    tracing::warn!(%error, ?backoff, "at-most-once start commit failed; retrying")
                }
                done => return done,
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        self.commit_once().await
    }

    async fn commit_once(&self) -> Result<(), NotDurable> {
        let Received { tp, offset, .. } = &self.message;
        self.tracker.lock().expect("tracker lock").settle(&self.message);
        let next = loop {
            let position = {
                let tracker = self.tracker.lock().expect("tracker lock");
                if !tracker.owns(&self.message) {
                    return Err(NotDurable::Revoked);
                }
                tracker.committable(tp)
            };
            match position {
                Some(next) if next > *offset => break next,
                Some(_) => tokio::time::sleep(Duration::from_millis(50)).await, // an earlier message still runs
                None => return Err(NotDurable::Revoked),
            }
        };
        let (consumer, tp) = (self.consumer.clone(), tp.clone());
        let committed = tokio::task::spawn_blocking(move || {
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(&tp.0, tp.1, Offset::Offset(next)).map_err(|e| e.to_string())?;
            // stored too, so that the auto commit never moves the position back
            consumer.store_offsets(&list).map_err(|e| e.to_string())?;
            consumer.commit(&list, CommitMode::Sync).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| NotDurable::Commit(e.to_string()))?;
        committed.map_err(NotDurable::Commit)?;
        tracing::info!(partition = self.message.tp.1, offset, next, "at-most-once start committed");
        Ok(())
    }
}

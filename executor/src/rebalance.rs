//! The consumer's side of a rebalance: revoked partitions' running jobs finish or
//! are abandoned before the partition goes; newly assigned ones are resumed.
//!
//! Kafka's cooperative protocol (`cooperative-sticky`, or the `consumer` group
//! protocol of KIP-848) gives a moved partition to its new owner only after the
//! old one revoked it, so what the old owner finished and committed in the revoke
//! is not run again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitfaas_common::metrics::ConsumerLag;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use crate::cancel::Controls;
use crate::offsets::{OffsetTracker, TopicPartition};

/// The jobs consumer, with its rebalance handling.
pub type JobConsumer = StreamConsumer<WorkerContext>;

/// Before a partition goes to another member: lets its running jobs finish for up
/// to `revoke_grace`, abandons the rest, commits what is done and forgets the
/// partition's in-flight offsets, so that nothing is committed for it any more.
pub struct WorkerContext {
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub controls: Arc<Controls>,
    pub revoke_grace: Duration,
    /// The jobs consumer's lag, from librdkafka's statistics.
    pub lag: ConsumerLag,
}

impl ClientContext for WorkerContext {
    fn stats(&self, statistics: Statistics) {
        self.lag.record("executor", &statistics);
    }
}

impl ConsumerContext for WorkerContext {
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let offsets: Vec<(i32, Offset)> =
                    offsets.elements().iter().map(|e| (e.partition(), e.offset())).collect();
                tracing::debug!(?offsets, "offsets committed");
            }
            Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                let offsets: Vec<(i32, Offset)> =
                    offsets.elements().iter().map(|e| (e.partition(), e.offset())).collect();
                tracing::warn!(%error, ?offsets, "offset commit failed; the auto commit retries it");
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else { return };
        let revoked: Vec<TopicPartition> =
            list.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
        let deadline = std::time::Instant::now() + self.revoke_grace;
        let mut running = self.controls.running_on(&revoked);
        while running > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            running = self.controls.running_on(&revoked);
        }
        let abandoned = if running > 0 { self.controls.abandon(&revoked) } else { 0 };
        if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(%error, "commit before revocation");
        }
        let mut tracker = self.tracker.lock().expect("tracker lock");
        for tp in &revoked {
            tracker.forget(tp);
        }
        tracing::info!(partitions = ?revoked.iter().map(|tp| tp.1).collect::<Vec<_>>(), abandoned, "partitions revoked");
    }

    /// New partitions are resumed: a partition keeps the paused flag this consumer
    /// gave it before it was revoked, and assigned back it would never be fetched
    /// while the worker idles.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(list) = rebalance else { return };
        if let Err(error) = consumer.resume(list) {
            tracing::warn!(%error, "resuming assigned partitions failed");
        }
        let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
        tracing::info!(?partitions, "partitions assigned");
    }
}

//! The consumer's side of a rebalance: revoked partitions' running jobs finish or
//! are abandoned, newly assigned ones are held for the handover, and commits the
//! broker confirmed settle their partitions (see [`OffsetTracker::unsettled`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::cancel::Controls;
use crate::handover::Handover;
use crate::offsets::{OffsetTracker, TopicPartition};

/// Before a partition goes to another member: lets its running jobs finish for up
/// to `revoke_grace`, abandons the rest, commits what is done and forgets the
/// partition's in-flight offsets, so that nothing is committed for it any more.
pub struct WorkerContext {
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub controls: Arc<Controls>,
    pub revoke_grace: Duration,
    pub handover: Arc<Handover>,
}

impl ClientContext for WorkerContext {}

impl ConsumerContext for WorkerContext {
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let mut tracker = self.tracker.lock().expect("tracker lock");
                for e in offsets.elements() {
                    if let Offset::Offset(offset) = e.offset() {
                        tracker.committed(&(e.topic().to_owned(), e.partition()), offset);
                    }
                }
                drop(tracker);
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
        self.handover.revoked(&revoked);
        tracing::info!(partitions = ?revoked.iter().map(|tp| tp.1).collect::<Vec<_>>(), abandoned, "partitions revoked");
    }

    /// New partitions are held for the handover (see [`Handover`]), or resumed: a
    /// partition keeps the paused flag this consumer gave it before it was revoked,
    /// and assigned back it would never be fetched while the worker idles.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(list) = rebalance else { return };
        self.handover.assigned(consumer, list);
        let partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
        tracing::info!(?partitions, "partitions assigned");
    }
}

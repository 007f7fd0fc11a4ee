//! The Kafka side of the executor: a consumer-group member on the jobs topic that
//! runs up to `slots` jobs at once and never stops polling.
//!
//! When every slot is busy the assigned partitions are paused (and polling goes on,
//! so a long job never exceeds `max.poll.interval.ms`); they resume when a slot
//! frees. A job's offset is stored for commit only once its result was acknowledged
//! by the broker, and only as part of the contiguous prefix per partition
//! ([`OffsetTracker`]).
//!
//! Every run is registered with [`Controls`]: an owner's cancel request kills it,
//! and when a rebalance takes a partition away, its running jobs get
//! `revoke_grace` to finish and publish; the rest are abandoned (killed, no result)
//! and the partition's new owner runs them again — one result either way.
//!
//! This file keeps the loop; what each message comes to — its attempts, its one
//! result, a dead letter — is [`crate::processing`]'s, on decisions of
//! [`crate::delivery`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitfaas_common::kafka::set_parent_from_headers;
use gitfaas_common::observer::HEARTBEAT_EVERY;
use gitfaas_common::schema::decode_job;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cancel::{Admission, Controls};
use crate::delivery;
use crate::durable::StartCommit;
use crate::heartbeat::{publish_heartbeats, Beat, Load};
use crate::offsets::{OffsetTracker, TopicPartition};
use crate::processing::Processing;

pub use crate::rebalance::WorkerContext;

pub type JobConsumer = StreamConsumer<WorkerContext>;

pub struct Worker {
    pub consumer: Arc<JobConsumer>,
    /// Port of the metrics and health listener, when `executor.metrics_listen` is set.
    pub ops_port: Option<u16>,
    pub processing: Processing,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub slots: Arc<Semaphore>,
    pub grace: Duration,
    pub controls: Arc<Controls>,
    /// True once the recent cancel requests have been read.
    pub cancels_ready: tokio::sync::watch::Receiver<bool>,
    /// Stops following cancel requests when the worker is done.
    pub stop_following: CancellationToken,
}

impl Worker {
    /// Consumes until `shutdown` is cancelled, then lets running jobs finish (up to
    /// the grace period), commits and returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let _stop_following = self.stop_following.clone().drop_guard();
        let mut ready = self.cancels_ready.clone();
        let wait = Duration::from_secs(60);
        if tokio::time::timeout(wait, ready.wait_for(|ready| *ready)).await.is_err() {
            tracing::warn!("cancel requests not read within 60 s; taking jobs anyway");
        }
        let beat = Beat {
            publisher: self.processing.publisher.clone(),
            topic: self.processing.topics.observer.clone(),
            executor_id: self.processing.runner.executor_id.clone(),
            interval: HEARTBEAT_EVERY,
        };
        let load = Load {
            tracker: self.tracker.clone(),
            slots: self.slots.clone(),
            total_slots: self.processing.runner.settings.slots,
        };
        let heartbeats = tokio::spawn(publish_heartbeats(beat, load, shutdown.clone()));
        let mut running = JoinSet::new();
        let mut pending: VecDeque<OwnedMessage> = VecDeque::new();
        loop {
            while running.try_join_next().is_some() {}
            let Some(permit) = self.free_slot(&mut pending, &shutdown).await else { break };
            let message = match pending.pop_front() {
                Some(message) => message,
                None => tokio::select! {
                    () = shutdown.cancelled() => break,
                    received = self.consumer.recv() => match received {
                        Ok(message) => self.accept(&message),
                        Err(error) => {
                            tracing::warn!(%error, "kafka receive error");
                            continue;
                        }
                    },
                },
            };
            running.spawn(self.clone().handle(message, permit));
        }
        tracing::info!(running = running.len(), "draining running jobs");
        if tokio::time::timeout(self.grace, self.drain(&mut running)).await.is_err() {
            tracing::warn!(abandoned = running.len(), "grace period over; unfinished jobs will be redelivered");
            running.abort_all();
        }
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(%error, "final commit");
        }
        if let Some(pool) = &self.processing.runner.warm {
            pool.shutdown().await;
        }
        let _ = tokio::time::timeout(2 * HEARTBEAT_EVERY, heartbeats).await; // the `stopped` one
    }

    /// Waits for the running jobs while still polling, with every partition paused:
    /// the group's rebalances (another executor joining or leaving) are served
    /// rather than stalled until this one exits. Messages fetched meanwhile are left
    /// for whoever owns their partition next (their offsets are never committed).
    async fn drain(&self, running: &mut JoinSet<()>) {
        self.set_paused(true);
        loop {
            tokio::select! {
                joined = running.join_next() => if joined.is_none() { return },
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        tracing::debug!(partition = message.partition(), offset = message.offset(), "left while draining");
                        self.set_paused(true); // a partition assigned during the drain
                    }
                    Err(error) => {
                        tracing::warn!(%error, "kafka receive error while draining");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
    }

    fn accept(&self, message: &rdkafka::message::BorrowedMessage<'_>) -> OwnedMessage {
        let tp = (message.topic().to_owned(), message.partition());
        self.tracker.lock().expect("tracker lock").begin(&tp, message.offset());
        message.detach()
    }

    /// A free slot; while there is none, partitions are paused and polling goes on.
    async fn free_slot(
        &self,
        pending: &mut VecDeque<OwnedMessage>,
        shutdown: &CancellationToken,
    ) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.set_paused(true);
        let permit = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break None,
                permit = self.slots.clone().acquire_owned() => break permit.ok(),
                received = self.consumer.recv() => match received {
                    // fetched before the pause took effect: keep it, in order
                    Ok(message) => pending.push_back(self.accept(&message)),
                    Err(error) => tracing::warn!(%error, "kafka receive error while paused"),
                },
            }
        };
        self.set_paused(false);
        permit
    }

    /// Pauses or resumes the whole assignment (for want of slots, or to drain).
    fn set_paused(&self, paused: bool) {
        let Ok(assignment) = self.consumer.assignment() else { return };
        let result = if paused { self.consumer.pause(&assignment) } else { self.consumer.resume(&assignment) };
        if let Err(error) = result {
            tracing::warn!(%error, paused, "pause/resume failed");
        }
    }

    async fn handle(self: Arc<Self>, message: OwnedMessage, _slot: OwnedSemaphorePermit) {
        let busy = self.processing.metrics.slots_busy.clone();
        busy.inc();
        let _busy = DecOnDrop(busy);
        let tp: TopicPartition = (message.topic().to_owned(), message.partition());
        let span = tracing::info_span!(
            "process job",
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = %tp.0,
            messaging.kafka.partition = tp.1,
            messaging.kafka.offset = message.offset(),
            job_id = tracing::field::Empty,
        );
        set_parent_from_headers(&span, message.headers());
        let done = async {
            let payload = message.payload().unwrap_or_default();
            let job = match decode_job(payload) {
                Ok(job) => job,
                Err(error) => {
                    return (self.processing.reject_malformed(message.key(), payload, &error.to_string()).await, None)
                }
            };
            tracing::Span::current().record("job_id", tracing::field::display(job.id));
            if !self.tracker.lock().expect("tracker lock").owns(&tp, message.offset()) {
                tracing::info!("partition revoked before the job started; its new owner runs it");
                return (false, None);
            }
            match self.controls.admit(job.id, tp.clone()) {
                Admission::Cancelled(request) => {
                    tracing::info!(request.result_published, "job cancelled before it started");
                    let end = delivery::cancelled_before_start(&job, &request, &self.processing.runner.executor_id);
                    (self.processing.conclude(end).await, None)
                }
                Admission::Run(guard) => {
                    let start = StartCommit {
                        consumer: self.consumer.clone(),
                        tracker: self.tracker.clone(),
                        tp: tp.clone(),
                        offset: message.offset(),
                    };
                    (self.processing.process(job, &guard, &start).await, Some(guard))
                }
            }
        }
        .instrument(span)
        .await;
        let (done, _guard) = done; // held until the offset is stored: a revocation waits for it
        if done {
            let next = self.tracker.lock().expect("tracker lock").finish(&tp, message.offset());
            if let Some(next) = next {
                self.store_offset(&tp, next);
            }
        }
    }

    /// Stores the offset and commits it at once (asynchronously): a partition that
    /// moves to another member right after this job — at a rebalance, or when a
    /// broker hands it over before this member has let go — resumes after it instead
    /// of running it again. The timer-driven auto commit stays as a backstop.
    fn store_offset(&self, tp: &TopicPartition, next: i64) {
        let mut list = TopicPartitionList::new();
        if list.add_partition_offset(&tp.0, tp.1, Offset::Offset(next)).is_ok() {
            if let Err(error) = self.consumer.store_offsets(&list) {
                tracing::debug!(%error, partition = tp.1, "offset not stored (partition revoked?)");
                return;
            }
            if let Err(error) = self.consumer.commit(&list, CommitMode::Async) {
                tracing::warn!(%error, partition = tp.1, offset = next, "offset commit not sent");
            }
        }
    }
}

/// Gives a busy slot back in the gauge however the job's task ends.
struct DecOnDrop(prometheus_client::metrics::gauge::Gauge);

impl Drop for DecOnDrop {
    fn drop(&mut self) {
        self.0.dec();
    }
}

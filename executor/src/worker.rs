//! The Kafka side of the executor: a consumer-group member on the jobs topic that
//! runs up to `slots` jobs at once, keeps up to `prefetch` more fetched and
//! waiting, and never stops polling.
//!
//! Fetched jobs wait in a local backlog, in the order they arrived, and a slot
//! that frees takes the next one at once — no fetch lies between a job ending
//! and the next one starting. Only when every slot is busy *and* the backlog
//! holds `prefetch` jobs are the assigned partitions paused (polling goes on, so
//! a long job never exceeds `max.poll.interval.ms`); they resume once half the
//! backlog is handed out ([`Flow`]), so the refill is fetched while the rest runs. A
//! job's offset is stored for commit only once its result was acknowledged by the
//! broker, and only as part of the contiguous prefix per partition
//! ([`OffsetTracker`]): a waiting job holds back its partition's commit, so
//! whoever owns the partition next runs it if this executor does not.
//!
//! Every run is registered with [`Controls`] when a slot takes it: an owner's
//! cancel request kills it (and one seen before keeps a waiting job from ever
//! running), and when a rebalance takes a partition away, its running jobs get
//! `revoke_grace` to finish and publish; the rest are abandoned (killed, no
//! result) and the partition's new owner runs them again — one result either
//! way. Waiting jobs of a revoked partition are dropped unrun ([`Received`]
//! carries the assignment they came with).
//!
//! This file keeps the loop; what each message comes to — its attempts, its one
//! result, a dead letter — is [`crate::processing`]'s, on decisions of
//! [`crate::delivery`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitfaas_common::kafka::{decode, set_parent_from_headers, Topic};
use gitfaas_common::observer::HEARTBEAT_EVERY;
use gitfaas_common::tasks::Tasks;
use gitfaas_common::Job;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cancel::{Admission, Controls};
use crate::delivery;
use crate::durable::StartCommit;
use crate::flow::Flow;
use crate::heartbeat::{publish_heartbeats, Beat, Load};
use crate::offsets::{OffsetTracker, Received, TopicPartition};
use crate::processing::Processing;

pub use crate::rebalance::{JobConsumer, WorkerContext};

/// A fetched job waiting for a slot.
type Waiting = (OwnedMessage, Received);

pub struct Worker {
    /// The jobs topic's consumer, in the executors' group.
    pub consumer: Arc<JobConsumer>,
    /// The hand-over topics' consumer, in a group of its own ([`crate::handover`]):
    /// its jobs share the slots, the backlog and the offset tracker.
    pub handover: Option<Arc<JobConsumer>>,
    /// Port of the metrics and health listener, when `executor.metrics_listen` is set.
    pub ops_port: Option<u16>,
    pub processing: Processing,
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub slots: Arc<Semaphore>,
    /// Fetched jobs that may wait for a slot before the partitions are paused.
    pub prefetch: usize,
    /// Per consumer (jobs topic, hand-over topics): a wake-up of its fetcher is
    /// under way ([`Worker::wake_fetcher`]).
    pub waking: [Arc<std::sync::atomic::AtomicBool>; 2],
    pub grace: Duration,
    pub controls: Arc<Controls>,
    /// True once the recent cancel requests have been read.
    pub cancels_ready: tokio::sync::watch::Receiver<bool>,
    /// The executor's background tasks (cancel requests, the ops listener): they
    /// stop when the worker's run ends.
    pub tasks: Tasks,
}

impl Worker {
    /// Consumes until `shutdown` is cancelled, then lets running jobs finish (up to
    /// the grace period), commits and returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ready = self.cancels_ready.clone();
        let wait = Duration::from_secs(60);
        if tokio::time::timeout(wait, ready.wait_for(|ready| *ready)).await.is_err() {
            tracing::warn!("cancel requests not read within 60 s; taking jobs anyway");
        }
        let beat = Beat {
            publisher: self.processing.publisher.clone(),
            executor_id: self.processing.runner.executor_id.clone(),
            interval: HEARTBEAT_EVERY,
        };
        let load = Load { slots: self.slots.clone(), total_slots: self.processing.runner.settings.slots };
        let heartbeats = tokio::spawn(publish_heartbeats(beat, load, shutdown.clone()));
        let mut running = JoinSet::new();
        let mut backlog: VecDeque<Waiting> = VecDeque::new();
        let mut flow = Flow::new(self.prefetch);
        loop {
            while running.try_join_next().is_some() {}
            self.start_waiting(&mut backlog, &mut running);
            if let Some(pause) = flow.update(backlog.len(), self.slots.available_permits()) {
                self.set_paused(pause);
                if !pause {
                    self.wake_fetcher();
                }
            }
            self.processing.metrics.prefetched.set(backlog.len() as i64);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                permit = self.slots.clone().acquire_owned(), if !backlog.is_empty() => {
                    let (Ok(permit), Some(waiting)) = (permit, backlog.pop_front()) else { break };
                    running.spawn(self.clone().handle(waiting, permit));
                }
                // a job ended: its slot may take the next one (checked above)
                Some(_) = running.join_next(), if !running.is_empty() && backlog.is_empty() => {}
                received = self.consumer.recv() => match received {
                    // fetched even when paused: a fetch under way when the pause came
                    Ok(message) => backlog.push_back(self.accept(&message)),
                    Err(error) => tracing::warn!(%error, "kafka receive error"),
                },
                received = recv_from(self.handover.as_deref()) => match received {
                    Ok(message) => backlog.push_back(self.accept(&message)),
                    Err(error) => tracing::warn!(%error, "kafka receive error (hand-over topics)"),
                },
            }
        }
        self.processing.metrics.prefetched.set(0);
        // waiting jobs are left for whoever owns their partition next: their offsets
        // hold the commit back, and none of them has started
        drop(backlog);
        tracing::info!(running = running.len(), "draining running jobs");
        if tokio::time::timeout(self.grace, self.drain(&mut running)).await.is_err() {
            tracing::warn!(abandoned = running.len(), "grace period over; unfinished jobs will be redelivered");
            running.abort_all();
        }
        for consumer in self.consumers() {
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(%error, "final commit");
            }
        }
        if let Some(pool) = &self.processing.runner.warm {
            pool.shutdown().await;
        }
        let _ = tokio::time::timeout(2 * HEARTBEAT_EVERY, heartbeats).await; // the `stopped` one
        self.tasks.shutdown(Duration::from_secs(5)).await;
        self.processing.publisher.flush(Duration::from_secs(5)).await;
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
                received = self.consumer.recv() => self.left_while_draining(received).await,
                received = recv_from(self.handover.as_deref()) => self.left_while_draining(received).await,
            }
        }
    }

    async fn left_while_draining(&self, received: KafkaResult<BorrowedMessage<'_>>) {
        match received {
            Ok(message) => {
                tracing::debug!(partition = message.partition(), offset = message.offset(), "left while draining");
                self.set_paused(true); // a partition assigned during the drain
            }
            Err(error) => {
                tracing::warn!(%error, "kafka receive error while draining");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Both consumers: the jobs topic's and, if any, the hand-over topics'.
    fn consumers(&self) -> impl Iterator<Item = &Arc<JobConsumer>> {
        std::iter::once(&self.consumer).chain(self.handover.as_ref())
    }

    /// The consumer that reads `topic`: offsets go back through it.
    fn consumer_of(&self, topic: &str) -> &Arc<JobConsumer> {
        match &self.handover {
            Some(handover) if topic != self.processing.publisher.topic_name(Topic::Jobs) => handover,
            _ => &self.consumer,
        }
    }

    fn accept(&self, message: &BorrowedMessage<'_>) -> Waiting {
        let tp = (message.topic().to_owned(), message.partition());
        let received = self.tracker.lock().expect("tracker lock").begin(&tp, message.offset());
        (message.detach(), received)
    }

    /// Hands waiting jobs to the slots free now, oldest first; a job whose
    /// partition was revoked since it was fetched is dropped unrun (its new
    /// owner runs it).
    fn start_waiting(self: &Arc<Self>, backlog: &mut VecDeque<Waiting>, running: &mut JoinSet<()>) {
        backlog.retain(|(_, received)| {
            let owned = self.tracker.lock().expect("tracker lock").owns(received);
            if !owned {
                tracing::info!(
                    partition = received.tp.1,
                    offset = received.offset,
                    "partition revoked before the job started; its new owner runs it"
                );
            }
            owned
        });
        while !backlog.is_empty() {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else { return };
            let waiting = backlog.pop_front().expect("not empty");
            running.spawn(self.clone().handle(waiting, permit));
        }
    }

    /// Makes the consumer fetch the resumed partitions now. librdkafka applies a
    /// resume on its main thread and does not wake the broker threads that fetch:
    /// an idle one sleeps up to a second (its fixed IO wait) before it sees the
    /// partition fetchable again — the 0.9 s that every job waited behind a pause.
    /// A request to each leader (an offset look-up, its answer unused) wakes them.
    /// At most one is under way at a time per consumer, each on its own: a slow
    /// look-up on the hand-over topics never holds back the jobs topic's wake-up.
    fn wake_fetcher(&self) {
        for (consumer, waking) in self.consumers().zip(self.waking.iter()) {
            if consumer.assignment().map_or(true, |assigned| assigned.count() == 0) {
                continue; // nothing to fetch, nothing to wake (and an empty look-up waits out its timeout)
            }
            if waking.swap(true, std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            let (consumer, waking) = (consumer.clone(), waking.clone());
            // a detached blocking call, bounded by its timeout; nothing waits for it
            drop(tokio::task::spawn_blocking(move || {
                let now = chrono::Utc::now().timestamp_millis();
                if let Err(error) = consumer.offsets_for_timestamp(now, Duration::from_secs(2)) {
                    tracing::debug!(%error, "waking the fetcher");
                }
                waking.store(false, std::sync::atomic::Ordering::SeqCst);
            }));
        }
    }

    /// Pauses or resumes the whole assignment (for want of slots, or to drain).
    fn set_paused(&self, paused: bool) {
        for consumer in self.consumers() {
            let Ok(assignment) = consumer.assignment() else { continue };
            let result = if paused { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
            if let Err(error) = result {
                tracing::warn!(%error, paused, "pause/resume failed");
            }
        }
    }

    async fn handle(self: Arc<Self>, (message, received): Waiting, _slot: OwnedSemaphorePermit) {
        let busy = self.processing.metrics.slots_busy.clone();
        busy.inc();
        let _busy = DecOnDrop(busy);
        let tp: TopicPartition = received.tp.clone();
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
            let job = match decode::<Job>(payload) {
                Ok(job) => job,
                Err(error) => {
                    return (self.processing.reject_malformed(message.key(), payload, &error.to_string()).await, None)
                }
            };
            tracing::Span::current().record("job_id", tracing::field::display(job.id));
            if !self.tracker.lock().expect("tracker lock").owns(&received) {
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
                    // a job from a hand-over topic is never handed over again
                    let handed_over = tp.0 != self.processing.publisher.topic_name(Topic::Jobs);
                    let start = StartCommit {
                        consumer: self.consumer_of(&tp.0).clone(),
                        tracker: self.tracker.clone(),
                        message: received.clone(),
                    };
                    (self.processing.process(job, &guard, &start, handed_over).await, Some(guard))
                }
            }
        }
        .instrument(span)
        .await;
        let (done, _guard) = done; // held until the offset is stored: a revocation waits for it
        if done {
            let next = self.tracker.lock().expect("tracker lock").finish(&received);
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
            let consumer = self.consumer_of(&tp.0);
            if let Err(error) = consumer.store_offsets(&list) {
                tracing::debug!(%error, partition = tp.1, "offset not stored (partition revoked?)");
                return;
            }
            if let Err(error) = consumer.commit(&list, CommitMode::Async) {
                tracing::warn!(%error, partition = tp.1, offset = next, "offset commit not sent");
            }
        }
    }
}

/// The next message of `consumer`; never, when there is none.
async fn recv_from(consumer: Option<&JobConsumer>) -> KafkaResult<BorrowedMessage<'_>> {
    match consumer {
        Some(consumer) => consumer.recv().await,
        None => std::future::pending().await,
    }
}

/// Gives a busy slot back in the gauge however the job's task ends.
struct DecOnDrop(prometheus_client::metrics::gauge::Gauge);

impl Drop for DecOnDrop {
    fn drop(&mut self) {
        self.0.dec();
    }
}

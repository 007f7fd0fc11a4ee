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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use gitfaas_common::kafka::{set_parent_from_headers, PublishError, Publisher};
use gitfaas_common::observer::HEARTBEAT_EVERY;
use gitfaas_common::schema::{decode_job, JobStarted, SCHEMA_VERSION};
use gitfaas_common::settings::TopicSettings;
use gitfaas_common::{Job, JobEvent, JobResult};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cancel::{Admission, Controls, RunGuard, Stop};
use crate::delivery;
use crate::heartbeat::{publish_heartbeats, Beat, Load};
use crate::job::{JobRunner, RunOutcome};
use crate::offsets::{OffsetTracker, TopicPartition};

pub use crate::rebalance::WorkerContext;

pub type JobConsumer = StreamConsumer<WorkerContext>;

pub struct Worker {
    pub consumer: Arc<JobConsumer>,
    pub publisher: Publisher,
    pub runner: Arc<JobRunner>,
    pub topics: TopicSettings,
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
            publisher: self.publisher.clone(),
            topic: self.topics.observer.clone(),
            executor_id: self.runner.executor_id.clone(),
            interval: HEARTBEAT_EVERY,
        };
        let load =
            Load { tracker: self.tracker.clone(), slots: self.slots.clone(), total_slots: self.runner.settings.slots };
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
                Err(error) => return (self.reject_malformed(message.key(), payload, &error.to_string()).await, None),
            };
            tracing::Span::current().record("job_id", tracing::field::display(job.id));
            if !self.tracker.lock().expect("tracker lock").owns(&tp, message.offset()) {
                tracing::info!("partition revoked before the job started; its new owner runs it");
                return (false, None);
            }
            match self.controls.admit(job.id, tp.clone()) {
                Admission::Cancelled(request) => {
                    tracing::info!(request.result_published, "job cancelled before it started");
                    let end = delivery::cancelled_before_start(&job, &request, &self.runner.executor_id);
                    (self.conclude(end).await, None)
                }
                Admission::Run(guard) => (self.process(job, &guard).await, Some(guard)),
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

    /// Runs the job — again after infrastructure failures, and after function
    /// failures when the job asks for retries — and publishes its one result;
    /// true once the broker has it.
    async fn process(&self, job: Job, guard: &RunGuard) -> bool {
        let executor_id = &self.runner.executor_id;
        if let Some(result) = delivery::expired(&job, executor_id, Utc::now()) {
            tracing::info!("job expired before it could start");
            return self.publish_until_acked(result).await;
        }
        let settings = &self.runner.settings.delivery;
        let (mut tries, mut infrastructure_failures) = (0, 0);
        loop {
            if let Some(stop) = guard.stop() {
                return self.stopped(&job, stop, None).await;
            }
            tries += 1;
            let attempt = job.attempt + tries - 1;
            let started_at = Utc::now();
            let started = JobEvent::Started(JobStarted {
                version: SCHEMA_VERSION,
                job_id: job.id,
                owner: job.owner.clone(),
                executor_id: executor_id.clone(),
                attempt,
                started_at,
            });
            if let Err(error) = self.publish(&started).await {
                tracing::warn!(%error, "could not publish the started event");
            }
            let outcome = self.runner.run(&job, attempt, started_at, guard.token()).await;
            if let Some(stop) = guard.stop() {
                return self.stopped(&job, stop, Some(outcome)).await;
            }
            let result = outcome.result;
            infrastructure_failures += u32::from(outcome.infrastructure_failure);
            let reason = result.reason.as_deref().unwrap_or_default();
            tracing::info!(status = %result.status, attempt, reason, run_ms = result.timings.run_ms, "attempt finished");
            let next = delivery::after_attempt(
                settings,
                job.spec.retries,
                tries,
                infrastructure_failures,
                result.status,
                outcome.infrastructure_failure,
            );
            match next {
                delivery::Next::Publish => return self.publish_until_acked(result).await,
                delivery::Next::RetryAfter(backoff) => {
                    tracing::warn!(reason = result.reason.as_deref().unwrap_or(""), ?backoff, "retrying job");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = guard.token().cancelled() => {}
                    }
                }
                delivery::Next::GiveUp => return self.give_up(&job, result).await,
            }
        }
    }

    /// Publishes what `end` asks for; true once the job is done here.
    async fn conclude(&self, end: delivery::End) -> bool {
        match end {
            delivery::End::Leave => false,
            delivery::End::Done => true,
            delivery::End::Publish(result) => self.publish_until_acked(*result).await,
        }
    }

    /// A run stopped from outside (see [`delivery::stopped`]).
    async fn stopped(&self, job: &Job, stop: Stop, outcome: Option<RunOutcome>) -> bool {
        let end = delivery::stopped(job, stop, outcome, &self.runner.executor_id);
        match &end {
            delivery::End::Leave => tracing::info!("job abandoned: its partition was revoked"),
            delivery::End::Done => {}
            delivery::End::Publish(result) => tracing::info!(status = %result.status, "cancelled job ends"),
        }
        self.conclude(end).await
    }

    /// After repeated infrastructure failures: the job goes to the dead-letter topic
    /// with the reason, and gets a terminal `failed` result.
    async fn give_up(&self, job: &Job, last: JobResult) -> bool {
        let result = delivery::given_up(job, last);
        let reason = result.reason.as_deref().unwrap_or_default();
        tracing::error!(%reason, "dead-lettering job");
        let payload = serde_json::to_vec(job).expect("jobs serialise");
        if !self.dead_letter(&payload, reason).await {
            return false;
        }
        self.publish_until_acked(result).await
    }

    async fn dead_letter(&self, payload: &[u8], reason: &str) -> bool {
        let headers = [("gitfaas-error", reason.as_bytes())];
        match self.publisher.send_raw(&self.topics.dead_letter, None, payload, &headers).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, "dead-letter publish failed");
                false
            }
        }
    }

    async fn publish_until_acked(&self, result: JobResult) -> bool {
        let event = JobEvent::Finished(result.within_message_limit());
        let mut backoff = Duration::from_millis(200);
        for _ in 0..10 {
            match self.publish(&event).await {
                Ok(()) => return true,
                Err(error) => tracing::warn!(%error, "result not acknowledged; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        tracing::error!("result could not be published; the job will be redelivered");
        false
    }

    /// A message that is not a job of this schema goes to the dead-letter topic, and
    /// the job it names (by its fields if they are readable, else by the message key)
    /// gets a `rejected` result that says why; an owner left unknown is the one the
    /// frontend has on record.
    async fn reject_malformed(&self, key: Option<&[u8]>, payload: &[u8], reason: &str) -> bool {
        tracing::warn!(reason, "malformed job message");
        if !self.dead_letter(payload, reason).await {
            return false;
        }
        match delivery::malformed(key, payload, reason, &self.runner.executor_id) {
            Some(result) => self.publish_until_acked(result).await,
            None => {
                tracing::warn!("malformed job message names no job; dead-lettered only");
                true
            }
        }
    }

    /// Publishes `event` on the results topic under its job id.
    async fn publish(&self, event: &JobEvent) -> Result<(), PublishError> {
        self.publisher.send(&self.topics.results, &event.job_id().to_string(), event).await
    }
}

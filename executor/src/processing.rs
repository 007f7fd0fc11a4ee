//! Taking a job message to its one result: the attempts of a job (again after
//! infrastructure failures, and after function failures when the job asks), the
//! results of the endings [`delivery`] decides, the dead letter, and publishing
//! until the broker acknowledged. The consumer loop ([`crate::worker`]) stores a
//! message's offset once this says the job is done — an at-most-once job's before
//! its function runs ([`crate::durable`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gitfaas_common::kafka::{Publisher, Topic, Transactor};
use gitfaas_common::schema::{Attempt, Delivery, JobStarted};
use gitfaas_common::state::Effects;
use gitfaas_common::{Job, JobEvent, JobResult, JobStatus};
use tracing::Instrument;

use crate::cancel::{RunGuard, Stop};
use crate::durable::StartCommit;
use crate::job::{JobRunner, RunOutcome};
use crate::metrics::JobMetrics;
use crate::{context, delivery};

/// What a job needs on its way to a result: the runner of its attempts, and the
/// publisher its results and dead letters go out through.
pub struct Processing {
    pub publisher: Publisher,
    /// Publishes a result with the run's state commit and records, atomically.
    pub transactor: Transactor,
    pub runner: Arc<JobRunner>,
    pub metrics: JobMetrics,
    /// Topics functions publish to that the broker had: asked for once, and again
    /// after a result transaction fails (one may have been deleted since).
    pub known_topics: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Processing {
    /// Runs the job — again after infrastructure failures, and after function
    /// failures when the job asks for retries — and publishes its one result;
    /// true once the broker has it. An at-most-once job starts only once its
    /// `started` event is acknowledged and its offset committed (`start`).
    pub async fn process(&self, job: Job, guard: &RunGuard, start: &StartCommit, handed_over: bool) -> bool {
        let executor_id = &self.runner.executor_id;
        if let Some(result) = delivery::expired(&job, executor_id, Utc::now()) {
            tracing::info!("job expired before it could start");
            return self.publish_until_acked(result).await;
        }
        if self.runner.state.committed(&job) {
            tracing::info!("the job's state commit is applied, so its result is out: not run again");
            return true;
        }
        let settings = &self.runner.settings.delivery;
        let (mut tries, mut infrastructure_failures) = (0, 0);
        let at_most_once = job.spec.delivery == Delivery::AtMostOnce;
        let mut durable = false;
        loop {
            if let Some(stop) = guard.stop() {
                return self.stopped(&job, stop, None, durable).await;
            }
            tries += 1;
            let attempt = job.attempt + tries - 1;
            let started_at = Utc::now();
            let started = JobEvent::Started(JobStarted::new(&job, executor_id, attempt, started_at));
            if at_most_once && !durable {
                if !self.deliver(&started).await {
                    return false; // nothing ran and nothing is committed: a redelivery may start it
                }
                if let Err(error) = start.commit().await {
                    tracing::warn!(%error, "at-most-once start not durable; the job is not run");
                    let lost = JobResult::executor_lost(&Attempt::of(&job, executor_id, attempt));
                    return self.publish_until_acked(lost).await;
                }
                durable = true;
                guard.mark_durable();
            } else if let Err(error) = self.publisher.publish(&started).await {
                tracing::warn!(%error, "could not publish the started event");
            }
            self.metrics.started.inc();
            let outcome = self.runner.run(&job, attempt, started_at, guard.token()).await;
            if let Some(stop) = guard.stop() {
                return self.stopped(&job, stop, Some(outcome), durable).await;
            }
            if let Some(topic) = outcome.handover.filter(|_| !handed_over) {
                return self.hand_over(&job, topic).await;
            }
            let (result, effects) = (outcome.result, outcome.effects);
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
            match delivery::at_most_once(next, &job, &result, outcome.infrastructure_failure) {
                delivery::Next::Publish => return self.finish(&job, result, effects).await,
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

    /// Publishes `job` to `topic`, the executors that have its runtime (see
    /// [`crate::handover`]); true once the broker has it (its result is theirs).
    async fn hand_over(&self, job: &Job, topic: Topic) -> bool {
        let name = self.publisher.topic_name(topic).to_owned();
        let mut backoff = Duration::from_millis(200);
        for _ in 0..10 {
            match self.publisher.publish_as(topic, job).await {
                Ok(()) => {
                    tracing::info!(topic = %name, "job handed over: its runtime is not offered here");
                    return true;
                }
                Err(error) => tracing::warn!(%error, topic = %name, "hand-over not acknowledged; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        false
    }

    /// Publishes what `end` asks for; true once the job is done here.
    pub async fn conclude(&self, end: delivery::End) -> bool {
        match end {
            delivery::End::Leave => false,
            delivery::End::Done => true,
            delivery::End::Publish(result) => self.publish_until_acked(*result).await,
        }
    }

    /// A run stopped from outside (see [`delivery::stopped`]).
    async fn stopped(&self, job: &Job, stop: Stop, outcome: Option<RunOutcome>, durable: bool) -> bool {
        let effects = outcome.as_ref().and_then(|o| o.effects.clone());
        let end = delivery::stopped(job, stop, outcome, &self.runner.executor_id, durable);
        if let (delivery::End::Publish(result), Some(_)) = (&end, &effects) {
            if result.status == JobStatus::Succeeded {
                // it finished before the cancel: its effects go with its result
                let delivery::End::Publish(result) = end else { unreachable!() };
                return self.finish(job, *result, effects).await;
            }
        }
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
        match self.publisher.dead_letter(None, payload, &headers).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, "dead-letter publish failed");
                false
            }
        }
    }

    /// Publishes `result`, in one transaction with the state commit and records of
    /// `effects` when it has any; true once committed.
    async fn finish(&self, job: &Job, result: JobResult, effects: Option<Effects>) -> bool {
        let Some(effects) = effects else { return self.publish_until_acked(result).await };
        let attempt = || Attempt::of(job, &self.runner.executor_id, result.attempt);
        if let Some(published) = self.failed_for_missing_topic(&effects, &attempt()).await {
            return published;
        }
        let span = tracing::info_span!("result commit", otel.kind = "producer", ops = effects.ops.len());
        let records = match context::transaction(self.publisher.topics(), job, &result, &effects) {
            Ok(records) => records,
            Err(error) => {
                return self.publish_until_acked(JobResult::failed(&attempt(), error.to_string())).await;
            }
        };
        let mut backoff = Duration::from_millis(200);
        for _ in 0..10 {
            match self.transactor.commit(&records).instrument(span.clone()).await {
                Ok(()) => {
                    self.metrics.finished(&result);
                    return true;
                }
                Err(error) => {
                    tracing::warn!(%error, "result transaction not committed; retrying");
                    self.known_topics.lock().expect("known topics lock").clear();
                    if let Some(published) = self.failed_for_missing_topic(&effects, &attempt()).await {
                        return published;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        tracing::error!("result transaction could not be committed; the job will be redelivered");
        false
    }

    /// Fails the job if it publishes to a topic the broker lacks: whether that
    /// result went out, or `None` when every topic is there.
    async fn failed_for_missing_topic(&self, effects: &Effects, attempt: &Attempt) -> Option<bool> {
        let missing = self.missing_topic(effects).await?;
        let reason = format!("publish: topic {missing:?} does not exist");
        Some(self.publish_until_acked(JobResult::failed(attempt, reason).finished(Utc::now())).await)
    }

    /// A topic `effects` publish to that the broker does not have (a transaction
    /// with a record for it would wait out its timeout, then never commit).
    async fn missing_topic(&self, effects: &Effects) -> Option<String> {
        let known = |topic: &str| self.known_topics.lock().expect("known topics lock").contains(topic);
        let topics: std::collections::BTreeSet<&str> =
            effects.publish.iter().map(|p| p.topic.as_str()).filter(|topic| !known(topic)).collect();
        for topic in topics {
            match self.publisher.partitions(topic, Duration::from_secs(5)).await {
                Ok(0) => return Some(topic.to_owned()),
                Ok(_) => {
                    self.known_topics.lock().expect("known topics lock").insert(topic.to_owned());
                }
                Err(error) => tracing::warn!(%error, topic, "topic metadata not read; the transaction will tell"),
            }
        }
        None
    }

    async fn publish_until_acked(&self, result: JobResult) -> bool {
        let span = tracing::info_span!("result publish", otel.kind = "producer", status = %result.status);
        let event = JobEvent::Finished(result.within_message_limit());
        let delivered = self.deliver(&event).instrument(span).await;
        if !delivered {
            tracing::error!("result could not be published; the job will be redelivered");
        } else if let JobEvent::Finished(result) = &event {
            self.metrics.finished(result);
        }
        delivered
    }

    /// Publishes `event`, retrying with backoff; true once the broker has it.
    async fn deliver(&self, event: &JobEvent) -> bool {
        let mut backoff = Duration::from_millis(200);
        for _ in 0..10 {
            match self.publisher.publish(event).await {
                Ok(()) => return true,
                Err(error) => tracing::warn!(%error, "event not acknowledged; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        false
    }

    /// A message that is not a job of this schema goes to the dead-letter topic, and
    /// the job it names (by its fields if they are readable, else by the message key)
    /// gets a `rejected` result that says why; an owner left unknown is the one the
    /// frontend has on record.
    pub async fn reject_malformed(&self, key: Option<&[u8]>, payload: &[u8], reason: &str) -> bool {
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
}

//! Topic triggers. Every frontend keeps one reader per enabled topic trigger,
//! all of a trigger's readers in one consumer group, so the input topic's
//! partitions are shared among the frontends. A record becomes a job whose id
//! its coordinates name; its offset is committed only once the job is recorded
//! (so a crash reads it again, and makes no second job). At most `concurrency`
//! of a reader's jobs are unfinished at once.
//!
//! A reader runs only while its trigger's owner owns its topics (or they are
//! shared): the route claims them when the trigger is saved, and each rescan
//! claims them again, which makes the claims anew after the view is rebuilt and
//! stops a trigger saved before ownership existed from reading another's topic.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use gitfaas_common::kafka::{brokers_out_of_reach, ConsumerBuilder, Message as _, Role};
use gitfaas_common::metrics::ConsumerLag;
use gitfaas_common::observer::TriggerLoad;
use gitfaas_common::schema::{JobOrigin, TopicBinding, TriggerSource, TriggerState};
use gitfaas_common::settings::KafkaSettings;
use gitfaas_common::tasks::Tasks;
use gitfaas_common::JobId;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::FireError;
use crate::settings::TriggerSettings;
use crate::submit::Submitter;

/// How often the set of topic triggers is read again.
const RESCAN: Duration = Duration::from_secs(2);
/// How often a full reader looks whether its jobs finished.
const ROOM_EVERY: Duration = Duration::from_millis(100);
/// The longest a reader waits after an input-topic error before it reads again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Each reader's load, by trigger (`<subject>/<name>`): what the frontend's
/// beacon tells the observer.
pub type TriggerLoads = Arc<Mutex<BTreeMap<String, TriggerLoad>>>;

/// A reader's client context: its lag, to the metrics and to the loads.
struct ReaderContext {
    consumer: String,
    trigger: String,
    lag: ConsumerLag,
    loads: TriggerLoads,
}

impl ClientContext for ReaderContext {
    fn stats(&self, statistics: Statistics) {
        let lag = self.lag.record(&self.consumer, &statistics);
        if let Some(load) = self.loads.lock().expect("loads lock").get_mut(&self.trigger) {
            load.lag = lag;
        }
    }
}

impl ConsumerContext for ReaderContext {}

pub struct TopicTriggers {
    pub kafka: KafkaSettings,
    pub group_id: String,
    pub settings: TriggerSettings,
    pub submit: Submitter,
    pub lag: ConsumerLag,
    pub loads: TriggerLoads,
    /// Each trigger's reader runs as one of these.
    pub tasks: Tasks,
}

struct Running {
    updated_at: DateTime<Utc>,
    stop: CancellationToken,
}

impl TopicTriggers {
    /// Starts and stops readers as topic triggers come, change, pause and go.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut running: HashMap<String, Running> = HashMap::new();
        let mut refused = HashSet::new();
        loop {
            match this.owning(&mut refused).await {
                Ok(triggers) => this.reconcile(&mut running, triggers, &shutdown),
                Err(error) => tracing::warn!(%error, "reading the topic triggers failed; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(RESCAN) => {}
            }
        }
        running.values().for_each(|r| r.stop.cancel());
    }

    /// Every trigger, less the topic triggers binding a topic another owner owns
    /// (each said once, kept in `refused`).
    async fn owning(&self, refused: &mut HashSet<String>) -> redis::RedisResult<Vec<TriggerState>> {
        let mut kept = Vec::new();
        for trigger in self.submit.store.all_triggers().await? {
            let TriggerSource::Topic(binding) = &trigger.source else {
                kept.push(trigger);
                continue;
            };
            let mut foreign = None;
            for topic in std::iter::once(&binding.input).chain(binding.output.as_ref()) {
                let subject = &trigger.owner.subject;
                if self.settings.allows(topic)
                    && !self.settings.is_shared(topic)
                    && self.submit.store.claim_topic(topic, subject).await? != *subject
                {
                    foreign = Some(topic.clone());
                }
            }
            match foreign {
                None => kept.push(trigger),
                Some(topic) if refused.insert(trigger.key()) => {
                    tracing::warn!(trigger = %trigger.name, %topic, "topic trigger not read: its topic is another owner's");
                }
                Some(_) => {}
            }
        }
        Ok(kept)
    }

    fn reconcile(
        self: &Arc<Self>,
        running: &mut HashMap<String, Running>,
        triggers: Vec<TriggerState>,
        shutdown: &CancellationToken,
    ) {
        let mut wanted = HashMap::new();
        for trigger in triggers {
            let TriggerSource::Topic(binding) = &trigger.source else { continue };
            let allowed = self.settings.allows(&binding.input)
                && binding.output.as_deref().is_none_or(|output| self.settings.allows(output));
            if trigger.enabled && allowed {
                wanted.insert(trigger.key(), trigger);
            }
        }
        running.retain(|key, reader| {
            let keep = wanted.get(key).is_some_and(|t| t.updated_at == reader.updated_at);
            if !keep {
                reader.stop.cancel();
            }
            keep
        });
        for (key, trigger) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let stop = shutdown.child_token();
            running.insert(key, Running { updated_at: trigger.updated_at, stop: stop.clone() });
            let this = self.clone();
            self.tasks.spawn("topic trigger reader", async move {
                if let Err(error) = this.read(&trigger, stop).await {
                    tracing::error!(%error, trigger = %trigger.name, "topic trigger reader failed");
                }
            });
        }
    }

    /// One trigger's reader, until `stop`.
    async fn read(&self, trigger: &TriggerState, stop: CancellationToken) -> anyhow::Result<()> {
        let TriggerSource::Topic(binding) = &trigger.source else { return Ok(()) };
        let group = format!("{}-trigger-{}", self.group_id, &hex::encode(Sha256::digest(trigger.key()))[..16]);
        let label = format!("{}/{}", trigger.owner.subject, trigger.name);
        let limit = binding.concurrency.max(1);
        let load = TriggerLoad { trigger: label.clone(), lag: 0, in_flight: 0, concurrency: limit };
        self.loads.lock().expect("loads lock").insert(label.clone(), load);
        let context = ReaderContext {
            consumer: format!("trigger:{}", trigger.name),
            trigger: label.clone(),
            lag: self.lag.clone(),
            loads: self.loads.clone(),
        };
        let consumer: StreamConsumer<ReaderContext> =
            ConsumerBuilder::new(&self.kafka, Role::Replay, &group).with_lag_statistics().create_with(context)?;
        consumer.subscribe(&[&binding.input])?;
        tracing::info!(trigger = %trigger.name, topic = %binding.input, %group, "topic trigger reading");
        let mut in_flight: VecDeque<JobId> = VecDeque::new();
        let mut room = tokio::time::interval(ROOM_EVERY);
        let mut failing = Duration::from_millis(500);
        loop {
            let full = in_flight.len() >= limit as usize;
            let message = tokio::select! {
                () = stop.cancelled() => break,
                _ = room.tick(), if full => {
                    self.prune(&mut in_flight, &label).await;
                    continue;
                }
                message = consumer.recv(), if !full => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(error) if brokers_out_of_reach(&error) => {
                    // the client reconnects by itself; sleeping on each of these queued
                    // errors kept the reader asleep minutes after the broker came back
                    tracing::debug!(%error, trigger = %trigger.name, "input topic out of reach");
                    continue;
                }
                Err(error) => {
                    // e.g. the topic was deleted: said once per backoff, which grows to
                    // 5 s (well inside the group's poll interval)
                    tracing::warn!(%error, trigger = %trigger.name, "reading the input topic failed");
                    tokio::time::sleep(failing).await;
                    failing = (failing * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            failing = Duration::from_millis(500);
            let Some(id) = self.record_until_done(trigger, binding, &message, &stop).await else { break };
            in_flight.extend(id);
            self.set_in_flight(&label, in_flight.len());
            if let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
                tracing::warn!(%error, trigger = %trigger.name, "offset not committed; the record's job is made once anyway");
            }
        }
        self.loads.lock().expect("loads lock").remove(&label);
        Ok(())
    }

    /// Drops this reader's finished jobs from `in_flight`.
    async fn prune(&self, in_flight: &mut VecDeque<JobId>, label: &str) {
        let mut still = VecDeque::with_capacity(in_flight.len());
        for id in in_flight.drain(..) {
            match self.submit.store.get(id).await {
                Ok(Some(record)) if record.status.is_terminal() => {}
                Ok(None) => {}
                _ => still.push_back(id),
            }
        }
        *in_flight = still;
        self.set_in_flight(label, in_flight.len());
    }

    fn set_in_flight(&self, label: &str, count: usize) {
        if let Some(load) = self.loads.lock().expect("loads lock").get_mut(label) {
            load.in_flight = count as u32;
        }
    }

    /// Makes the record's job, retrying what may pass later: its id (`None`
    /// inside when the record was dead-lettered instead), or `None` on `stop`.
    async fn record_until_done(
        &self,
        trigger: &TriggerState,
        binding: &TopicBinding,
        message: &BorrowedMessage<'_>,
        stop: &CancellationToken,
    ) -> Option<Option<JobId>> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.record(trigger, binding, message).await {
                Ok(id) => return Some(Some(id)),
                // backpressure: the record (and the partition behind it) waits for the owner's next window
                Err(FireError::Throttled(retry_after)) => {
                    if let Err(error) = self.submit.store.note_throttled(&trigger.key(), false).await {
                        tracing::warn!(%error, trigger = %trigger.name, "noting the trigger throttled failed");
                    }
                    tracing::info!(trigger = %trigger.name, retry_after, "record waits: the owner's rate limit is reached");
                    tokio::select! {
                        () = stop.cancelled() => return None,
                        () = tokio::time::sleep(Duration::from_secs(retry_after)) => {}
                    }
                    continue;
                }
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, trigger = %trigger.name, offset = message.offset(), "record's job not made yet; retrying");
                }
                Err(error) => {
                    match super::output::dead_letter_record(&self.submit, trigger, message, &error.to_string()).await {
                        Ok(()) => return Some(None),
                        Err(error) => tracing::warn!(%error, "dead-lettering a refused record failed; retrying"),
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn record(
        &self,
        trigger: &TriggerState,
        binding: &TopicBinding,
        message: &BorrowedMessage<'_>,
    ) -> Result<JobId, FireError> {
        let input = record_input(message.payload().unwrap_or_default());
        let Some(mut spec) = super::invocation(&self.submit, trigger, input).await? else {
            return Err(FireError::FunctionGone);
        };
        spec.origin = Some(JobOrigin::Topic {
            trigger: trigger.name.clone(),
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(|key| base64::engine::general_purpose::STANDARD.encode(key)),
            output: binding.output.clone(),
            record_ms: message.timestamp().to_millis(),
        });
        let backlog = super::admit(&self.submit, trigger).await?;
        let (id, ..) = self.submit.queue(spec, None, backlog, trigger.owner.clone()).await?;
        Ok(id)
    }
}

/// A record's value as a job's input: its JSON, or else its text as a string,
/// or else `{"base64": …}`.
fn record_input(payload: &[u8]) -> serde_json::Value {
    if let Ok(value) = serde_json::from_slice(payload) {
        return value;
    }
    match std::str::from_utf8(payload) {
        Ok(text) => serde_json::Value::String(text.to_owned()),
        Err(_) => serde_json::json!({"base64": base64::engine::general_purpose::STANDARD.encode(payload)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_its_json_else_its_text_else_its_bytes() {
        assert_eq!(record_input(br#"{"n": 1}"#), serde_json::json!({"n": 1}));
        assert_eq!(record_input(b"hello"), serde_json::json!("hello"));
        assert_eq!(record_input(&[0xff, 0x00]), serde_json::json!({"base64": "/wA="}));
    }
}

//! Rebuilding the job store from Kafka. The topics are the source of truth: when
//! Redis comes back empty (its marker key is gone), the jobs topic is replayed
//! (jobs become `queued` unless known) and then the results topic (every event
//! applied again — idempotently), up to the end offsets seen when the rebuild began.
//! Then the functions and triggers topics (each one's latest state, or its tombstone).
//! The first step of each pipeline run lists the run again (the rest of a run is
//! its steps' jobs).
//! A results message that cannot be read ends its job `failed`, as the results
//! consumer did when it first met it; an unreadable job message was rejected by the
//! executor, whose result the results replay brings back.

use std::collections::HashMap;
use std::time::Duration;

use gitfaas_common::kafka::client_config;
use gitfaas_common::schema::{decode_event, decode_function, decode_job, decode_trigger, JobOrigin};
use gitfaas_common::settings::KafkaSettings;
use prometheus_client::metrics::counter::Counter;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::ending::end_unreadable;
use crate::store::JobStore;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the replay of {0} did not reach its end in time")]
    Timeout(String),
}

/// Rebuilds the store if it is empty; returns whether it did.
pub async fn rebuild_if_empty(kafka: &KafkaSettings, store: &JobStore) -> Result<bool, RebuildError> {
    if store.is_initialized().await? {
        return Ok(false);
    }
    tracing::warn!("job store is empty: rebuilding it from the jobs and results topics");
    let jobs = replay(kafka, &kafka.topics.jobs, |_key, payload| async move {
        match decode_job(&payload) {
            Ok(job) => {
                if let Some(JobOrigin::Pipeline { run, step: 0, .. }) = &job.spec.origin {
                    store.index_pipeline_run(&job.owner.subject, run).await?;
                }
                store.restore_queued(&job).await.map(|_| ())
            }
            Err(error) => {
                tracing::warn!(%error, "unreadable job message skipped; its rejection is on the results topic");
                Ok(())
            }
        }
    })
    .await?;
    let events = replay(kafka, &kafka.topics.results, |key, payload| async move {
        match decode_event(&payload) {
            Ok(event) => store.apply(&event).await.map(|_| ()),
            Err(error) => end_unreadable(store, None, key.as_deref(), &payload, &error.to_string()).await,
        }
    })
    .await?;
    let functions = replay(kafka, &kafka.topics.functions, |key, payload| async move {
        apply_function(store, key.as_deref(), &payload).await
    })
    .await?;
    let triggers = replay(kafka, &kafka.topics.triggers, |key, payload| async move {
        apply_trigger(store, key.as_deref(), &payload).await
    })
    .await?;
    store.mark_initialized().await?;
    tracing::info!(jobs, events, functions, triggers, "job store rebuilt");
    Ok(true)
}

/// A message of the functions topic: a function's state, or the tombstone (no
/// value) of a deleted one.
async fn apply_function(store: &JobStore, key: Option<&[u8]>, payload: &[u8]) -> redis::RedisResult<()> {
    if payload.is_empty() {
        let named = key.and_then(|k| serde_json::from_slice::<(String, String)>(k).ok());
        return match named {
            Some((subject, name)) => store.remove_function(&subject, &name).await,
            None => Ok(()),
        };
    }
    match decode_function(payload) {
        Ok(state) => store.put_function(&state).await.map(|_| ()),
        Err(error) => {
            tracing::warn!(%error, "unreadable function message skipped");
            Ok(())
        }
    }
}

/// A message of the triggers topic: a trigger's state, or its tombstone.
async fn apply_trigger(store: &JobStore, key: Option<&[u8]>, payload: &[u8]) -> redis::RedisResult<()> {
    if payload.is_empty() {
        let named = key.and_then(|k| serde_json::from_slice::<(String, String)>(k).ok());
        return match named {
            Some((subject, name)) => store.remove_trigger(&subject, &name).await,
            None => Ok(()),
        };
    }
    match decode_trigger(payload) {
        Ok(state) => store.put_trigger(&state).await.map(|_| ()),
        Err(error) => {
            tracing::warn!(%error, "unreadable trigger message skipped");
            Ok(())
        }
    }
}

/// Feeds every message of `topic`, up to its current end, to `apply`.
async fn replay<F, Fut>(kafka: &KafkaSettings, topic: &str, apply: F) -> Result<u64, RebuildError>
where
    F: Fn(Option<Vec<u8>>, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<()>>,
{
    let consumer: StreamConsumer = client_config(kafka)
        .set("group.id", format!("gitfaas-rebuild-{}", gitfaas_common::JobId::new()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        if high > low {
            remaining.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    if remaining.is_empty() {
        return Ok(0);
    }
    consumer.assign(&assignment)?;
    let mut applied = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while !remaining.is_empty() {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| RebuildError::Timeout(topic.to_owned()))??;
        let partition = message.partition();
        let Some(&end) = remaining.get(&partition) else { continue };
        if message.offset() < end {
            apply(message.key().map(<[u8]>::to_vec), message.payload().unwrap_or_default().to_vec()).await?;
            applied += 1;
        }
        if message.offset() + 1 >= end {
            remaining.remove(&partition);
        }
    }
    Ok(applied)
}

/// Checks every few seconds that the store still has its data; rebuilds it when
/// Redis came back empty while this frontend was running.
pub async fn watch(kafka: KafkaSettings, store: JobStore, rebuilds: Counter, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        match rebuild_if_empty(&kafka, &store).await {
            Ok(true) => {
                rebuilds.inc();
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "job store rebuild failed; will retry"),
        }
    }
}

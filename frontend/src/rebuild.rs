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

use std::time::Duration;

use gitfaas_common::kafka::{assign_all, decode, ConsumerBuilder, EndsExpected, Role, Start};
use gitfaas_common::schema::{FunctionState, JobOrigin, TriggerState};
use gitfaas_common::settings::KafkaSettings;
use gitfaas_common::{Job, JobEvent};
use prometheus_client::metrics::counter::Counter;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use crate::ending::end_unreadable;
use crate::store::{Definition, JobStore};

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
        match decode::<Job>(&payload) {
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
        match decode::<JobEvent>(&payload) {
            Ok(event) => store.apply(&event).await.map(|_| ()),
            Err(error) => end_unreadable(store, None, key.as_deref(), &payload, &error.to_string()).await,
        }
    })
    .await?;
    let functions = replay(kafka, &kafka.topics.functions, |key, payload| async move {
        apply_definition::<FunctionState>(store, key.as_deref(), &payload).await
    })
    .await?;
    let triggers = replay(kafka, &kafka.topics.triggers, |key, payload| async move {
        apply_definition::<TriggerState>(store, key.as_deref(), &payload).await
    })
    .await?;
    store.mark_initialized().await?;
    tracing::info!(jobs, events, functions, triggers, "job store rebuilt");
    Ok(true)
}

/// A message of a definitions topic (functions, triggers): a definition's state,
/// or the tombstone (no value) of a deleted one.
async fn apply_definition<D: Definition>(
    store: &JobStore,
    key: Option<&[u8]>,
    payload: &[u8],
) -> redis::RedisResult<()> {
    if payload.is_empty() {
        let named = key.and_then(|k| serde_json::from_slice::<(String, String)>(k).ok());
        return match named {
            Some((subject, name)) => D::remove(store, &subject, &name).await,
            None => Ok(()),
        };
    }
    match decode::<D>(payload) {
        Ok(state) => state.store(store).await,
        Err(error) => {
            tracing::warn!(%error, kind = %D::KIND, "unreadable definition message skipped");
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
    let group = format!("gitfaas-rebuild-{}", gitfaas_common::JobId::new());
    let consumer =
        ConsumerBuilder::new(kafka, Role::Replay, &group).reading_committed_to_the_end().create_with(EndsExpected)?;
    let owned_topic = topic.to_owned();
    let (consumer, catch_up) = tokio::task::spawn_blocking(move || {
        let catch_up = assign_all(&consumer, &[(&owned_topic, Start::Beginning)]);
        (consumer, catch_up)
    })
    .await
    .map_err(|_| RebuildError::Timeout(topic.to_owned()))?;
    let mut catch_up = catch_up?;
    let mut applied = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while !catch_up.is_done() {
        let received = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| RebuildError::Timeout(topic.to_owned()))?;
        let message = match received {
            // past a partition's last message, it may hold a transaction's marker
            Err(KafkaError::PartitionEOF(partition)) => {
                catch_up.reached_end(topic, partition);
                continue;
            }
            received => received?,
        };
        if catch_up.is_before_end(&message) {
            apply(message.key().map(<[u8]>::to_vec), message.payload().unwrap_or_default().to_vec()).await?;
            applied += 1;
        }
        catch_up.advance(&message);
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

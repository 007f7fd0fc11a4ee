//! Reads the jobs, results and observer topics and hands decoded messages to the
//! observer.
//!
//! The observer needs all the traffic, so it assigns itself every partition rather
//! than sharing them through the consumer group (two observers in one group would
//! each see half the jobs). It commits nothing: its state is rebuilt on start by
//! re-reading jobs and results from `lookback` ago, and the observer topic (config,
//! heartbeats, its own earlier reports) from the beginning. Once every partition has
//! been read up to where it ended at start, [`Input::CaughtUp`] is sent.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use gitfaas_common::kafka::client_config;
use gitfaas_common::metrics::{ConsumerLag, LagContext, STATISTICS_INTERVAL_MS};
use gitfaas_common::observer::decode_observer_message;
use gitfaas_common::schema::{decode_event, decode_job};
use gitfaas_common::settings::{KafkaSettings, TopicSettings};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::Input;

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Feed {
    /// Partitions of the jobs topic when the feed was assigned.
    pub jobs_partitions: u32,
    consumer: StreamConsumer<LagContext>,
    topics: TopicSettings,
    /// Last offset to read per partition before the replay is done.
    replay_ends: HashMap<(String, i32), i64>,
}

impl Feed {
    /// Assigns every partition of the three topics at its replay start.
    /// Its lag behind each partition's end goes to `lag`.
    pub async fn connect(
        kafka: &KafkaSettings,
        group_id: &str,
        replay_from: DateTime<Utc>,
        lag: ConsumerLag,
    ) -> anyhow::Result<Self> {
        let consumer: StreamConsumer<LagContext> = client_config(kafka)
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .create_with_context(LagContext { consumer: "observer".into(), lag })
            .context("creating the observer consumer")?;
        let topics = kafka.topics.clone();
        let jobs_topic = topics.jobs.clone();
        let (consumer, replay_ends) = tokio::task::spawn_blocking(move || {
            let mut assignment = TopicPartitionList::new();
            let mut replay_ends = HashMap::new();
            for (topic, since) in
                [(&topics.jobs, Some(replay_from)), (&topics.results, Some(replay_from)), (&topics.observer, None)]
            {
                assign_topic(&consumer, topic, since, &mut assignment, &mut replay_ends)?;
            }
            consumer.assign(&assignment).context("assigning partitions")?;
            anyhow::Ok((consumer, replay_ends))
        })
        .await??;
        let jobs_partitions = consumer.assignment()?.elements_for_topic(&jobs_topic).len() as u32;
        tracing::info!(jobs_partitions, partitions_to_replay = replay_ends.len(), since = %replay_from, "observer feed assigned");
        Ok(Self { jobs_partitions, consumer, topics: kafka.topics.clone(), replay_ends })
    }

    /// Sends every message read until `shutdown`.
    pub async fn run(self, tx: mpsc::Sender<Input>, shutdown: CancellationToken) {
        let Feed { consumer, topics, mut replay_ends, .. } = self;
        if replay_ends.is_empty() && tx.send(Input::CaughtUp).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                received = consumer.recv() => received,
            };
            match received {
                Ok(message) => {
                    let input = decode(&topics, &message);
                    let caught_up = advance(&mut replay_ends, &message);
                    if tx.send(input).await.is_err() || (caught_up && tx.send(Input::CaughtUp).await.is_err()) {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "kafka receive error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Whether this message finished the replay.
fn advance(replay_ends: &mut HashMap<(String, i32), i64>, message: &BorrowedMessage<'_>) -> bool {
    if replay_ends.is_empty() {
        return false;
    }
    let key = (message.topic().to_owned(), message.partition());
    if replay_ends.get(&key).is_some_and(|&end| message.offset() >= end) {
        replay_ends.remove(&key);
        return replay_ends.is_empty();
    }
    false
}

fn decode(topics: &TopicSettings, message: &BorrowedMessage<'_>) -> Input {
    let payload = message.payload().unwrap_or_default();
    let seen_at = message.timestamp().to_millis().and_then(DateTime::from_timestamp_millis).unwrap_or_else(Utc::now);
    let topic = message.topic();
    let decoded = if topic == topics.jobs {
        decode_job(payload).map(|job| Input::Job { job: Box::new(job), seen_at })
    } else if topic == topics.results {
        decode_event(payload).map(|event| Input::Event { event, seen_at })
    } else {
        decode_observer_message(payload).map(Input::Observer)
    };
    decoded.unwrap_or_else(|error| Input::Malformed {
        at: format!("{topic}/{}@{}", message.partition(), message.offset()),
        reason: error.to_string(),
    })
}

/// Adds the topic's partitions to `assignment`, starting at the first message at
/// or after `since` (the beginning when `since` is none or the broker cannot look
/// offsets up by time), and records where each replay ends.
fn assign_topic(
    consumer: &StreamConsumer<LagContext>,
    topic: &str,
    since: Option<DateTime<Utc>>,
    assignment: &mut TopicPartitionList,
    replay_ends: &mut HashMap<(String, i32), i64>,
) -> anyhow::Result<()> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).with_context(|| format!("metadata of {topic}"))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions");
    let starts = since.and_then(|since| start_offsets(consumer, topic, &partitions, since));
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT).context("fetching watermarks")?;
        let start = match starts.as_ref().map(|s| s.get(&partition).copied()) {
            Some(Some(Some(offset))) => offset.clamp(low, high),
            Some(Some(None)) => high, // nothing at or after `since`
            Some(None) | None => low,
        };
        if start < high {
            replay_ends.insert((topic.to_owned(), partition), high - 1);
        }
        assignment.add_partition_offset(topic, partition, Offset::Offset(start)).context("building the assignment")?;
    }
    Ok(())
}

/// First offset at or after `since` per partition (none: there is no such
/// message); none at all when the lookup fails.
fn start_offsets(
    consumer: &impl Consumer<LagContext>,
    topic: &str,
    partitions: &[i32],
    since: DateTime<Utc>,
) -> Option<HashMap<i32, Option<i64>>> {
    let mut query = TopicPartitionList::new();
    for &p in partitions {
        query.add_partition_offset(topic, p, Offset::Offset(since.timestamp_millis())).ok()?;
    }
    let found = match consumer.offsets_for_times(query, TIMEOUT) {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%topic, %error, "offsets by time not available; replaying from the beginning");
            return None;
        }
    };
    let mut starts = HashMap::new();
    for element in found.elements() {
        let offset = match element.offset() {
            Offset::Offset(o) => Some(o),
            Offset::End => None,
            _ => return None,
        };
        starts.insert(element.partition(), offset);
    }
    Some(starts)
}

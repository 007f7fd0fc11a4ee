//! Reads the jobs, results and observer topics and hands decoded messages to the
//! observer.
//!
//! The observer needs all the traffic, so it assigns itself every partition rather
//! than sharing them through the consumer group (two observers in one group would
//! each see half the jobs). It commits nothing: its state is rebuilt on start by
//! re-reading jobs and results from `lookback` ago, and the observer topic (config,
//! heartbeats, its own earlier reports) from the beginning. Once every partition has
//! been read up to where it ended at start, [`Input::CaughtUp`] is sent.

use anyhow::Context;
use chrono::{DateTime, Utc};
use gitfaas_common::kafka::{assign_all, decode, CatchUp, ConsumerBuilder, Inbox, Role, Start};
use gitfaas_common::metrics::{ConsumerLag, LagContext};
use gitfaas_common::observer::ObserverMessage;
use gitfaas_common::settings::{KafkaSettings, TopicSettings};
use gitfaas_common::{Job, JobEvent};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::Input;

pub struct Feed {
    /// Partitions of the jobs topic when the feed was assigned.
    pub jobs_partitions: u32,
    inbox: Inbox<LagContext>,
    topics: TopicSettings,
    /// Where each partition ended when the feed was assigned.
    replay: CatchUp,
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
        let consumer = ConsumerBuilder::new(kafka, Role::Replay, group_id)
            .with_lag_statistics()
            .create_with(LagContext { consumer: "observer".into(), lag })
            .context("creating the observer consumer")?;
        let topics = kafka.topics.clone();
        let (consumer, replay) = tokio::task::spawn_blocking(move || {
            let since = Start::Since(replay_from);
            let starts =
                [(topics.jobs.as_str(), since), (&topics.results, since), (&topics.observer, Start::Beginning)];
            let replay = assign_all(&consumer, &starts).context("assigning partitions")?;
            anyhow::Ok((consumer, replay))
        })
        .await??;
        let jobs_partitions = consumer.assignment()?.elements_for_topic(&kafka.topics.jobs).len() as u32;
        tracing::info!(jobs_partitions, partitions_to_replay = replay.remaining(), since = %replay_from, "observer feed assigned");
        Ok(Self { jobs_partitions, inbox: Inbox::new(consumer, "observer feed"), topics: kafka.topics.clone(), replay })
    }

    /// Sends every message read until `shutdown`.
    pub async fn run(self, tx: mpsc::Sender<Input>, shutdown: CancellationToken) {
        let Feed { inbox, topics, mut replay, .. } = self;
        if replay.is_done() && tx.send(Input::CaughtUp).await.is_err() {
            return;
        }
        loop {
            let received = match replay.is_done() {
                true => inbox.next(&shutdown).await,
                // a partition whose last records are a transaction's markers (a state job's
                // result) ends past its last message: a quiet feed has read what there was
                false => match tokio::time::timeout(REPLAY_QUIET, inbox.next(&shutdown)).await {
                    Ok(received) => received,
                    Err(_) => {
                        tracing::info!(partitions = replay.remaining(), "replay quiet: taken as caught up");
                        replay = CatchUp::default();
                        if tx.send(Input::CaughtUp).await.is_err() {
                            return;
                        }
                        continue;
                    }
                },
            };
            let Some(message) = received else { return };
            let input = decode_input(&topics, &message);
            let caught_up = replay.advance(&message);
            if tx.send(input).await.is_err() || (caught_up && tx.send(Input::CaughtUp).await.is_err()) {
                return;
            }
        }
    }
}

/// How long a replay may go without a message before it counts as caught up.
const REPLAY_QUIET: std::time::Duration = std::time::Duration::from_secs(3);

fn decode_input(topics: &TopicSettings, message: &BorrowedMessage<'_>) -> Input {
    let payload = message.payload().unwrap_or_default();
    let seen_at = message.timestamp().to_millis().and_then(DateTime::from_timestamp_millis).unwrap_or_else(Utc::now);
    let topic = message.topic();
    let decoded = if topic == topics.jobs {
        decode::<Job>(payload).map(|job| Input::Job { job: Box::new(job), seen_at })
    } else if topic == topics.results {
        decode::<JobEvent>(payload).map(|event| Input::Event { event: Box::new(event), seen_at })
    } else {
        decode::<ObserverMessage>(payload).map(Input::Observer)
    };
    decoded.unwrap_or_else(|error| Input::Malformed {
        at: format!("{topic}/{}@{}", message.partition(), message.offset()),
        reason: error.to_string(),
    })
}

//! The broker floor of the burst sweep: what the job path would do if running a
//! job cost nothing. A no-op worker reads a jobs topic of the bench's own in a
//! consumer group with the executor's client settings and answers each message
//! with a small result (acknowledged produce with the services' producer
//! settings, then its offset stored and committed, as the executor does); `K`
//! clients each produce a job-sized message and wait until its result arrives on
//! a results topic of the bench's own, then send the next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::join_all;
use gitfaas_common::kafka::{ConsumerBuilder, Publisher, Role};
use gitfaas_common::settings::KafkaSettings;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::floors::BenchTopic;
use crate::stats::Summary;

/// Partitions of the bench's jobs and results topics, as `kafka.partitions` ships.
const PARTITIONS: i32 = 4;
const RESULT: &[u8] = br#"{"status":"succeeded","output":null}"#;

#[derive(Debug, Serialize)]
pub struct FloorPoint {
    pub clients: usize,
    pub jobs: usize,
    pub seconds: f64,
    pub jobs_per_s: f64,
    pub latency_ms: Summary,
}

type Waiting = Arc<Mutex<HashMap<Vec<u8>, oneshot::Sender<()>>>>;

/// The floor at each of `clients`, `jobs` round trips of `size` bytes per point.
pub async fn sweep(
    kafka: &KafkaSettings,
    clients: &[usize],
    jobs: usize,
    size: usize,
) -> anyhow::Result<Vec<FloorPoint>> {
    let jobs_topic = BenchTopic::create(kafka, "floor-jobs", PARTITIONS).await?;
    let results_topic = match BenchTopic::create(kafka, "floor-results", PARTITIONS).await {
        Ok(topic) => topic,
        Err(error) => {
            jobs_topic.delete().await;
            return Err(error);
        }
    };
    let measured = run(kafka, &jobs_topic.name, &results_topic.name, clients, jobs, size).await;
    jobs_topic.delete().await;
    results_topic.delete().await;
    measured
}

async fn run(
    kafka: &KafkaSettings,
    jobs_topic: &str,
    results_topic: &str,
    clients: &[usize],
    jobs: usize,
    size: usize,
) -> anyhow::Result<Vec<FloorPoint>> {
    let worker = Arc::new(worker_consumer(kafka, jobs_topic)?);
    let reader = ConsumerBuilder::new(kafka, Role::Worker, &format!("{results_topic}-reader")).create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset(results_topic, partition, Offset::Beginning)?;
    }
    reader.assign(&assignment)?;
    let publisher = Publisher::new(kafka)?;
    let waiting: Waiting = Arc::default();
    let worker_task = tokio::spawn(answer_jobs(worker.clone(), publisher.clone(), results_topic.to_owned()));
    let reader_task = tokio::spawn(deliver_results(reader, waiting.clone()));
    let client = FloorClient { publisher, waiting, jobs_topic: jobs_topic.to_owned(), payload: vec![b'x'; size] };
    let measured = async {
        client.warm_up().await?;
        let mut points = Vec::new();
        for &num_clients in clients {
            points.push(client.point(num_clients, jobs).await?);
        }
        anyhow::Ok(points)
    }
    .await;
    worker_task.abort();
    reader_task.abort();
    measured
}

/// The jobs consumer as the executor builds it (`executor/src/lib.rs`).
fn worker_consumer(kafka: &KafkaSettings, topic: &str) -> anyhow::Result<StreamConsumer> {
    let consumer = ConsumerBuilder::new(kafka, Role::Worker, &format!("{topic}-workers"))
        .client_id("gitfaas-bench-floor")
        .with_lag_statistics()
        .rebalancing_promptly()
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// The no-op worker: each job answered at once, concurrently, its offset stored
/// and committed once the result is acknowledged.
async fn answer_jobs(consumer: Arc<StreamConsumer>, publisher: Publisher, results_topic: String) {
    loop {
        let Ok(message) = consumer.recv().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (key, partition, offset) = (message.key().map(<[u8]>::to_vec), message.partition(), message.offset());
        let topic = message.topic().to_owned();
        drop(message);
        let (consumer, publisher, results_topic) = (consumer.clone(), publisher.clone(), results_topic.clone());
        tokio::spawn(async move {
            if publisher.send_raw(&results_topic, key.as_deref(), RESULT, &[]).await.is_err() {
                return;
            }
            let mut list = TopicPartitionList::new();
            if list.add_partition_offset(&topic, partition, Offset::Offset(offset + 1)).is_ok()
                && consumer.store_offsets(&list).is_ok()
            {
                let _ = consumer.commit(&list, CommitMode::Async);
            }
        });
    }
}

/// Hands each result to the client waiting for its key.
async fn deliver_results(reader: StreamConsumer, waiting: Waiting) {
    loop {
        let Ok(message) = reader.recv().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(key) = message.key() else { continue };
        if let Some(waiter) = waiting.lock().expect("waiting lock").remove(key) {
            let _ = waiter.send(());
        }
    }
}

struct FloorClient {
    publisher: Publisher,
    waiting: Waiting,
    jobs_topic: String,
    payload: Vec<u8>,
}

impl FloorClient {
    /// One job and its result: milliseconds from the produce to the result.
    async fn round_trip(&self, key: String) -> anyhow::Result<f64> {
        let (done_tx, done_rx) = oneshot::channel();
        self.waiting.lock().expect("waiting lock").insert(key.clone().into_bytes(), done_tx);
        let started = Instant::now();
        self.publisher.send_raw(&self.jobs_topic, Some(key.as_bytes()), &self.payload, &[]).await?;
        tokio::time::timeout(Duration::from_secs(30), done_rx)
            .await
            .context("no result within 30 s")?
            .context("result reader ended")?;
        Ok(started.elapsed().as_secs_f64() * 1e3)
    }

    /// Until the worker has its partitions and answers (new topics' leaders and the
    /// group's first assignment take a few seconds).
    async fn warm_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.round_trip(format!("warm-up-{attempt}")).await {
                Ok(_) => return Ok(()),
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(error) => return Err(error).context("the floor's worker never answered"),
            }
        }
    }

    async fn point(&self, clients: usize, jobs: usize) -> anyhow::Result<FloorPoint> {
        let per_client = jobs.div_ceil(clients);
        let started = Instant::now();
        let latencies = join_all((0..clients).map(|c| async move {
            let mut samples = Vec::with_capacity(per_client);
            for n in 0..per_client {
                samples.push(self.round_trip(format!("{clients}-{c}-{n}")).await?);
            }
            anyhow::Ok(samples)
        }))
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let samples: Vec<f64> = latencies.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
        Ok(FloorPoint {
            clients,
            jobs: samples.len(),
            seconds,
            jobs_per_s: samples.len() as f64 / seconds,
            latency_ms: Summary::of(&samples).context("no round trips")?,
        })
    }
}

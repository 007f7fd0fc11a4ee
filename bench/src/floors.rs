//! The floors every job figure is compared with, measured in the same run: a broker
//! produce→consume round trip with the services' own client settings, a bare
//! `docker run --rm` of the runtime image, and one invocation inside a container
//! that already runs (`docker exec`).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gitfaas_common::kafka::{client_config, reliable_producer_config, ConsumerBuilder, Role};
use gitfaas_common::settings::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::stats::Summary;

/// A topic of the benchmark's own, deleted by [`BenchTopic::delete`].
pub struct BenchTopic {
    pub name: String,
    admin: AdminClient<DefaultClientContext>,
}

impl BenchTopic {
    pub async fn create(kafka: &KafkaSettings, what: &str, partitions: i32) -> anyhow::Result<BenchTopic> {
        let name = format!("gitfaas-bench-{what}-{}", uuid::Uuid::now_v7().simple());
        let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        admin.create_topics(&[NewTopic::new(&name, partitions, TopicReplication::Fixed(-1))], &options).await?;
        Ok(BenchTopic { name, admin })
    }

    pub async fn delete(self) {
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let _ = self.admin.delete_topics(&[&self.name], &options).await;
    }
}

/// Produce→consume round trips of `runs` messages of `size` bytes, one at a time,
/// on a topic of its own.
pub async fn broker_round_trip(kafka: &KafkaSettings, runs: usize, size: usize) -> anyhow::Result<Summary> {
    let topic = BenchTopic::create(kafka, "rtt", 1).await?;
    let result = round_trips(kafka, &topic.name, runs, size).await;
    topic.delete().await;
    result
}

async fn round_trips(kafka: &KafkaSettings, topic: &str, runs: usize, size: usize) -> anyhow::Result<Summary> {
    let producer: FutureProducer = reliable_producer_config(kafka).create()?;
    let consumer: StreamConsumer = ConsumerBuilder::new(kafka, Role::Worker, &format!("{topic}-reader")).create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    // the new topic's leader may take a moment: retry the first send
    let payload = vec![b'x'; size];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = FutureRecord::to(topic).key("warm-up").payload(&payload);
        match producer.send(record, Duration::from_secs(5)).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err((error, _)) => return Err(error).context("producing to the round-trip topic"),
        }
    }
    consumer.assign(&assignment)?;
    tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.context("consuming the warm-up")??;
    let mut samples = Vec::with_capacity(runs);
    for n in 0..runs {
        let key = n.to_string();
        let started = Instant::now();
        producer
            .send(FutureRecord::to(topic).key(&key).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)?;
        let message = tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await.context("round trip")??;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        use rdkafka::Message;
        if message.key() != Some(key.as_bytes()) {
            bail!("round trip read an unexpected message");
        }
    }
    Ok(Summary::of(&samples).expect("runs > 0"))
}

fn timed(command: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = command.output().context("running docker")?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if !output.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(ms)
}

/// `docker run --rm --network none IMAGE python3 -c …`, `runs` times.
pub fn docker_run(image: &str, runs: usize) -> anyhow::Result<Summary> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        samples.push(timed(Command::new("docker").args([
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "python3",
            "-c",
            "print(1)",
        ]))?);
    }
    Ok(Summary::of(&samples).expect("runs > 0"))
}

/// `docker exec` of the same command in a container of IMAGE that already runs.
pub fn docker_exec(image: &str, runs: usize) -> anyhow::Result<Summary> {
    let name = format!("gitfaas-bench-exec-{}", uuid::Uuid::now_v7().simple());
    let started = Command::new("docker")
        .args(["run", "-d", "--rm", "--network", "none", "--name", &name, image, "sleep", "3600"])
        .output()?;
    if !started.status.success() {
        bail!("starting the exec container: {}", String::from_utf8_lossy(&started.stderr));
    }
    let mut samples = Vec::new();
    let result = (|| {
        for _ in 0..runs {
            samples.push(timed(Command::new("docker").args(["exec", &name, "python3", "-c", "print(1)"]))?);
        }
        anyhow::Ok(())
    })();
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    result?;
    Ok(Summary::of(&samples).expect("runs > 0"))
}

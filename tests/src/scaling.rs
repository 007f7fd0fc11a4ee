//! The world of the observer and scaler tests: the real broker, real executor
//! processes (the `gitfaas-executor` binary that `scripts/test.sh` builds), Docker
//! and the test `git daemon`; the observer and the scaler run in-process. Every
//! [`World`] has its own topics, consumer groups and scratch directory, and a
//! [`Recorder`] reads what the services publish as it happens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::kafka::{client_config, ensure_topics, reliable_producer_config};
use gitfaas_common::kafka::{decode, Message as _};
use gitfaas_common::observer::{ObserverMessage, ObserverParams};
use gitfaas_common::settings::{KafkaSettings, TelemetrySettings, TopicSettings};
use gitfaas_common::{Job, JobEvent, JobSpec, Owner};
use gitfaas_observer::ObserverSettings;
use gitfaas_scaler::ScalerSettings;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

use crate::{config_dir, infra, kafka_settings, publish_raw, telemetry, unique, LOOPBACK_RANGES};

/// The executor binary of this build (`GITFAAS_BIN_DIR`, see [`infra::bin_dir`]).
pub fn executor_bin() -> PathBuf {
    let bin = infra::bin_dir().join("gitfaas-executor");
    assert!(bin.is_file(), "{} missing: run `cargo build -p gitfaas-executor` before these tests", bin.display());
    bin
}

/// One test's world: topic names, groups and a scratch directory.
pub struct World {
    pub prefix: String,
    pub kafka: KafkaSettings,
    state: tempfile::TempDir,
}

impl World {
    pub async fn new(partitions: i32) -> World {
        telemetry();
        let prefix = format!("{}.", unique("obs"));
        let kafka = KafkaSettings { partitions, ..kafka_settings(&prefix) };
        ensure_topics(&kafka).await.expect("topics created");
        let mut state = tempfile::Builder::new().prefix("gitfaas-observer-test-").tempdir().expect("tempdir");
        // GITFAAS_TEST_KEEP=1 keeps the executors' logs and work dirs for a look afterwards
        state.disable_cleanup(std::env::var_os("GITFAAS_TEST_KEEP").is_some());
        World { prefix, kafka, state }
    }

    fn state(&self) -> &Path {
        self.state.path()
    }

    /// On a failed test: keeps the scratch directory and prints what the executors
    /// logged about partitions, drains and problems (the rest stays in their log files).
    fn report_failure(&mut self) {
        self.state.disable_cleanup(true);
        let dir = self.state().join("log");
        eprintln!("test failed; executor logs kept in {}", dir.display());
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        files.sort();
        let wanted = ["WARN", "ERROR", "partitions", "drain", "stopp", "ready", "abandon"];
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| wanted.iter().any(|w| l.contains(w))).collect();
            eprintln!("== {} ({} of {} lines)", file.display(), lines.len().min(60), text.lines().count());
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
        }
    }

    pub fn topics(&self) -> &TopicSettings {
        &self.kafka.topics
    }

    /// What a `gitfaas-executor` started by the scaler needs to join this world.
    fn executor_env(&self, slots: usize) -> BTreeMap<String, String> {
        let t = self.topics();
        let state = self.state();
        [
            ("GITFAAS_CONFIG_DIR", config_dir().display().to_string()),
            ("GITFAAS__KAFKA__BROKERS", self.kafka.brokers.clone()),
            ("GITFAAS__KAFKA__PARTITIONS", self.kafka.partitions.to_string()),
            ("GITFAAS__KAFKA__TOPICS__JOBS", t.jobs.clone()),
            ("GITFAAS__KAFKA__TOPICS__RESULTS", t.results.clone()),
            ("GITFAAS__KAFKA__TOPICS__OBSERVER", t.observer.clone()),
            ("GITFAAS__KAFKA__TOPICS__DEAD_LETTER", t.dead_letter.clone()),
            ("GITFAAS__KAFKA__TOPICS__CONTROL", t.control.clone()),
            ("GITFAAS__KAFKA__TOPICS__FUNCTIONS", t.functions.clone()),
            ("GITFAAS__KAFKA__TOPICS__LOGS", t.logs.clone()),
            ("GITFAAS__EXECUTOR__GROUP_ID", format!("{}executors", self.prefix)),
            ("GITFAAS__EXECUTOR__SLOTS", slots.to_string()),
            ("GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES", LOOPBACK_RANGES.into()),
            ("GITFAAS__EXECUTOR__WORK_DIR", state.join("work").display().to_string()),
            ("GITFAAS__EXECUTOR__CACHE_DIR", state.join("cache").display().to_string()),
            ("GITFAAS__EXECUTOR__SHUTDOWN_GRACE_SECS", "60".into()),
            (
                "GITFAAS__TELEMETRY__LOG_FILTER",
                "info,gitfaas_executor::worker=debug,librdkafka=warn,rdkafka=warn".into(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The scaler's section: executors with `slots` slots each, in this world.
    pub fn pool_settings(&self, slots: usize) -> ScalerSettings {
        ScalerSettings {
            id: Some(format!("{}scaler", self.prefix)),
            group_id: format!("{}observer-scaler", self.prefix),
            executor_bin: executor_bin(),
            executor_id_prefix: format!("{}executor", self.prefix),
            log_dir: self.state().join("log"),
            env: self.executor_env(slots),
            startup_timeout_secs: 30,
            drain_timeout_secs: 90,
            metrics_listen: None,
        }
    }

    pub fn scaler_settings(&self, slots: usize) -> gitfaas_scaler::Settings {
        gitfaas_scaler::Settings {
            kafka: self.kafka.clone(),
            telemetry: TelemetrySettings::default(),
            scaler: self.pool_settings(slots),
        }
    }

    /// An observer that assumes `slots` slots per executor until heartbeats tell.
    pub fn observer_settings(&self, params: ObserverParams, slots: usize) -> gitfaas_observer::Settings {
        gitfaas_observer::Settings {
            kafka: self.kafka.clone(),
            telemetry: TelemetrySettings::default(),
            observer: ObserverSettings {
                id: Some(format!("{}observer", self.prefix)),
                group_id: format!("{}observer", self.prefix),
                lookback_secs: 600,
                evaluate_every_ms: 500,
                worker_timeout_secs: 6,
                default_slots: slots as u32,
                replay_timeout_secs: 20,
                params,
                metrics_listen: None,
            },
        }
    }

    pub fn producer(&self) -> FutureProducer {
        reliable_producer_config(&self.kafka).create().expect("producer")
    }

    /// Every message of `topics` from the beginning, collected in the background.
    pub async fn record(&self, topics: &[&str]) -> Recorder {
        let consumer: StreamConsumer = client_config(&self.kafka)
            .set("group.id", unique("recorder"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("recorder consumer");
        let mut assignment = TopicPartitionList::new();
        for &topic in topics {
            for p in 0..self.kafka.partitions {
                assignment.add_partition_offset(topic, p, Offset::Beginning).unwrap();
            }
        }
        consumer.assign(&assignment).expect("assign");
        let recorder = Recorder::default();
        let sink = recorder.clone();
        let topics = self.kafka.topics.clone();
        tokio::spawn(async move {
            loop {
                let Ok(m) = consumer.recv().await else { continue };
                let payload = m.payload().unwrap_or_default();
                let at = Utc::now();
                let mut log = sink.log.lock().unwrap();
                if m.topic() == topics.results {
                    if let Ok(event) = decode::<gitfaas_common::JobEvent>(payload) {
                        log.events.push((at, event));
                    }
                } else if m.topic() == topics.observer {
                    if let Ok(message) = decode::<ObserverMessage>(payload) {
                        log.observer.push((at, message));
                    }
                }
            }
        });
        recorder
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.report_failure();
        }
    }
}

/// What a [`Recorder`] read, each message with the time it was read.
#[derive(Default)]
pub struct Log {
    pub events: Vec<(DateTime<Utc>, JobEvent)>,
    pub observer: Vec<(DateTime<Utc>, ObserverMessage)>,
}

/// What was read so far; cheap to clone.
#[derive(Clone, Default)]
pub struct Recorder {
    pub log: Arc<Mutex<Log>>,
}

impl Recorder {
    /// Polls `check` on the log until it returns something or `timeout` passes.
    pub async fn wait_for<T>(&self, timeout: Duration, what: &str, check: impl Fn(&Log) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check(&self.log.lock().unwrap()) {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A job of [`crate::sleep_repo`] that sleeps `secs` and returns `n`.
pub fn sleep_job(repo: &str, n: u32, secs: f64) -> Job {
    // through JSON, so that fields the schema gains later take their defaults
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "repo": repo,
        "ref": "main",
        "runtime": "python",
        "input": {"n": n, "secs": secs},
        "timeout_secs": 120,
        "resources": {"memory_mb": 128, "cpu_millis": 1000, "pids": 64},
    }))
    .expect("a job spec");
    Job::new(Owner { subject: "observer-test".into(), name: None }, spec)
}

/// Publishes a job on the jobs topic as the frontend would (key = job id).
pub async fn submit(producer: &FutureProducer, topics: &TopicSettings, job: &Job) {
    let payload = serde_json::to_vec(job).unwrap();
    publish_raw(producer, &topics.jobs, &job.id.to_string(), &payload).await;
}

/// Publishes a message on the observer topic under its key, as the services do.
pub async fn publish(producer: &FutureProducer, topics: &TopicSettings, message: &ObserverMessage) {
    publish_raw(
        producer,
        &topics.observer,
        &message.key(),
        &serde_json::to_vec(message).expect("observer messages serialise"),
    )
    .await;
}

/// Exponential gaps between arrivals (a Poisson stream), reproducible from `seed`.
pub struct PoissonGaps {
    state: u64,
    rate: f64,
}

impl PoissonGaps {
    pub fn new(rate: f64, seed: u64) -> Self {
        Self { state: seed.max(1), rate }
    }

    pub fn next_gap(&mut self) -> Duration {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let uniform = ((self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        Duration::from_secs_f64(-uniform.ln() / self.rate)
    }
}

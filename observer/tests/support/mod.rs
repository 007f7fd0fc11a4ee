//! Harness of the observer's integration tests: the real broker, real executor
//! processes (the `gitfaas-executor` binary, built beforehand), Docker, and the
//! test `git daemon` that `scripts/test.sh` starts. Every test has its own topics
//! and consumer groups.

#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::kafka::{client_config, ensure_topics, reliable_producer_config};
use gitfaas_common::observer::{decode_observer_message, ObserverMessage, ObserverParams};
use gitfaas_common::schema::decode_event;
use gitfaas_common::settings::{KafkaSettings, TelemetrySettings, TopicSettings};
use gitfaas_common::{Job, JobEvent, JobSpec, Owner};
use gitfaas_observer::{ObserverSettings, Settings};
use gitfaas_scaler::ScalerSettings;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

pub fn brokers() -> String {
    std::env::var("GITFAAS_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

pub fn telemetry() {
    static INIT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        let settings = TelemetrySettings { log_filter: "warn,gitfaas_observer=info".into(), ..Default::default() };
        std::mem::forget(gitfaas_common::telemetry::init("gitfaas-observer-tests", &settings));
    });
}

pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// The executor binary next to this test's own target directory (or `GITFAAS_EXECUTOR_BIN`).
pub fn executor_bin() -> PathBuf {
    let bin = std::env::var_os("GITFAAS_EXECUTOR_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent().and_then(Path::parent).expect("target/<profile>/deps").join("gitfaas-executor")
    });
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
        let kafka = KafkaSettings {
            brokers: brokers(),
            topics: TopicSettings::prefixed(&prefix),
            partitions,
            client: Default::default(),
        };
        ensure_topics(&kafka).await.expect("topics created");
        let mut state = tempfile::Builder::new().prefix("gitfaas-observer-test-").tempdir().expect("tempdir");
        // GITFAAS_TEST_KEEP=1 keeps the executors' logs and work dirs for a look afterwards
        state.disable_cleanup(std::env::var_os("GITFAAS_TEST_KEEP").is_some());
        World { prefix, kafka, state }
    }

    pub fn state(&self) -> &Path {
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
    pub fn executor_env(&self, slots: usize) -> BTreeMap<String, String> {
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
            ("GITFAAS__EXECUTOR__GROUP_ID", format!("{}executors", self.prefix)),
            ("GITFAAS__EXECUTOR__SLOTS", slots.to_string()),
            ("GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES", "127.0.0.0/8,::1".into()),
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

    pub fn scaler_settings(&self, slots: usize) -> gitfaas_scaler::Settings {
        gitfaas_scaler::Settings {
            kafka: self.kafka.clone(),
            telemetry: TelemetrySettings::default(),
            scaler: self.pool_settings(slots),
        }
    }

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
        }
    }

    pub fn settings(&self, params: ObserverParams, slots: usize) -> Settings {
        Settings {
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
                    if let Ok(event) = decode_event(payload) {
                        log.events.push((at, event));
                    }
                } else if m.topic() == topics.observer {
                    if let Ok(message) = decode_observer_message(payload) {
                        log.observer.push((at, message));
                    }
                }
            }
        });
        recorder
    }
}

#[derive(Default)]
pub struct Log {
    pub events: Vec<(DateTime<Utc>, JobEvent)>,
    pub observer: Vec<(DateTime<Utc>, ObserverMessage)>,
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.report_failure();
        }
    }
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

/// A repository served by the test git daemon; returns its URL.
pub fn git_repo(files: &[(&str, &str)]) -> String {
    let root =
        PathBuf::from(std::env::var("GITFAAS_TEST_GIT_ROOT").unwrap_or_else(|_| "/var/lib/gitfaas/test-repos".into()));
    let url = std::env::var("GITFAAS_TEST_GIT_URL").unwrap_or_else(|_| "git://127.0.0.1:9419".into());
    let name = unique("observer-repo");
    let dir = root.join(&name);
    std::fs::create_dir_all(&dir).expect("repo dir");
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(&dir).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    for (path, content) in files {
        std::fs::write(dir.join(path), content).unwrap();
    }
    git(&["add", "."]);
    git(&["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "function"]);
    format!("{url}/{name}")
}

/// A python function that sleeps `input.secs` seconds.
pub fn sleep_repo() -> String {
    git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "import time\ndef main(data, credentials):\n    time.sleep(data['secs'])\n    return data['n']\n"),
    ])
}

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
    let key = job.id.to_string();
    let record = FutureRecord::to(&topics.jobs).key(&key).payload(&payload);
    producer.send(record, Timeout::After(Duration::from_secs(10))).await.expect("job published");
}

/// Publishes raw bytes, for malformed-message cases.
pub async fn publish_raw(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    let record = FutureRecord::to(topic).key(key).payload(payload);
    producer.send(record, Timeout::After(Duration::from_secs(10))).await.expect("published");
}

pub async fn publish(producer: &FutureProducer, topics: &TopicSettings, message: &ObserverMessage) {
    publish_raw(producer, &topics.observer, &message.key(), &message.encode()).await;
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

//! Test harness: the real services, in-process, against the real infrastructure
//! that `scripts/test.sh` starts (Apache Kafka, Redis, Docker, `git daemon`, Keycloak).
//! A stack trusts the npm test provider ([`Provider`]) unless a test makes it trust
//! Keycloak ([`keycloak::use_keycloak`]); its `token` comes from the one it trusts.
//!
//! Every stack gets its own topics, consumer groups, Redis key prefix and executor
//! id, so tests never see each other's traffic. [`cluster`] runs a deployment as
//! separate processes for fault tests; [`scaling`] is the world of the observer and
//! scaler tests (executor processes started and drained by the real scaler); [`otlp`]
//! receives the spans the services export; [`ops`] adds an observer and a scaler to a
//! stack and [`prometheus`] a real Prometheus scraping them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use gitfaas_common::settings::{KafkaSettings, TelemetrySettings, TopicSettings};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

pub mod cluster;
pub mod git_http;
pub mod kafka;
pub mod keycloak;
pub mod oidc;
pub mod ops;
pub mod otlp;
pub mod package_index;
pub mod prometheus;
pub mod sandbox;
pub mod scaling;
pub mod sse;

pub use oidc::Provider;

pub mod infra {
    pub fn brokers() -> String {
        std::env::var("GITFAAS_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
    }
    pub fn redis_url() -> String {
        std::env::var("GITFAAS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6390/".into())
    }
    /// Directory served by the test `git daemon`, and the URL it is served at.
    pub fn git_root() -> std::path::PathBuf {
        std::env::var("GITFAAS_TEST_GIT_ROOT").unwrap_or_else(|_| "/var/lib/gitfaas/test-repos".into()).into()
    }
    pub fn git_url() -> String {
        std::env::var("GITFAAS_TEST_GIT_URL").unwrap_or_else(|_| "git://127.0.0.1:9419".into())
    }
    /// Where the service binaries of this build are (`scripts/test.sh` builds them and
    /// sets `GITFAAS_BIN_DIR`); by default the target directory this test binary is in.
    pub fn bin_dir() -> std::path::PathBuf {
        std::env::var_os("GITFAAS_BIN_DIR").map(Into::into).unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent().and_then(std::path::Path::parent).expect("target/<profile>/deps").to_owned()
        })
    }
}

/// A name no other test or run uses: `PREFIX-<run tag><12 hex>`. The run tag
/// (`GITFAAS_TEST_RUN`, set by `scripts/test.sh`) lets the run's topics be swept at its end
/// (`sweep-topics`).
pub fn unique(prefix: &str) -> String {
    let run = std::env::var("GITFAAS_TEST_RUN").ok().filter(|r| is_run_tag(r)).unwrap_or_default();
    format!("{prefix}-{run}{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// `r` and six lowercase hex digits, as `scripts/test.sh` makes them.
pub fn is_run_tag(tag: &str) -> bool {
    tag.len() == 7 && tag.starts_with('r') && tag[1..].bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Kafka settings of a test stack; `GITFAAS_TEST_KAFKA_CLIENT` (`key=value,…`) adds
/// librdkafka settings to every service's client, e.g. `group.protocol=consumer`.
pub fn kafka_settings(topic_prefix: &str) -> KafkaSettings {
    let client = std::env::var("GITFAAS_TEST_KAFKA_CLIENT").unwrap_or_default();
    KafkaSettings {
        brokers: infra::brokers(),
        topics: TopicSettings::prefixed(topic_prefix),
        partitions: 2,
        client: client.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect(),
    }
}

pub fn telemetry() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let settings = TelemetrySettings { log_filter: "warn,gitfaas=info".into(), ..Default::default() };
        std::mem::forget(gitfaas_common::telemetry::init("gitfaas-tests", &settings));
    });
}

pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// Loopback, which the default policy blocks: the tests' git daemon, git HTTP
/// servers and data-link servers all listen on it, so the harness opts in.
pub const LOOPBACK_RANGES: &str = "127.0.0.0/8,::1";

pub fn loopback_ranges() -> Vec<gitfaas_common::policy::IpRange> {
    LOOPBACK_RANGES.split(',').map(|r| r.parse().expect("a range")).collect()
}

pub fn frontend_settings(topic_prefix: &str) -> gitfaas_frontend::Settings {
    let mut s: gitfaas_frontend::Settings =
        gitfaas_common::settings::load_from(&config_dir(), "frontend").expect("frontend config");
    s.kafka = kafka_settings(topic_prefix);
    // jobs placed by their id, as without affinity: tests of partitions moving between
    // executors count on every partition getting jobs (tests/tests/affinity.rs turns it on)
    s.frontend.affinity_spread = 0;
    s.frontend.listen = "127.0.0.1:0".into();
    s.frontend.redis_url = infra::redis_url();
    s.frontend.key_prefix = unique("test");
    s.frontend.group_id = format!("{topic_prefix}frontend");
    s.frontend.policy.allowed_ranges = loopback_ranges();
    use_oidc(&mut s, &Provider::shared().issuer);
    s
}

/// Makes the frontend trust `issuer` (a test provider).
pub fn use_oidc(settings: &mut gitfaas_frontend::Settings, issuer: &str) {
    let auth = &mut settings.frontend.auth;
    auth.mode = gitfaas_frontend::AuthMode::Oidc;
    auth.issuer = Some(issuer.to_owned());
    auth.audience = Some(oidc::AUDIENCE.into());
    auth.roles_claim = "roles".into();
    auth.leeway_secs = 5;
    auth.jwks_refresh_min_secs = 1;
}

pub fn executor_settings(topic_prefix: &str, state: &Path) -> gitfaas_executor::Settings {
    let mut s: gitfaas_executor::Settings =
        gitfaas_common::settings::load_from(&config_dir(), "executor").expect("executor config");
    s.kafka = kafka_settings(topic_prefix);
    s.executor.id = Some(format!("{topic_prefix}executor"));
    s.executor.group_id = format!("{topic_prefix}executors");
    s.executor.work_dir = state.join("work");
    s.executor.cache_dir = state.join("cache");
    s.executor.dependencies.cache_dir = state.join("deps");
    s.executor.wasm.cache_dir = state.join("wasm");
    s.executor.shutdown_grace_secs = 5;
    s.executor.policy.allowed_ranges = loopback_ranges();
    s.executor.metrics_listen = Some("127.0.0.1:0".into()); // several executors share the machine
    s
}

/// A frontend and an executor running on a runtime of their own, so that they
/// outlive any one test's runtime.
pub struct Stack {
    pub base_url: String,
    pub topic_prefix: String,
    pub redis_prefix: String,
    pub executor_id: String,
    /// Port of the executor's `/metrics` and `/health` listener (with an executor).
    pub executor_ops_port: Option<u16>,
    /// An access token of the user `alice`, used by the helpers below.
    pub token: String,
}

/// Changes a stack's frontend and executor settings before they start.
pub type Customize = Box<dyn FnOnce(&mut gitfaas_frontend::Settings, &mut gitfaas_executor::Settings) + Send>;

impl Stack {
    pub fn start(with_executor: bool) -> Stack {
        Self::start_with(with_executor, Box::new(|_, _| {}))
    }

    /// Starts a stack whose settings `customize` may change.
    pub fn start_with(with_executor: bool, customize: Customize) -> Stack {
        telemetry();
        let topic_prefix = format!("{}.", unique("t"));
        let (tx, rx) = std::sync::mpsc::channel();
        let prefix = topic_prefix.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let state = tempfile::tempdir().expect("tempdir").keep();
                let mut frontend = frontend_settings(&prefix);
                let mut executor = executor_settings(&prefix, &state);
                customize(&mut frontend, &mut executor);
                let redis_prefix = frontend.frontend.key_prefix.clone();
                let trusts_keycloak = frontend.frontend.auth.issuer == Some(keycloak::issuer());
                let app = gitfaas_frontend::Application::build(frontend).await.expect("frontend starts");
                let port = app.port();
                tokio::spawn(app.run_until_stopped(std::future::pending()));
                let executor_id = executor.executor_id();
                let mut executor_ops_port = None;
                if with_executor {
                    let worker = gitfaas_executor::build(&executor).await.expect("executor starts");
                    executor_ops_port = worker.ops_port;
                    tokio::spawn(worker.run(tokio_util::sync::CancellationToken::new()));
                }
                let token = if trusts_keycloak {
                    keycloak::token("alice").await
                } else {
                    Provider::shared().token("alice").await
                };
                tx.send((format!("http://127.0.0.1:{port}"), redis_prefix, executor_id, executor_ops_port, token))
                    .unwrap();
                std::future::pending::<()>().await;
            });
        });
        let (base_url, redis_prefix, executor_id, executor_ops_port, token) =
            rx.recv_timeout(Duration::from_secs(60)).expect("stack started");
        Stack { base_url, topic_prefix, redis_prefix, executor_id, executor_ops_port, token }
    }

    /// One stack with an executor, shared by the tests of a test binary.
    pub fn shared() -> &'static Stack {
        static STACK: OnceLock<Stack> = OnceLock::new();
        STACK.get_or_init(|| Stack::start(true))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn submit(&self, body: &Value) -> reqwest::Response {
        self.submit_as(&self.token, body).await
    }

    pub async fn submit_as(&self, token: &str, body: &Value) -> reqwest::Response {
        reqwest::Client::new().post(self.url("/v1/jobs")).bearer_auth(token).json(body).send().await.expect("submit")
    }

    /// GET `path` with `token`.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        reqwest::Client::new().get(self.url(path)).bearer_auth(token).send().await.expect("get")
    }

    /// GET `path` as alice.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.token, path).await
    }

    /// Submits a job that must be accepted and returns its id.
    pub async fn submit_ok(&self, body: &Value) -> String {
        let response = self.submit(body).await;
        let status = response.status();
        let json: Value = response.json().await.expect("json body");
        assert_eq!(status, 202, "{json}");
        json["id"].as_str().expect("id").to_owned()
    }

    /// Waits (long-polling) for the job's terminal result.
    pub async fn result(&self, id: &str) -> Value {
        for _ in 0..12 {
            let response = self.get(&format!("/v1/jobs/{id}/result?wait=10")).await;
            if response.status() == 200 {
                return response.json().await.expect("result json");
            }
            let status = response.status();
            assert_eq!(status, 409, "unexpected answer while waiting: {}", response.text().await.unwrap_or_default());
        }
        panic!("job {id} did not finish in 120s");
    }

    pub fn topics(&self) -> TopicSettings {
        TopicSettings::prefixed(&self.topic_prefix)
    }
}

/// A repository served by the test git daemon; returns its URL.
pub fn git_repo(files: &[(&str, &str)]) -> String {
    git_repo_of(&files.iter().map(|(path, text)| (*path, text.as_bytes())).collect::<Vec<_>>())
}

/// A repository of files of any bytes (a wasm module), served by the test git daemon.
pub fn git_repo_of(files: &[(&str, &[u8])]) -> String {
    let name = unique("repo");
    let dir = infra::git_root().join(&name);
    std::fs::create_dir_all(&dir).expect("repo dir");
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(&dir).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    for (path, content) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, content).unwrap();
        if content.starts_with(b"#!") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    git(&["add", "."]);
    git(&["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "function"]);
    format!("{}/{name}", infra::git_url())
}

/// Commits `files` (written over what is there) on the branch of the test
/// repository at `url`: a push, as the git server sees it.
pub fn commit_to(url: &str, files: &[(&str, &str)]) {
    let dir = infra::git_root().join(url.rsplit('/').next().expect("a repository url"));
    for (path, content) in files {
        std::fs::write(dir.join(path), content).expect("file written");
    }
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(&dir).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["add", "."]);
    git(&["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "next"]);
}

/// A producer on the test broker, for messages a test writes itself.
pub fn producer() -> FutureProducer {
    gitfaas_common::kafka::client_config(&kafka_settings("")).create().expect("test producer")
}

/// Publishes `payload` under `key` on `topic`, as a service would (the key is the job id,
/// or an observer-topic message's own key): for messages a test makes up or breaks.
pub async fn publish_raw(producer: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    let record = FutureRecord::to(topic).key(key).payload(payload);
    producer.send(record, Duration::from_secs(10)).await.expect("published");
}

/// A python function sleeping `input.secs` seconds and returning `input.n`, as a
/// repository of the test git server.
pub fn sleep_repo() -> String {
    git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "import time\ndef main(data, credentials):\n    time.sleep(data['secs'])\n    return data['n']\n"),
    ])
}

/// Every message on `topic` (all partitions, from the beginning), read with a
/// real Kafka client.
/// A message as read back from a topic: key, payload and headers.
pub type RawMessage = (Option<String>, Vec<u8>, Vec<(String, String)>);

pub fn read_topic(topic: &str) -> Vec<RawMessage> {
    read_topic_from(&infra::brokers(), topic)
}

/// Every key, payload and header of `topics`, as one byte string to scan.
pub fn topics_bytes(topics: &[&str]) -> Vec<u8> {
    let mut raw = Vec::new();
    for topic in topics {
        for (key, payload, headers) in read_topic(topic) {
            raw.extend(key.unwrap_or_default().into_bytes());
            raw.extend(payload);
            raw.extend(format!("{headers:?}").into_bytes());
        }
    }
    raw
}

/// [`read_topic`] on the broker at `brokers`.
pub fn read_topic_from(brokers: &str, topic: &str) -> Vec<RawMessage> {
    read_topic_with(rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).clone(), topic)
}

/// [`read_topic`] through a client configured by `config` (brokers, SASL).
pub fn read_topic_with(config: rdkafka::ClientConfig, topic: &str) -> Vec<RawMessage> {
    read_partitions_with(config, topic).into_iter().map(|(_, message)| message).collect()
}

/// Every message of `topic` with the partition it is on.
pub fn read_topic_partitions(topic: &str) -> Vec<(i32, RawMessage)> {
    read_partitions_with(rdkafka::ClientConfig::new().set("bootstrap.servers", infra::brokers()).clone(), topic)
}

/// Reads each partition of `topic` up to its end as it was when the read began
/// (per partition: messages others publish meanwhile neither end the read early
/// nor keep it going).
fn read_partitions_with(mut config: rdkafka::ClientConfig, topic: &str) -> Vec<(i32, RawMessage)> {
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = config
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut ends = std::collections::HashMap::new();
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).expect("watermarks");
        if high > low {
            ends.insert(p, high);
            list.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
        }
    }
    let mut messages = Vec::new();
    if ends.is_empty() {
        return messages;
    }
    consumer.assign(&list).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ends.is_empty() && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let Some(&end) = ends.get(&m.partition()) else { continue };
            if m.offset() >= end {
                ends.remove(&m.partition());
                continue;
            }
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            messages.push((m.partition(), (key, m.payload().unwrap_or_default().to_vec(), headers)));
            if m.offset() + 1 >= end {
                ends.remove(&m.partition());
            }
        }
    }
    messages
}

/// Containers (running or not) of the job: those that carry its label (cold
/// runs, dependency builds) and those named after it (a ready sandbox takes the
/// name of the job it is claimed for: labels are fixed at creation).
pub async fn containers_of_job(job_id: &str) -> usize {
    job_containers(job_id, false).await.len()
}

/// The ids of the job's containers (see [`containers_of_job`]), only running ones
/// when `running`.
pub async fn job_containers(job_id: &str, running: bool) -> Vec<String> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let docker = bollard::Docker::connect_with_defaults().expect("docker");
    let label = format!("{}={job_id}", gitfaas_sandbox::JOB_LABEL);
    let mut ids = std::collections::BTreeSet::new();
    for (filter, value) in [("label", label.as_str()), ("name", job_id)] {
        let mut filters = std::collections::HashMap::from([(filter, vec![value])]);
        if running {
            filters.insert("status", vec!["running"]);
        }
        let options = ListContainersOptionsBuilder::default().all(!running).filters(&filters).build();
        let found = docker.list_containers(Some(options)).await.expect("list containers");
        ids.extend(found.into_iter().filter_map(|c| c.id));
    }
    ids.into_iter().collect()
}

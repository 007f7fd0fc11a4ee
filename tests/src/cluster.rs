//! A whole gitfaas deployment as separate processes, for fault tests: its own
//! Apache Kafka node (durable log directories), its own Redis (append-only file), the
//! frontend and executors as the real binaries. Each piece can be killed,
//! restarted or wiped while jobs run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitfaas_common::kafka::decode;
use gitfaas_common::{JobEvent, JobResult};
use serde_json::{json, Value};

use crate::kafka::{free_port, wait_port, KafkaNode, KafkaSpec};
use crate::{infra, oidc, Provider};

/// Client settings for quick rebalances in fault tests.
pub const FAST_REBALANCE: [(&str, &str); 2] = [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "1000")];

/// The frontends' settings for the topics fault tests bind to triggers.
const TRIGGER_TOPICS: &str = "frontend:\n  triggers:\n    allowed_topics: [\"trigger-*\"]\n";

/// HTTP that rides out a frontend restart (retries connection errors and 503).
pub async fn call(request: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    for _ in 0..300 {
        match request().send().await {
            Ok(response) if response.status().as_u16() != 503 => return response,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("the frontend did not come back");
}

pub struct Cluster {
    pub dir: PathBuf,
    /// `bootstrap.servers` of the cluster's brokers.
    pub brokers: String,
    pub kafka: KafkaSpec,
    pub redis_port: u16,
    pub frontend_port: u16,
    config_dir: PathBuf,
    pub nodes: Vec<KafkaNode>,
    redis: Option<Child>,
    frontend: Option<Child>,
    /// Frontends besides the first, by name: their process and port.
    pub frontends: HashMap<String, (Child, u16)>,
    pub executors: HashMap<String, Child>,
    started: Vec<String>,
}

impl Cluster {
    /// One broker; `client` is passed to librdkafka by every service (e.g. short
    /// session timeouts).
    pub fn start(client: &[(&str, &str)]) -> Cluster {
        Self::start_on(KafkaSpec::single(), client)
    }

    /// The brokers of `kafka`, whose client settings (SASL) every service gets besides `client`.
    pub fn start_on(kafka: KafkaSpec, client: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap().keep();
        let config_dir = dir.join("config");
        std::fs::create_dir_all(&config_dir).unwrap();
        let source = crate::config_dir();
        for file in ["base.yaml", "frontend.yaml", "executor.yaml", "observer.yaml"] {
            std::fs::copy(source.join(file), config_dir.join(file)).unwrap();
        }
        let client: String = kafka
            .client_settings()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(client.iter().copied())
            .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
            .collect();
        for service in ["frontend", "executor"] {
            // topic triggers may bind the topics fault tests make (`trigger-…`)
            let extra = if service == "frontend" { TRIGGER_TOPICS } else { "" };
            std::fs::write(
                config_dir.join(format!("{service}.faults.yaml")),
                format!("kafka:\n  client:\n{client}{extra}"),
            )
            .unwrap();
        }
        let nodes = crate::kafka::start(&dir, &kafka);
        let mut cluster = Cluster {
            brokers: crate::kafka::bootstrap(&nodes),
            kafka,
            nodes,
            redis_port: free_port(),
            frontend_port: free_port(),
            dir,
            config_dir,
            redis: None,
            frontend: None,
            frontends: HashMap::new(),
            executors: HashMap::new(),
            started: Vec::new(),
        };
        cluster.start_redis();
        cluster.start_frontend();
        cluster
    }

    fn log(&self, name: &str) -> Stdio {
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{name}.log"))).unwrap();
        Stdio::from(file)
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    pub fn start_redis(&mut self) {
        let data = self.dir.join("redis");
        std::fs::create_dir_all(&data).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.redis_port.to_string(), "--bind", "127.0.0.1", "--appendonly", "yes", "--save", ""])
            .arg("--dir")
            .arg(&data)
            .stdout(self.log("redis"))
            .stderr(self.log("redis"))
            .spawn()
            .unwrap();
        self.redis = Some(child);
        wait_port(self.redis_port, "redis");
    }

    fn env(&self, command: &mut Command) {
        command
            .env("GITFAAS_CONFIG_DIR", &self.config_dir)
            .env("GITFAAS_ENV", "faults")
            .env("GITFAAS__KAFKA__BROKERS", &self.brokers)
            .env("GITFAAS__FRONTEND__POLICY__ALLOWED_RANGES", crate::LOOPBACK_RANGES)
            .env("GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES", crate::LOOPBACK_RANGES)
            .env("GITFAAS__EXECUTOR__METRICS_LISTEN", "127.0.0.1:0") // several executors on one machine
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn");
    }

    pub fn start_frontend(&mut self) {
        self.frontend = Some(self.spawn_frontend("frontend", self.frontend_port));
    }

    /// Another frontend of the same deployment (same Redis, topics and groups),
    /// named `name`; its port.
    pub fn start_another_frontend(&mut self, name: &str) -> u16 {
        let port = free_port();
        let child = self.spawn_frontend(name, port);
        self.frontends.insert(name.to_owned(), (child, port));
        port
    }

    /// SIGKILL of the first frontend (`"frontend"`) or of another one.
    pub fn kill_frontend(&mut self, name: &str) {
        let child = if name == "frontend" { self.frontend.take() } else { self.frontends.remove(name).map(|(c, _)| c) };
        let mut child = child.expect("running frontend");
        Self::signal(&child, "-KILL");
        child.wait().unwrap();
    }

    fn spawn_frontend(&self, name: &str, port: u16) -> Child {
        let mut command = Command::new(infra::bin_dir().join("gitfaas-frontend"));
        self.env(&mut command);
        command
            .env("GITFAAS__FRONTEND__LISTEN", format!("127.0.0.1:{port}"))
            .env("GITFAAS__FRONTEND__REDIS_URL", format!("redis://127.0.0.1:{}/", self.redis_port))
            .env("GITFAAS__FRONTEND__AUTH__MODE", "oidc")
            .env("GITFAAS__FRONTEND__AUTH__ISSUER", &Provider::shared().issuer)
            .env("GITFAAS__FRONTEND__AUTH__AUDIENCE", oidc::AUDIENCE)
            .env("GITFAAS__FRONTEND__MAX_BACKLOG", "100000")
            // jobs placed by their id: the fault tests count on every partition getting jobs
            .env("GITFAAS__FRONTEND__AFFINITY_SPREAD", "0")
            .stdout(self.log(name))
            .stderr(self.log(name));
        let child = command.spawn().expect("frontend binary (scripts/test.sh builds it)");
        wait_port(port, "frontend");
        child
    }

    pub fn start_executor(&mut self, id: &str, slots: u32) {
        self.start_executor_with(id, slots, &[]);
    }

    /// An executor with `env` besides the usual settings; the port of its
    /// `/metrics` and health listener.
    pub fn start_executor_with(&mut self, id: &str, slots: u32, env: &[(&str, &str)]) -> u16 {
        let mut command = Command::new(infra::bin_dir().join("gitfaas-executor"));
        self.env(&mut command);
        let state = self.dir.join(id);
        let metrics_port = free_port();
        command
            .envs(env.iter().copied())
            .env("GITFAAS__EXECUTOR__METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("GITFAAS__EXECUTOR__ID", id)
            .env("GITFAAS__EXECUTOR__SLOTS", slots.to_string())
            .env("GITFAAS__EXECUTOR__SHUTDOWN_GRACE_SECS", "60")
            .env("GITFAAS__EXECUTOR__WORK_DIR", state.join("work"))
            .env("GITFAAS__EXECUTOR__CACHE_DIR", state.join("cache"))
            .stdout(self.log(id))
            .stderr(self.log(id));
        self.executors.insert(id.to_owned(), command.spawn().expect("executor binary (scripts/test.sh builds it)"));
        self.started.push(id.to_owned());
        metrics_port
    }

    fn signal(child: &Child, signal: &str) {
        Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    }

    /// SIGKILL: no cleanup, no final commit.
    pub fn kill_executor(&mut self, id: &str) {
        let mut child = self.executors.remove(id).expect("running executor");
        Self::signal(&child, "-KILL");
        child.wait().unwrap();
    }

    /// SIGTERM without waiting for the exit.
    pub fn terminate_executor(&mut self, id: &str) -> Child {
        let child = self.executors.remove(id).expect("running executor");
        Self::signal(&child, "-TERM");
        child
    }

    fn stop(child: Option<Child>) {
        if let Some(mut child) = child {
            crate::kafka::stop_child(&mut child, Duration::from_secs(10));
        }
    }

    /// The (first) broker crashes (SIGKILL) and comes back on the same log directories.
    pub fn restart_broker(&mut self) {
        self.nodes[0].kill();
        self.nodes[0].start();
    }

    /// A client configuration for the cluster's brokers (with its SASL settings).
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        self.kafka.client_config(&self.nodes)
    }

    pub fn restart_redis(&mut self) {
        Self::stop(self.redis.take());
        self.start_redis();
    }

    /// Loses everything Redis had.
    pub fn wipe_redis(&mut self) {
        Self::stop(self.redis.take());
        std::fs::remove_dir_all(self.dir.join("redis")).unwrap();
        self.start_redis();
    }

    pub fn restart_frontend(&mut self) {
        Self::stop(self.frontend.take());
        self.start_frontend();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.frontend_port)
    }

    pub fn git_url(&self) -> String {
        infra::git_url()
    }

    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }
}

/// The API and the results topic of a cluster, as a client sees them.
impl Cluster {
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let response = call(|| client.get(self.url("/health/ready"))).await;
        assert_eq!(response.status(), 200);
    }

    /// Submits a job of [`crate::sleep_repo`]; its id.
    pub async fn submit_sleep(&self, token: &str, repo: &str, n: u32, secs: f64) -> String {
        let client = reqwest::Client::new();
        let body = json!({"repo": repo, "ref": "main", "input": {"n": n, "secs": secs}, "timeout_secs": 120});
        let response = call(|| client.post(self.url("/v1/jobs")).bearer_auth(token).json(&body)).await;
        assert_eq!(response.status(), 202);
        response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// Results of `ids`, waiting up to `limit` for all of them.
    pub async fn results(&self, token: &str, ids: &[String], limit: Duration) -> HashMap<String, Value> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + limit;
        let mut done = HashMap::new();
        while done.len() < ids.len() {
            assert!(Instant::now() < deadline, "only {} of {} jobs finished", done.len(), ids.len());
            let waiting: Vec<&String> = ids.iter().filter(|id| !done.contains_key(*id)).collect();
            for id in waiting {
                let response = call(|| client.get(self.url(&format!("/v1/jobs/{id}/result"))).bearer_auth(token)).await;
                if response.status() == 200 {
                    done.insert(id.clone(), response.json::<Value>().await.unwrap());
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        done
    }

    /// Waits until `executor` is running at least one job.
    pub async fn wait_running_on(&self, token: &str, executor: &str) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let running: Value = call(|| client.get(self.url("/v1/jobs?status=running&limit=100")).bearer_auth(token))
                .await
                .json()
                .await
                .unwrap();
            if running["jobs"].as_array().unwrap().iter().any(|j| j["executor_id"] == executor) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{executor} never ran a job");
    }

    /// Every terminal result on the results topic.
    pub fn finished_events(&self) -> Vec<JobResult> {
        crate::read_topic_with(self.client_config(), "gitfaas.results")
            .into_iter()
            .filter_map(|(_, payload, _)| match decode::<gitfaas_common::JobEvent>(&payload) {
                Ok(JobEvent::Finished(result)) => Some(result),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in self.executors.drain() {
            Self::stop(Some(child));
        }
        Self::stop(self.frontend.take());
        for (_, (child, _)) in self.frontends.drain() {
            Self::stop(Some(child));
        }
        Self::stop(self.redis.take());
        for node in &mut self.nodes {
            node.stop();
        }
        // containers of executors killed with -9 have no successor to remove them
        for id in &self.started {
            let filter = format!("label=io.gitfaas.executor={id}");
            if let Ok(out) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() {
                for container in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("docker").args(["rm", "-f", container]).output();
                }
            }
        }
    }
}

//! Apache Kafka brokers of a test's own: KRaft nodes in combined mode on loopback
//! ports, started through `scripts/kafka.sh run` (the same configuration as the
//! local stack's broker), each with its log directories in the test's directory,
//! so it can be killed with SIGKILL and restarted on its data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_port(port: u16, what: &str) {
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on {port}");
}

/// SIGTERM, then SIGKILL if `child` has not exited within `grace`.
pub fn stop_child(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh")
}

/// One node: broker and controller in one process.
pub struct KafkaNode {
    pub node_id: u32,
    pub port: u16,
    pub controller_port: u16,
    dir: PathBuf,
    voters: String,
    extra: Vec<String>,
    format_args: Vec<String>,
    cluster_id: String,
    child: Option<Child>,
}

impl KafkaNode {
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the node and waits until its client port listens.
    pub fn start(&mut self) {
        self.spawn();
        wait_port(self.port, "kafka broker");
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("broker log file");
        let child = Command::new("bash")
            .arg(script())
            .arg("run")
            .arg(&self.dir)
            .args([self.port.to_string(), self.controller_port.to_string()])
            .args([self.node_id.to_string(), self.voters.clone()])
            .args(&self.extra)
            .env("GITFAAS_KAFKA_CLUSTER_ID", &self.cluster_id)
            .env("GITFAAS_KAFKA_FORMAT_ARGS", self.format_args.join(" "))
            .env("GITFAAS_KAFKA_HEAP", "512m")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("scripts/kafka.sh runs (scripts/setup.sh installs java and the jars)");
        self.child = Some(child);
    }

    /// SIGKILL: the process dies with whatever it had not written.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and a wait for the controlled shutdown.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Duration::from_secs(30));
        }
    }
}

impl Drop for KafkaNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a test's brokers are set up.
#[derive(Clone, Debug)]
pub struct KafkaSpec {
    /// Nodes of the one KRaft quorum, each broker and controller.
    pub nodes: u32,
    /// Server properties every node gets (they override `scripts/kafka.sh`'s defaults).
    pub extra: Vec<String>,
    /// Clients must authenticate with SASL/SCRAM-SHA-512 as this user and password;
    /// the brokers talk to each other on a plaintext listener of their own.
    pub scram: Option<(String, String)>,
}

impl KafkaSpec {
    pub fn single() -> Self {
        Self { nodes: 1, extra: Vec::new(), scram: None }
    }

    /// A client of `nodes` (brokers of this spec), with its SASL settings.
    pub fn client_config(&self, nodes: &[KafkaNode]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", bootstrap(nodes));
        for (key, value) in self.client_settings() {
            config.set(key, value);
        }
        config
    }

    /// What a client of these brokers needs besides `bootstrap.servers`.
    pub fn client_settings(&self) -> Vec<(String, String)> {
        let Some((user, password)) = &self.scram else { return Vec::new() };
        [
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", user),
            ("sasl.password", password),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// The nodes of `spec`, not started, with their log directories under `dir`.
pub fn nodes(dir: &Path, spec: &KafkaSpec) -> Vec<KafkaNode> {
    let ports: Vec<(u16, u16, u16)> = (0..spec.nodes).map(|_| (free_port(), free_port(), free_port())).collect();
    let voters: Vec<String> =
        ports.iter().enumerate().map(|(i, (_, controller, _))| format!("{}@127.0.0.1:{controller}", i + 1)).collect();
    let cluster_id = kafka_cluster_id();
    let mut shared = Vec::new();
    if spec.nodes > 1 {
        let replicas = spec.nodes.min(3);
        for key in ["offsets.topic", "transaction.state.log", "share.coordinator.state.topic"] {
            shared.push(format!("{key}.replication.factor={replicas}"));
        }
        shared.push(format!("default.replication.factor={replicas}"));
    }
    shared.extend(spec.extra.iter().cloned());
    ports
        .into_iter()
        .enumerate()
        .map(|(i, (port, controller_port, internal_port))| {
            let mut lines = shared.clone();
            let mut format_args = Vec::new();
            if let Some((user, password)) = &spec.scram {
                lines.extend([
                    format!("listeners=CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port},CONTROLLER://127.0.0.1:{controller_port}"),
                    format!("advertised.listeners=CLIENT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port}"),
                    "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
                    "inter.broker.listener.name=INTERNAL".into(),
                    "sasl.enabled.mechanisms=SCRAM-SHA-512".into(),
                    "listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;".into(),
                ]);
                format_args.push(format!("--add-scram=SCRAM-SHA-512=[name={user},password={password}]"));
            }
            KafkaNode {
                node_id: i as u32 + 1,
                port,
                controller_port,
                dir: dir.join(format!("kafka-{}", i + 1)),
                voters: voters.join(","),
                extra: lines,
                format_args,
                cluster_id: cluster_id.clone(),
                child: None,
            }
        })
        .collect()
}

/// The `host:port` list of `nodes`, for `bootstrap.servers`.
pub fn bootstrap(nodes: &[KafkaNode]) -> String {
    nodes.iter().map(KafkaNode::address).collect::<Vec<_>>().join(",")
}

/// A KRaft cluster id: 16 bytes (a fresh UUIDv7), base64url without padding.
fn kafka_cluster_id() -> String {
    use base64::Engine;
    let bytes = *uuid::Uuid::now_v7().as_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts the nodes of `spec` and waits until each listens.
pub fn start(dir: &Path, spec: &KafkaSpec) -> Vec<KafkaNode> {
    let mut nodes = nodes(dir, spec);
    // a quorum of several needs its voters up together: start all, then wait
    for node in &mut nodes {
        node.spawn();
    }
    for node in &nodes {
        wait_port(node.port, "kafka broker");
    }
    nodes
}

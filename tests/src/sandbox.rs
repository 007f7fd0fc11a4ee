//! Helpers of the sandbox, hostile-job, credentials and data-link tests: stacks
//! whose executor settings the test chooses (OCI runtime, key pair), a look at a
//! job's running container through the Docker API, captured service logs, and a
//! small HTTP server on 127.0.0.1 for sources and sinks.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Stack;

/// How a test stack's executor (and its frontend) are set up.
#[derive(Clone)]
pub struct Options {
    pub oci_runtime: &'static str,
    /// An executor private key; the frontend gets its public half.
    pub private_key: Option<String>,
}

impl Options {
    pub fn runtime(oci_runtime: &'static str) -> Self {
        Self { oci_runtime, private_key: None }
    }
}

/// One stack per test binary whose executor has a fresh key pair (credentials
/// can be sealed to it), with the services' logs captured from its start.
pub fn keyed_stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        capture_logs();
        let key = gitfaas_common::sealed::PrivateKey::generate();
        start(Options { oci_runtime: "runc", private_key: Some(key.to_base64().to_string()) })
    })
}

/// Whether `needle` occurs in `haystack` (for scans of topics, Redis and logs).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Starts a frontend and an executor configured by `options` (see [`Stack::start_with`]).
pub fn start(options: Options) -> Stack {
    Stack::start_with(
        true,
        Box::new(move |frontend, executor| {
            executor.executor.oci_runtime = options.oci_runtime.into();
            if let Some(key) = &options.private_key {
                let private = gitfaas_common::sealed::PrivateKey::from_base64(key).expect("key");
                frontend.frontend.executor_public_key = Some(private.public_base64());
                executor.executor.private_key = Some(key.clone().into());
            }
        }),
    )
}

/// The running container of a job, as Docker describes it (waits up to 30 s).
pub async fn running_container(job_id: &str) -> ContainerInspectResponse {
    let docker = bollard::Docker::connect_with_defaults().expect("docker");
    for _ in 0..300 {
        if let Some(id) = crate::job_containers(job_id, true).await.first() {
            return docker.inspect_container(id, None).await.expect("inspect");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no running container for job {job_id}");
}

/// `security_opt` of a container: no-new-privileges, and gitfaas's seccomp
/// profile, which allows no call that reaches into another process.
pub fn assert_profile_denies_reaching_other_processes(security_opt: &[String]) {
    assert_eq!(security_opt.len(), 2, "{security_opt:?}");
    assert_eq!(security_opt[0], "no-new-privileges");
    let profile = security_opt[1].strip_prefix("seccomp=").expect("a seccomp profile");
    let profile: serde_json::Value = serde_json::from_str(profile).expect("the profile is json");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let allowed = gitfaas_sandbox::seccomp::allowed_names(&profile);
    assert!(allowed.iter().any(|name| name == "read"), "{allowed:?}");
    for denied in gitfaas_sandbox::seccomp::DENIED {
        assert!(!allowed.iter().any(|name| name == denied), "{denied} allowed");
    }
}

/// Everything the services log, from the moment [`capture_logs`] is first called
/// (at debug level for gitfaas, info for the rest).
pub fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("info,gitfaas=debug,gitfaas_executor=debug,gitfaas_frontend=debug")
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        std::io::stderr().write(bytes)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What an upload sent: method and body.
pub type Upload = (String, Vec<u8>);

/// A tiny HTTP/1.1 server on 127.0.0.1: `GET /<name>` answers a file put in
/// `files` (404 otherwise) and counts it in `fetched`; `PUT` and `POST` store the
/// body under the path in `received`.
#[derive(Clone, Default)]
pub struct HttpServer {
    pub port: u16,
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    pub received: Arc<Mutex<HashMap<String, Upload>>>,
    /// How often each path was asked for with `GET`.
    pub fetched: Arc<Mutex<HashMap<String, u32>>>,
}

impl HttpServer {
    pub async fn start() -> HttpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = HttpServer { port: listener.local_addr().unwrap().port(), ..Default::default() };
        let state = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(state.clone().serve(stream));
            }
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    async fn serve(self, mut stream: tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            let Ok(n) = stream.read(&mut chunk).await else { return };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or("").to_owned(), words.next().unwrap_or("/")[1..].to_owned());
        let length = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0usize);
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let Ok(n) = stream.read(&mut chunk).await else { return };
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        let (status, reply) = match method.as_str() {
            "GET" => match self.files.lock().unwrap().get(&path).inspect(|_| {
                *self.fetched.lock().unwrap().entry(path.clone()).or_default() += 1;
            }) {
                Some(content) => ("200 OK", content.clone()),
                None => ("404 Not Found", Vec::new()),
            },
            "PUT" | "POST" => {
                self.received.lock().unwrap().insert(path, (method, body));
                ("201 Created", Vec::new())
            }
            _ => ("405 Method Not Allowed", Vec::new()),
        };
        let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", reply.len());
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&reply).await;
        let _ = stream.shutdown().await;
    }
}

/// Submits `body` and waits for its job's result.
pub async fn run_to_end(stack: &Stack, body: &serde_json::Value) -> serde_json::Value {
    let id = stack.submit_ok(body).await;
    finished(stack, &id).await
}

/// The terminal result of job `id`, read from the stack's results topic itself
/// (independent of the frontend's store); waits up to 120 s.
pub async fn finished(stack: &Stack, id: &str) -> serde_json::Value {
    let (topic, id) = (stack.topics().results, id.to_owned());
    tokio::task::spawn_blocking(move || finished_blocking(&topic, &id)).await.expect("reader task")
}

fn finished_blocking(topic: &str, id: &str) -> serde_json::Value {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", crate::infra::brokers())
        .set("group.id", crate::unique("finished"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else { continue };
        if message.key() != Some(id.as_bytes()) {
            continue;
        }
        let event: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default()).expect("event json");
        if event["kind"] == "finished" {
            return event;
        }
    }
    panic!("job {id} did not finish in 120s");
}

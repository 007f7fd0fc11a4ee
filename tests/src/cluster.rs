//! A whole gitfaas deployment as separate processes, for fault tests: its own
//! tansu broker (durable sqlite storage), its own Redis (append-only file), the
//! frontend and executors as the real binaries. Each piece can be killed,
//! restarted or wiped while jobs run.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{infra, oidc, Provider};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn bin_dir() -> PathBuf {
    std::env::var_os("GITFAAS_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| "/var/lib/gitfaas/target/debug".into())
}

fn wait_port(port: u16, what: &str) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on {port}");
}

pub struct Cluster {
    pub dir: PathBuf,
    pub kafka_port: u16,
    pub redis_port: u16,
    pub frontend_port: u16,
    config_dir: PathBuf,
    broker: Option<Child>,
    redis: Option<Child>,
    frontend: Option<Child>,
    pub executors: HashMap<String, Child>,
    started: Vec<String>,
}

impl Cluster {
    /// `client` is passed to librdkafka by every service (e.g. short session timeouts).
    pub fn start(client: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap().keep();
        let config_dir = dir.join("config");
        std::fs::create_dir_all(&config_dir).unwrap();
        let source = crate::config_dir();
        for file in ["base.yaml", "frontend.yaml", "executor.yaml", "observer.yaml"] {
            std::fs::copy(source.join(file), config_dir.join(file)).unwrap();
        }
        let client: String = client.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
        for service in ["frontend", "executor"] {
            std::fs::write(config_dir.join(format!("{service}.faults.yaml")), format!("kafka:\n  client:\n{client}"))
                .unwrap();
        }
        let mut cluster = Cluster {
            kafka_port: free_port(),
            redis_port: free_port(),
            frontend_port: free_port(),
            dir,
            config_dir,
            broker: None,
            redis: None,
            frontend: None,
            executors: HashMap::new(),
            started: Vec::new(),
        };
        cluster.start_broker();
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

    pub fn start_broker(&mut self) {
        let data = self.dir.join("tansu");
        std::fs::create_dir_all(&data).unwrap();
        let url = format!("tcp://127.0.0.1:{}", self.kafka_port);
        let child = Command::new("tansu")
            .args(["broker", "--storage-engine", "sqlite://tansu.db", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .current_dir(&data)
            .stdout(self.log("tansu"))
            .stderr(self.log("tansu"))
            .spawn()
            .expect("tansu is installed by scripts/setup.sh");
        self.broker = Some(child);
        wait_port(self.kafka_port, "tansu");
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
            .env("GITFAAS__KAFKA__BROKERS", format!("127.0.0.1:{}", self.kafka_port))
            .env("GITFAAS__FRONTEND__POLICY__ALLOWED_RANGES", crate::LOOPBACK_RANGES)
            .env("GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES", crate::LOOPBACK_RANGES)
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn");
    }

    pub fn start_frontend(&mut self) {
        let mut command = Command::new(bin_dir().join("gitfaas-frontend"));
        self.env(&mut command);
        command
            .env("GITFAAS__FRONTEND__LISTEN", format!("127.0.0.1:{}", self.frontend_port))
            .env("GITFAAS__FRONTEND__REDIS_URL", format!("redis://127.0.0.1:{}/", self.redis_port))
            .env("GITFAAS__FRONTEND__AUTH__MODE", "oidc")
            .env("GITFAAS__FRONTEND__AUTH__ISSUER", &Provider::shared().issuer)
            .env("GITFAAS__FRONTEND__AUTH__AUDIENCE", oidc::AUDIENCE)
            .env("GITFAAS__FRONTEND__MAX_BACKLOG", "100000")
            .stdout(self.log("frontend"))
            .stderr(self.log("frontend"));
        self.frontend = Some(command.spawn().expect("frontend binary (scripts/test.sh builds it)"));
        wait_port(self.frontend_port, "frontend");
    }

    pub fn start_executor(&mut self, id: &str, slots: u32) {
        let mut command = Command::new(bin_dir().join("gitfaas-executor"));
        self.env(&mut command);
        let state = self.dir.join(id);
        command
            .env("GITFAAS__EXECUTOR__ID", id)
            .env("GITFAAS__EXECUTOR__SLOTS", slots.to_string())
            .env("GITFAAS__EXECUTOR__SHUTDOWN_GRACE_SECS", "60")
            .env("GITFAAS__EXECUTOR__WORK_DIR", state.join("work"))
            .env("GITFAAS__EXECUTOR__CACHE_DIR", state.join("cache"))
            .stdout(self.log(id))
            .stderr(self.log(id));
        self.executors.insert(id.to_owned(), command.spawn().expect("executor binary (scripts/test.sh builds it)"));
        self.started.push(id.to_owned());
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
            Self::signal(&child, "-TERM");
            for _ in 0..100 {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The broker crashes (SIGKILL) and comes back on the same storage: tansu's
    /// graceful stop waits for its clients, which reconnect, so it is not used here.
    pub fn restart_broker(&mut self) {
        if let Some(mut broker) = self.broker.take() {
            Self::signal(&broker, "-KILL");
            broker.wait().unwrap();
        }
        self.start_broker();
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

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in self.executors.drain() {
            Self::stop(Some(child));
        }
        Self::stop(self.frontend.take());
        Self::stop(self.redis.take());
        Self::stop(self.broker.take());
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

//! A real Prometheus (Debian's `prometheus` package, `scripts/setup.sh` installs it)
//! scraping a test stack: started on a free loopback port with a generated config and
//! its storage in a temporary directory, queried through its HTTP API, killed when
//! dropped. Also the shipped dashboard's and alert rules' files, which the tests read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kafka::free_port;

/// `deploy/<path>` of this repository.
pub fn deploy_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

/// Every PromQL expression (`expr`) of the shipped Grafana dashboard, as written there.
pub fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy_file("grafana/gitfaas.json")).expect("dashboard file");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    exprs
}

fn collect_exprs(value: &Value, exprs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(expr) if key == "expr" => exprs.push(expr.clone()),
                    other => collect_exprs(other, exprs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, exprs)),
        _ => {}
    }
}

/// A scrape job: its name and the `host:port` targets serving `/metrics`.
pub struct ScrapeJob {
    pub name: &'static str,
    pub targets: Vec<String>,
}

/// A running Prometheus; killed (and its storage removed) when dropped.
pub struct Prometheus {
    pub base_url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on 127.0.0.1, scraping `jobs` every `scrape_secs` and evaluating
    /// `rule_files` as often; returns once its API answers.
    pub async fn start(jobs: &[ScrapeJob], rule_files: &[PathBuf], scrape_secs: u32) -> Prometheus {
        let dir = tempfile::tempdir().expect("prometheus dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_text(jobs, rule_files, scrape_secs)).expect("prometheus config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("prometheus log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus runs (scripts/setup.sh installs Debian's prometheus)");
        let prometheus = Prometheus { base_url: format!("http://127.0.0.1:{port}"), child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(reqwest::get(prometheus.url("/-/ready")).await, Ok(r) if r.status() == 200) {
            assert!(Instant::now() < deadline, "prometheus not ready in 30 s:\n{}", prometheus.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// What Prometheus logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` of the API: its `data`, or the error Prometheus gave.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let mut url = url::Url::parse(&self.url(path)).map_err(|e| e.to_string())?;
        url.query_pairs_mut().extend_pairs(params);
        let response = reqwest::Client::new().get(url).send().await;
        let body: Value = response.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => Err(format!("{}: {}", body["errorType"], body["error"])),
        }
    }

    /// The instant vector (or scalar) `expr` evaluates to now.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        Ok(match &data["result"] {
            Value::Array(series) => series.clone(),
            other => vec![other.clone()],
        })
    }

    /// The scrape targets' health as Prometheus reports it: (job, instance, health, error).
    pub async fn targets(&self) -> Vec<(String, String, String, String)> {
        let data = self.api("/api/v1/targets", &[("state", "active")]).await.expect("targets");
        let field = |t: &Value, k: &str| t[k].as_str().unwrap_or_default().to_owned();
        let targets = data["activeTargets"].as_array().cloned().unwrap_or_default();
        targets
            .iter()
            .map(|t| {
                (field(&t["labels"], "job"), field(&t["labels"], "instance"), field(t, "health"), field(t, "lastError"))
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_text(jobs: &[ScrapeJob], rule_files: &[PathBuf], scrape_secs: u32) -> String {
    let mut text = format!("global:\n  scrape_interval: {scrape_secs}s\n  evaluation_interval: {scrape_secs}s\n");
    text.push_str("rule_files:\n");
    for file in rule_files {
        text.push_str(&format!("  - {:?}\n", file.display().to_string()));
    }
    text.push_str("scrape_configs:\n");
    for job in jobs {
        let targets: Vec<String> = job.targets.iter().map(|t| format!("{t:?}")).collect();
        text.push_str(&format!(
            "  - job_name: {:?}\n    static_configs:\n      - targets: [{}]\n",
            job.name,
            targets.join(", ")
        ));
    }
    text
}

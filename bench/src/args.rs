//! The command line of `gitfaas-bench`: which part to measure, and against what.

use std::path::PathBuf;

use anyhow::{bail, Context};

pub const PARTS: &[&str] =
    &["all", "floors", "cold", "warm", "first", "burst", "broker-floor", "submit", "wasm", "state"];

const FLAGS: &str = "--api, --brokers, --token, --repo, --image, --runs, --burst, --clients, --cpu-clients, \
    --config, --executor-env, --executors, --slots, --metrics, --run-dir, --repos-dir, --git-url, --module, --pace-ms, \
    --out";

pub struct Args {
    pub what: String,
    pub api: String,
    pub brokers: String,
    pub token: String,
    pub repo: String,
    pub image: String,
    pub runs: usize,
    /// Jobs per point of the burst sweep.
    pub burst: usize,
    /// Concurrent clients of each point of the burst sweep (and of the broker floor).
    pub clients: Vec<usize>,
    /// The sweep point whose CPU time is accounted per process.
    pub cpu_clients: usize,
    /// Name of the executor configuration the burst runs against (`shipped`, `tuned`).
    pub config: String,
    /// The `GITFAAS__EXECUTOR__*` settings that configuration sets, as given.
    pub executor_env: String,
    pub executors: usize,
    /// Slots of each executor as configured (for executors without the slots gauge).
    pub slots: usize,
    /// Each executor's Prometheus endpoint.
    pub metrics: Vec<String>,
    /// Where `scripts/lib.sh` keeps its pid files.
    pub run_dir: PathBuf,
    /// The git server's repositories (`first` commits to its own there), and its URL.
    pub repos_dir: PathBuf,
    pub git_url: String,
    /// The module the `first` part's dependency layer holds (its wheel is in the index).
    pub module: PathBuf,
    /// Pause before each first job, in milliseconds.
    pub pace_ms: u64,
    pub out: String,
}

fn list(value: &str) -> anyhow::Result<Vec<usize>> {
    let numbers = value.split(',').map(|n| n.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>();
    let numbers = numbers.with_context(|| format!("{value}: a comma-separated list of numbers"))?;
    if numbers.is_empty() || numbers.contains(&0) {
        bail!("{value}: client counts are at least 1");
    }
    Ok(numbers)
}

/// `executor-1` on the shipped metrics port, `executor-2` on the one `scripts/bench.sh` gives it.
fn default_metrics(executors: usize) -> Vec<String> {
    (1..=executors).map(|n| format!("http://127.0.0.1:{}/metrics", if n == 1 { 9101 } else { 9102 + n })).collect()
}

pub fn parse() -> anyhow::Result<Args> {
    let executors = std::env::var("GITFAAS_BENCH_EXECUTORS").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
    let run_dir = std::env::var("GITFAAS_RUN_DIR").unwrap_or_else(|_| "/var/lib/gitfaas/run".into());
    let mut args = Args {
        what: "all".into(),
        api: "http://127.0.0.1:8080".into(),
        brokers: "127.0.0.1:9092".into(),
        token: std::env::var("GITFAAS_BENCH_TOKEN").unwrap_or_default(),
        repo: "git://127.0.0.1:9418/hello-python".into(),
        image: "gitfaas/python:bookworm".into(),
        runs: 20,
        burst: 120,
        clients: vec![1, 2, 4, 8, 16, 32],
        cpu_clients: 16,
        config: "current".into(),
        executor_env: String::new(),
        executors,
        slots: 2,
        metrics: Vec::new(),
        run_dir: run_dir.into(),
        repos_dir: "/var/lib/gitfaas/repos".into(),
        git_url: "git://127.0.0.1:9418".into(),
        module: "/var/lib/gitfaas/bench-index/benchdep.py".into(),
        pace_ms: 1000,
        out: "bench/results.json".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if !flag.starts_with("--") {
            args.what = flag;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--api" => args.api = value,
            "--brokers" => args.brokers = value,
            "--token" => args.token = value,
            "--repo" => args.repo = value,
            "--image" => args.image = value,
            "--runs" => args.runs = value.parse()?,
            "--burst" => args.burst = value.parse()?,
            "--clients" => args.clients = list(&value)?,
            "--cpu-clients" => args.cpu_clients = value.parse()?,
            "--config" => args.config = value,
            "--executor-env" => args.executor_env = value,
            "--executors" => args.executors = value.parse()?,
            "--slots" => args.slots = value.parse()?,
            "--metrics" => args.metrics = value.split(',').map(|a| format!("http://{a}/metrics")).collect(),
            "--run-dir" => args.run_dir = value.into(),
            "--repos-dir" => args.repos_dir = value.into(),
            "--git-url" => args.git_url = value,
            "--module" => args.module = value.into(),
            "--pace-ms" => args.pace_ms = value.parse()?,
            "--out" => args.out = value,
            _ => bail!("unknown flag {flag} ({FLAGS})"),
        }
    }
    if !PARTS.contains(&args.what.as_str()) {
        bail!("what to measure: {}", PARTS.join(" | "));
    }
    if args.executors == 0 || args.slots == 0 || args.burst == 0 {
        bail!("--executors, --slots and --burst are at least 1");
    }
    if args.metrics.is_empty() {
        args.metrics = default_metrics(args.executors);
    }
    Ok(args)
}

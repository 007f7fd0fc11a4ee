//! `gitfaas-bench`: measures the running local stack (`scripts/stack.sh up`) against
//! its floors, in one run, and writes `bench/results.json` and a table. Every job
//! figure is also given as a ratio to its floor, since absolute times on a shared
//! 2-core machine are noisy. `scripts/bench.sh` starts the stack (release build)
//! and runs it: `scripts/bench.sh [all|floors|cold|warm|burst|submit]`.
//!
//! - [`floors`]: broker round trip, `docker run`, `docker exec`;
//! - [`jobs`], [`warm`]: cold and warm jobs through the REST API, the submit rate;
//! - [`first`]: first jobs of new commits (ready sandboxes), with and without a
//!   cached dependency layer, and warm jobs with a layer;
//! - [`sweep`]: the burst sweep over client counts against one executor
//!   configuration, with [`gauges`] (slot utilisation, prefetched jobs) and [`cpu`]
//!   (CPU per job by process); [`broker_floor`]: the same sweep against a no-op
//!   worker on the broker alone;
//! - [`state`]: functions' state: a job with 10 increments against the same job
//!   without state, `ctx.state.get` in the sandbox, increments per second;
//! - [`wasm`]: the wasm runtime's first and later jobs against `docker run` and
//!   the warm python job, and its instantiate + run measured in the executor.

mod args;
mod broker_floor;
mod cpu;
mod first;
mod floors;
mod gauges;
mod git_floor;
mod jobs;
mod state;
mod stats;
mod sweep;
mod warm;
mod wasm;

use std::time::Duration;

use anyhow::{bail, Context};
use gitfaas_common::settings::{KafkaSettings, TopicSettings};
use serde_json::{json, Value};

fn ratio(value: f64, floor: f64) -> Value {
    json!((value / floor * 100.0).round() / 100.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args::parse()?;
    let kafka = KafkaSettings {
        brokers: args.brokers.clone(),
        topics: TopicSettings::prefixed("gitfaas-bench-unused-"),
        partitions: 1,
        client: Default::default(),
    };
    let wants = |part: &str| args.what == "all" || args.what == part;
    // the parts not measured in this run keep their figures of the last one
    let mut report: Value = std::fs::read(&args.out)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    for (key, value) in [
        ("version", json!(1)),
        ("at", json!(chrono::Utc::now())),
        ("cores", json!(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0))),
        ("profile", json!(if cfg!(debug_assertions) { "debug" } else { "release" })),
    ] {
        report[key] = value;
    }
    let runs = args.runs.max(1);
    let rtt = floors::broker_round_trip(&kafka, 200, 600).await.context("broker round trip")?;
    println!(
        "{:<44} p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms",
        "floor: broker produce→consume", rtt.p50, rtt.p95, rtt.p99
    );
    report["floors"]["broker_round_trip_ms"] = json!(rtt);
    let mut docker_run_p50 = None;
    if wants("floors") || wants("cold") || wants("first") || wants("wasm") {
        let run = floors::docker_run(&args.image, runs.min(10))?;
        let exec = floors::docker_exec(&args.image, runs.min(10))?;
        println!("{:<44} p50 {:>8.2} ms  p95 {:>8.2} ms", "floor: docker run --rm", run.p50, run.p95);
        println!(
            "{:<44} p50 {:>8.2} ms  p95 {:>8.2} ms",
            "floor: docker exec in a running container", exec.p50, exec.p95
        );
        docker_run_p50 = Some(run.p50);
        report["floors"]["docker_run_ms"] = json!(run);
        report["floors"]["docker_exec_ms"] = json!(exec);
    }
    let api = jobs::Api {
        base: args.api.clone(),
        token: args.token.clone(),
        repo: args.repo.clone(),
        client: reqwest::Client::builder().timeout(Duration::from_secs(90)).build()?,
    };
    if ["cold", "warm", "first", "burst", "submit", "wasm", "state"].into_iter().any(wants) && api.token.is_empty() {
        bail!("jobs need a token: --token or GITFAAS_BENCH_TOKEN (scripts/stack.sh token alice)");
    }
    if wants("cold") {
        let cold = api.cold_jobs(runs).await.context("cold jobs")?;
        for (name, s) in [
            ("cold job e2e (client, sync long-poll)", &cold.e2e_ms),
            ("  queue (submitted → started)", &cold.queue_ms),
            ("  run (started → finished)", &cold.run_ms),
            ("  result visible (finished → client)", &cold.result_visible_ms),
        ] {
            println!("{name:<44} p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms", s.p50, s.p95, s.p99);
        }
        let floor = docker_run_p50.expect("measured with cold");
        report["cold_job"] = json!(cold);
        report["ratios"]["cold_e2e_p50_to_docker_run_p50"] = ratio(cold.e2e_ms.p50, floor);
        report["ratios"]["queue_p50_to_broker_round_trip_p50"] = ratio(cold.queue_ms.p50, rtt.p50);
        report["ratios"]["result_visible_p50_to_broker_round_trip_p50"] = ratio(cold.result_visible_ms.p50, rtt.p50);
        println!(
            "{:<44} {}",
            "ratio: cold e2e p50 / docker run p50", report["ratios"]["cold_e2e_p50_to_docker_run_p50"]
        );
    }
    if wants("warm") {
        warm_report(&api, runs.max(50), rtt.p50, &mut report).await?;
    }
    if wants("first") {
        let repos = first::Repos {
            dir: args.repos_dir.clone(),
            url: args.git_url.clone(),
            module: args.module.clone(),
            pace: Duration::from_millis(args.pace_ms),
        };
        let floor = docker_run_p50.expect("measured with first");
        first::report(&api, &repos, runs, floor, &mut report).await.context("first jobs")?;
    }
    if wants("wasm") {
        let setup = wasm::Setup {
            dir: args.repos_dir.clone(),
            url: args.git_url.clone(),
            metrics: args.metrics.first().cloned().context("the executor's metrics address")?,
            pace: Duration::from_millis(args.pace_ms),
            image: args.image.clone(),
        };
        let floor = docker_run_p50.expect("measured with wasm");
        wasm::report(&api, &setup, runs, floor, &mut report).await.context("wasm jobs")?;
    }
    if wants("state") {
        let setup = state::Setup { dir: args.repos_dir.clone(), url: args.git_url.clone() };
        state::report(&api, &setup, runs, &mut report).await.context("state jobs")?;
    }
    if wants("burst") {
        sweep::report(&api, &args, &mut report).await?;
        // the single burst of earlier versions: the sweep replaces it
        for key in ["burst_1_executor", "burst_2_executor"] {
            if let Some(report) = report.as_object_mut() {
                report.remove(key);
            }
            if let Some(ratios) = report["ratios"].as_object_mut() {
                ratios.remove(&format!("{key}_jobs_per_s_to_200"));
            }
        }
    }
    if wants("broker-floor") {
        broker_floor_report(&kafka, &args, &mut report).await?;
    }
    if wants("burst") || wants("broker-floor") {
        // the last part of `scripts/bench.sh burst` shows them all
        let shown = if wants("broker-floor") {
            String::new()
        } else {
            format!("burst_{}_", sweep::section(&args.config, args.executors))
        };
        sweep::ratios(&mut report, &shown);
    }
    if wants("submit") {
        let clients = 8;
        let (submits, size) = api.submit_rate(clients, 400).await.context("submit rate")?;
        let topic = floors::BenchTopic::create(&kafka, "produce", 4).await?;
        let produce = jobs::produce_rate(&kafka, &topic.name, clients, 2000, size).await;
        topic.delete().await;
        let produce = produce.context("produce rate")?;
        println!("{:<44} {submits:>8.1} /s", format!("submit rate ({clients} clients, JWT, acked)"));
        println!("{:<44} {produce:>8.1} /s", format!("floor: acked produce rate ({clients} senders)"));
        report["submit"] =
            json!({"clients": clients, "message_bytes": size, "submits_per_s": submits, "produce_per_s": produce});
        report["ratios"]["submit_rate_to_produce_rate"] = ratio(submits, produce);
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", args.out))?;
    println!("written to {}", args.out);
    Ok(())
}

fn print_split(name: &str, s: &stats::Summary) {
    println!("{name:<44} p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms", s.p50, s.p95, s.p99);
}

/// Sequential jobs of one function served warm, against 2 × the broker round trip + 5 ms.
async fn warm_report(api: &jobs::Api, runs: usize, rtt_p50: f64, report: &mut Value) -> anyhow::Result<()> {
    let warm = api.warm_jobs(runs, 3).await.context("warm jobs")?;
    let j = &warm.jobs;
    print_split("warm job e2e (Prefer: wait, else long-poll)", &j.e2e_ms);
    print_split("  queue (submitted → started)", &j.queue_ms);
    print_split("  run (started → finished)", &j.run_ms);
    print_split("  result visible (finished → client)", &j.result_visible_ms);
    let floor = 2.0 * rtt_p50 + 5.0;
    report["ratios"]["warm_e2e_p50_to_2_round_trips_plus_5ms"] = ratio(j.e2e_ms.p50, floor);
    report["ratios"]["warm_e2e_p99_to_p50"] = ratio(j.e2e_ms.p99, j.e2e_ms.p50);
    report["ratios"]["warm_hit_rate"] = json!(warm.warm_hit_rate);
    println!("{:<44} {:.2}", "warm hit rate", warm.warm_hit_rate);
    println!(
        "{:<44} {}",
        "ratio: warm e2e p50 / (2 rtt + 5 ms)", report["ratios"]["warm_e2e_p50_to_2_round_trips_plus_5ms"]
    );
    println!("{:<44} {}", "ratio: warm e2e p99 / p50", report["ratios"]["warm_e2e_p99_to_p50"]);
    report["warm_job"] = json!(warm);
    Ok(())
}

/// The broker floor at the sweep's client counts.
async fn broker_floor_report(kafka: &KafkaSettings, args: &args::Args, report: &mut Value) -> anyhow::Result<()> {
    let (jobs, size) = (args.burst.max(1000), 600);
    let points = broker_floor::sweep(kafka, &args.clients, jobs, size).await.context("broker floor")?;
    for p in &points {
        println!(
            "{:<44} {:>8.1} /s  p50 {:>6.2} ms  p95 {:>6.2} ms",
            format!("floor: no-op worker on the broker, {} clients", p.clients),
            p.jobs_per_s,
            p.latency_ms.p50,
            p.latency_ms.p95
        );
    }
    report["burst_sweep"]["broker_floor"] =
        json!({"at": chrono::Utc::now(), "message_bytes": size, "jobs_per_point": jobs, "points": points});
    Ok(())
}

//! The burst sweep: warm jobs of one function from 1, 2, 4 … concurrent clients
//! against one executor configuration (`scripts/bench.sh burst` runs it against
//! `shipped` and `tuned` in turn, restarting the executors in between). Each
//! client submits with `Prefer: wait=30`, long-polls the result (`?wait=60`) when
//! the submit did not bring it, then submits its next job. Per point: jobs/s, the
//! client's end-to-end and the server's queue / run times, slot utilisation
//! (sampled from the executors' gauges, and from the run times), prefetched jobs,
//! warm hit rate and each executor's share; at one point, CPU per job by process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::join_all;
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::Args;
use crate::gauges::{GaugeFigures, Sampler};
use crate::jobs::Api;
use crate::stats::Summary;
use crate::warm::Sample;

const PREFER_WAIT_SECS: u32 = 30;
const POLL_WAIT_SECS: u32 = 60;

#[derive(Debug, Serialize)]
pub struct Point {
    pub clients: usize,
    /// Jobs that succeeded, and those that ended otherwise.
    pub jobs: usize,
    pub failed: usize,
    pub seconds: f64,
    pub jobs_per_s: f64,
    pub e2e_ms: Option<Summary>,
    pub queue_ms: Option<Summary>,
    pub run_ms: Option<Summary>,
    /// Mean of the sampled `slots_busy / slots`.
    pub slot_utilisation: Option<f64>,
    /// sum(run_ms) / (wall time × slots): the same without the gauges.
    pub slot_utilisation_from_run_ms: f64,
    /// All executors' slots the utilisations divide by.
    pub slots: f64,
    /// Mean jobs fetched and waiting for a slot, where the gauge exists.
    pub prefetched_mean: Option<f64>,
    pub gauges: GaugeFigures,
    pub warm_hit_rate: f64,
    /// Answered by the submit itself (`Prefer: wait`), of all.
    pub synchronous_rate: f64,
    /// Each executor's share of the jobs (the result's `executor_id`).
    pub executor_share: BTreeMap<String, f64>,
}

/// The key of a configuration's figures in `burst_sweep` (and `cpu_per_job`).
pub fn section(config: &str, executors: usize) -> String {
    if executors == 1 {
        config.to_owned()
    } else {
        format!("{config}_{executors}_executors")
    }
}

fn environment(settings: &str) -> Value {
    let pairs = settings.split_whitespace().filter_map(|pair| pair.split_once('='));
    Value::Object(pairs.map(|(key, value)| (key.to_owned(), json!(value))).collect())
}

/// `jobs` jobs from `clients` concurrent clients, each starting the next job once
/// the result of its last is in.
async fn burst(api: &Api, clients: usize, jobs: usize, first: usize) -> anyhow::Result<(Vec<Sample>, f64)> {
    let per_client = jobs.div_ceil(clients);
    let started = Instant::now();
    let batches = join_all((0..clients).map(|c| async move {
        let mut samples = Vec::with_capacity(per_client);
        for n in 0..per_client {
            samples.push(api.invoke_waiting(first + c * per_client + n, PREFER_WAIT_SECS, POLL_WAIT_SECS).await?);
        }
        anyhow::Ok(samples)
    }))
    .await;
    let seconds = started.elapsed().as_secs_f64();
    Ok((batches.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect(), seconds))
}

fn point(clients: usize, samples: &[Sample], seconds: f64, slots: f64, gauges: GaugeFigures) -> Point {
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.status == "succeeded").collect();
    let summary = |f: fn(&Sample) -> f64| Summary::of(&ok.iter().map(|s| f(s)).collect::<Vec<_>>());
    let rate = |f: fn(&Sample) -> bool| ok.iter().filter(|s| f(s)).count() as f64 / ok.len().max(1) as f64;
    let mut share = BTreeMap::new();
    for sample in samples {
        *share.entry(sample.executor_id.clone()).or_insert(0.0) += 1.0 / samples.len() as f64;
    }
    let run_ms: f64 = ok.iter().map(|s| s.run_ms).sum();
    let slots = gauges.slots_gauge.filter(|s| *s > 0.0).unwrap_or(slots);
    Point {
        clients,
        jobs: ok.len(),
        failed: samples.len() - ok.len(),
        seconds,
        jobs_per_s: ok.len() as f64 / seconds,
        e2e_ms: summary(|s| s.e2e_ms),
        queue_ms: summary(|s| s.queue_ms),
        run_ms: summary(|s| s.run_ms),
        slot_utilisation: gauges.slot_utilisation,
        slot_utilisation_from_run_ms: run_ms / (seconds * 1e3 * slots),
        slots,
        prefetched_mean: gauges.prefetched_mean,
        gauges,
        warm_hit_rate: rate(|s| s.warm),
        synchronous_rate: rate(|s| s.synchronous),
        executor_share: share,
    }
}

fn print_header(args: &Args) {
    let env = if args.executor_env.trim().is_empty() {
        "none, config/executor.yaml as shipped"
    } else {
        args.executor_env.trim()
    };
    println!(
        "burst sweep, {} ({} executor(s) × {} slots configured; executor env: {env})",
        args.config, args.executors, args.slots
    );
    println!(
        "  {:>7} {:>5} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>5}  share",
        "clients",
        "jobs",
        "jobs/s",
        "e2e p50",
        "e2e p95",
        "q p50",
        "q p95",
        "run p50",
        "util",
        "util*",
        "prefch",
        "warm"
    );
}

fn print_point(p: &Point) {
    let ms = |s: &Option<Summary>, f: fn(&Summary) -> f64| s.as_ref().map_or(f64::NAN, f);
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    let share: Vec<String> = p.executor_share.iter().map(|(id, s)| format!("{id} {s:.2}")).collect();
    println!(
        "  {:>7} {:>5} {:>7.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7.1} {:>6} {:>6.2} {:>6} {:>5.2}  {}{}",
        p.clients,
        p.jobs,
        p.jobs_per_s,
        ms(&p.e2e_ms, |s| s.p50),
        ms(&p.e2e_ms, |s| s.p95),
        ms(&p.queue_ms, |s| s.p50),
        ms(&p.queue_ms, |s| s.p95),
        ms(&p.run_ms, |s| s.p50),
        opt(p.slot_utilisation),
        p.slot_utilisation_from_run_ms,
        opt(p.prefetched_mean),
        p.warm_hit_rate,
        share.join(", "),
        if p.failed > 0 { format!("  ({} failed)", p.failed) } else { String::new() },
    );
}

/// The sweep against the running executors, as configuration `args.config`:
/// its points and the CPU table into `report["burst_sweep"]`.
pub async fn report(api: &Api, args: &Args, report: &mut Value) -> anyhow::Result<()> {
    let slots = (args.slots * args.executors) as f64;
    let gauge_client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let executor_ids: Vec<String> = (1..=args.executors).map(|n| format!("executor-{n}")).collect();
    // start the function's sandboxes (one per slot) before the first measured job
    let warm_up = args.slots * args.executors;
    burst(api, warm_up, 2 * warm_up, 0).await.context("burst warm-up")?;
    print_header(args);
    let (mut points, mut cpu) = (Vec::new(), Value::Null);
    for (i, &clients) in args.clients.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sampler = Sampler::start(gauge_client.clone(), args.metrics.clone(), slots as usize);
        let window = (clients == args.cpu_clients).then(|| crate::cpu::Window::open(&args.run_dir, &executor_ids));
        let measured = burst(api, clients, args.burst, 1_000_000 * (i + 1)).await;
        let gauges = sampler.stop().await;
        let (samples, seconds) = measured.with_context(|| format!("burst of {clients} clients"))?;
        if let Some(window) = window {
            cpu = window.close(samples.len());
        }
        let point = point(clients, &samples, seconds, slots, gauges);
        print_point(&point);
        points.push(point);
    }
    let key = section(&args.config, args.executors);
    if !cpu.is_null() {
        cpu["clients"] = json!(args.cpu_clients);
        crate::cpu::print(&cpu, &format!("{key}, {} clients", args.cpu_clients));
    }
    report["burst_sweep"][&key] = json!({
        "at": chrono::Utc::now(),
        "config": args.config,
        "executor_env": environment(&args.executor_env),
        "executors": args.executors,
        "slots_per_executor": args.slots,
        "jobs_per_point": args.burst,
        "prefer_wait_s": PREFER_WAIT_SECS,
        "poll_wait_s": POLL_WAIT_SECS,
        "frontend_rate_limit_requests": std::env::var("GITFAAS__FRONTEND__RATE_LIMIT__REQUESTS").ok(),
        "points": points,
    });
    report["burst_sweep"]["cpu_per_job"][&key] = cpu;
    report["burst_sweep"]["note"] = json!(
        "the frontend's per-caller rate limit is raised for the bench caller (a per-caller policy, \
         not a throughput setting); `shipped` runs the executor as config/executor.yaml ships it \
         (only id, metrics address and the loopback git server's allowed range set), `tuned` with \
         executor_env on top"
    );
    Ok(())
}

/// A point's figure, from the JSON of the report (figures of earlier runs count).
fn at(section: &Value, clients: u64, pointer: &str) -> Option<f64> {
    let points = section["points"].as_array()?;
    let point = points.iter().find(|p| p["clients"].as_u64() == Some(clients))?;
    point.pointer(pointer)?.as_f64()
}

/// The targets as ratios, from whatever `burst_sweep` holds: each one
/// into `report["ratios"]`, and printed with its target where its name has `shown`.
pub fn ratios(report: &mut Value, shown: &str) {
    let sweep = report["burst_sweep"].clone();
    let mut found: Vec<(String, f64, &str)> = Vec::new();
    let floor16 = sweep["broker_floor"]["points"]
        .as_array()
        .and_then(|points| points.iter().find(|p| p["clients"].as_u64() == Some(16)))
        .and_then(|p| p["jobs_per_s"].as_f64());
    for (key, section) in sweep.as_object().into_iter().flatten() {
        if section.get("points").is_none() || key == "broker_floor" {
            continue;
        }
        let fig = |clients, pointer| at(section, clients, pointer);
        if let (Some(at16), Some(at2)) = (fig(16, "/jobs_per_s"), fig(2, "/jobs_per_s")) {
            found.push((format!("burst_{key}_jobs_per_s_16_to_2_clients"), at16 / at2, "≥ 0.9"));
        }
        if let (Some(queue), Some(run), Some(slots)) =
            (fig(16, "/queue_ms/p50"), fig(16, "/run_ms/p50"), fig(16, "/slots"))
        {
            let model = 16.0 / slots * run + 10.0;
            found.push((format!("burst_{key}_queue_p50_16_to_16_over_slots_run_p50_plus_10ms"), queue / model, "≤ 1"));
        }
        if let Some(at16) = fig(16, "/jobs_per_s") {
            found.push((format!("burst_{key}_jobs_per_s_16_to_150"), at16 / 150.0, "≥ 1"));
            if let Some(floor) = floor16 {
                found.push((format!("burst_{key}_jobs_per_s_16_to_broker_floor_16"), at16 / floor, "—"));
            }
        }
        if let Some(utilisation) = fig(16, "/slot_utilisation").or_else(|| fig(16, "/slot_utilisation_from_run_ms")) {
            found.push((format!("burst_{key}_slot_utilisation_16"), utilisation, "—"));
        }
    }
    let jobs16 = |key: &str| at(&sweep[key], 16, "/jobs_per_s");
    if let (Some(tuned), Some(shipped)) = (jobs16("tuned"), jobs16("shipped")) {
        found.push(("burst_tuned_to_shipped_jobs_per_s_16".into(), tuned / shipped, "—"));
    }
    for config in ["shipped", "tuned"] {
        if let (Some(two), Some(one)) = (jobs16(&format!("{config}_2_executors")), jobs16(config)) {
            found.push((format!("burst_{config}_2_executors_to_1_jobs_per_s_16"), two / one, "—"));
        }
    }
    for (name, value, target) in found {
        if name.contains(shown) {
            println!("{:<64} {value:>8.2}  (target {target})", format!("ratio: {name}"));
        }
        report["ratios"][name] = json!((value * 100.0).round() / 100.0);
    }
}

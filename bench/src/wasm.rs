//! The wasm runtime against the floors of the same run: a module's first job
//! (never seen by the executor: compiled on the job's path) against a bare
//! `docker run`, its later jobs against the warm python job, and — measured in
//! the executor, from its `gitfaas_wasm_run_seconds` histogram — the
//! instantiation and run of the module from the cache.
//!
//! The module echoes its stdin; each first job commits a module that differs by
//! one data segment (a new content hash, so a new compilation). Before each first
//! job, in the same conditions, one `docker run` (the ratio's floor) and the git
//! server's own fetch of the new commit ([`crate::git_floor`]). Two sequences:
//! each step after the pace (`--pace-ms`, a function called rarely, on an idle
//! host), then back to back. The steady jobs and the warm python jobs are
//! interleaved, after a warm-up each.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::first::Repo;
use crate::jobs::Api;
use crate::stats::Summary;
use crate::warm::Sample;

/// Where the bench's repositories go and how the git server names them, and
/// the executor's metrics.
pub struct Setup {
    pub dir: PathBuf,
    pub url: String,
    pub metrics: String,
    pub pace: Duration,
    /// The image of the `docker run` floor.
    pub image: String,
}

/// The commit `rev` names in the repository at `dir`.
fn rev_parse(dir: &std::path::Path, rev: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("git").args(["rev-parse", rev]).current_dir(dir).output()?;
    if !out.status.success() {
        bail!("git rev-parse {rev}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// An echo module whose data segment holds `version` (so each version hashes apart).
fn module(version: usize) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 8192) "bench module version {version}")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 4000))
            (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
            (i32.store (i32.const 4) (i32.load (i32.const 8)))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ))
    .expect("the bench module is valid text")
}

/// Commits in the module repository's history before the first module.
const HISTORY: usize = 50;
/// A sequence of first jobs, each with its floors taken just before it.
struct FirstJobs {
    samples: Vec<Sample>,
    docker_run: Option<Summary>,
    git_fetch: Option<Summary>,
}

impl FirstJobs {
    fn p50s(&self) -> (f64, f64, f64) {
        let p50 = |s: Option<&Summary>| s.map_or(f64::NAN, |s| s.p50);
        (p50(e2e(&self.samples).as_ref()), p50(self.docker_run.as_ref()), p50(self.git_fetch.as_ref()))
    }

    fn json(&self, pace: Duration) -> Value {
        json!({
            "pace_ms": pace.as_millis() as u64,
            "e2e_ms": e2e(&self.samples),
            "stages": stages(&self.samples),
            "docker_run_interleaved_ms": self.docker_run,
            "git_server_fetch_ms": self.git_fetch,
        })
    }
}

/// The module repository: `gitfaas.toml`, then a history as real repositories
/// have (a fetch negotiates over it: 20 commits or more is where libgit2 writes
/// its haves and `done` apart), whose last commit is the parent the git floor
/// names for the first module.
fn module_repo(setup: &Setup) -> anyhow::Result<Repo> {
    let repo = Repo::create(&setup.dir, &setup.url, "wasm", &[("gitfaas.toml", b"runtime = \"wasm\"\n")])?;
    for _ in 1..HISTORY {
        repo.commit(&[])?;
    }
    Ok(repo)
}

/// For each version: its module committed, then (each after `pace`) one
/// `docker run`, the git server's fetch of the commit, and the first job.
async fn first_jobs(
    api: &Api,
    setup: &Setup,
    repo: &Repo,
    versions: std::ops::RangeInclusive<usize>,
    pace: Duration,
) -> anyhow::Result<FirstJobs> {
    let (mut samples, mut docker_runs, mut git_fetches) = (Vec::new(), Vec::new(), Vec::new());
    for version in versions {
        repo.commit(&[("main.wasm", &module(version))])?;
        let (want, have) = (rev_parse(&repo.dir, "HEAD")?, rev_parse(&repo.dir, "HEAD~1")?);
        tokio::time::sleep(pace).await;
        docker_runs.push(crate::floors::docker_run(&setup.image, 1)?.p50);
        tokio::time::sleep(pace).await;
        git_fetches.push(crate::git_floor::fetch_ms(&repo.url, &want, &have).await.context("the git floor")?.0);
        tokio::time::sleep(pace).await;
        let body = json!({"repo": repo.url, "ref": "main", "runtime": "wasm", "input": {"n": version}});
        samples.push(job(api, &body).await.context("a first wasm job")?);
    }
    Ok(FirstJobs { samples, docker_run: Summary::of(&docker_runs), git_fetch: Summary::of(&git_fetches) })
}

/// The client-side end-to-end times of `samples`.
fn e2e(samples: &[Sample]) -> Option<Summary> {
    Summary::of(&samples.iter().map(|s| s.e2e_ms).collect::<Vec<_>>())
}

/// One job of `body`, which must succeed; its client-side end-to-end time and
/// where it went (queue and run by the servers' clocks, the result's way back).
async fn job(api: &Api, body: &Value) -> anyhow::Result<Sample> {
    let (sample, result) = api.send_waiting(body, 30, 10).await?;
    if sample.status != "succeeded" {
        bail!("bench job ended {}: {}", sample.status, result["reason"]);
    }
    if body.get("runtime").is_some() && result["output"] != body["input"] {
        bail!("the wasm job echoed {} for {}", result["output"], body["input"]);
    }
    Ok(sample)
}

/// The p50s of a sequence of jobs' stages.
fn stages(samples: &[Sample]) -> Value {
    let p50 = |f: fn(&Sample) -> f64| Summary::of(&samples.iter().map(f).collect::<Vec<_>>()).map(|s| s.p50);
    json!({
        "queue_ms_p50": p50(|s| s.queue_ms),
        "run_ms_p50": p50(|s| s.run_ms),
        "result_visible_ms_p50": p50(|s| s.visible_ms),
    })
}

/// The `gitfaas_wasm_run_seconds` histogram as the executor serves it:
/// cumulative bucket counts by upper bound, and the sum.
async fn scrape(api: &Api, url: &str) -> anyhow::Result<(Vec<(f64, f64)>, f64)> {
    let text = api.client.get(url).send().await?.error_for_status()?.text().await?;
    let mut buckets = Vec::new();
    let mut sum = 0.0;
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let value: f64 = value.parse().unwrap_or_default();
        if let Some(le) = name.strip_prefix("gitfaas_wasm_run_seconds_bucket{le=\"") {
            let le = le.trim_end_matches("\"}");
            buckets.push((if le == "+Inf" { f64::INFINITY } else { le.parse()? }, value));
        } else if name == "gitfaas_wasm_run_seconds_sum" {
            sum = value;
        }
    }
    if buckets.is_empty() {
        bail!("{url} serves no gitfaas_wasm_run_seconds (is the executor's wasm runtime on?)");
    }
    Ok((buckets, sum))
}

/// The median of the runs between two scrapes, in ms, interpolated within its
/// bucket (as Prometheus' `histogram_quantile`), and their mean (exact).
fn median_between(before: &(Vec<(f64, f64)>, f64), after: &(Vec<(f64, f64)>, f64)) -> Option<(f64, f64, f64)> {
    let deltas: Vec<(f64, f64)> = after.0.iter().zip(&before.0).map(|((le, a), (_, b))| (*le, a - b)).collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, cumulative) in &deltas {
        if *cumulative >= total / 2.0 {
            let upper = if le.is_finite() { *le } else { lower };
            let share = if *cumulative > below { (total / 2.0 - below) / (cumulative - below) } else { 1.0 };
            let mean = (after.1 - before.1) / total;
            return Some(((lower + (upper - lower) * share) * 1e3, mean * 1e3, total));
        }
        (lower, below) = (*le, *cumulative);
    }
    None
}

/// Measures the wasm sequences and their ratios into `report`.
pub async fn report(
    api: &Api,
    setup: &Setup,
    runs: usize,
    docker_run_p50: f64,
    report: &mut Value,
) -> anyhow::Result<()> {
    let repo = module_repo(setup)?;
    let versions = runs.clamp(3, 10);
    // after an idle pause (a rarely called function), then back to back (a busy host)
    let paced = first_jobs(api, setup, &repo, 1..=versions, setup.pace).await?;
    let busy = first_jobs(api, setup, &repo, versions + 1..=2 * versions, Duration::ZERO).await?;
    let body = |n: usize| json!({"repo": repo.url, "ref": "main", "runtime": "wasm", "input": {"n": n}});
    for n in 0..3 {
        job(api, &body(n)).await?;
        api.invoke_waiting(n, 10, 10).await?;
    }
    let before = scrape(api, &setup.metrics).await?;
    let (mut wasm_samples, mut python) = (Vec::new(), Vec::new());
    for n in 0..runs.max(50) {
        wasm_samples.push(job(api, &body(n)).await.context("a wasm job")?);
        let sample = api.invoke_waiting(n, 10, 10).await?;
        if sample.status != "succeeded" {
            bail!("warm python job ended {}", sample.status);
        }
        python.push(sample.e2e_ms);
    }
    let after = scrape(api, &setup.metrics).await?;
    let (run_p50, run_mean, counted) = median_between(&before, &after).context("no wasm runs counted")?;
    let (wasm, python) = (e2e(&wasm_samples), Summary::of(&python));
    let wasm_stages = stages(&wasm_samples);
    let p50 = |s: &Option<Summary>| s.as_ref().map_or(f64::NAN, |s| s.p50);
    for (what, jobs) in [(format!("after {} ms idle", setup.pace.as_millis()), &paced), ("back to back".into(), &busy)]
    {
        let (first, docker_run, git_fetch) = jobs.p50s();
        println!("{:<44} p50 {first:>8.2} ms", format!("wasm first job of a new module, {what}"));
        println!("{:<44} {}", "  its stages", stages(&jobs.samples));
        println!("{:<44} p50 {docker_run:>8.2} ms", "  docker run --rm, interleaved");
        println!("{:<44} p50 {git_fetch:>8.2} ms", "  git server's fetch of the commit (floor)");
    }
    println!("{:<44} p50 {:>8.2} ms", "wasm job e2e (module cached)", p50(&wasm));
    println!("{:<44} {wasm_stages}", "  its stages");
    println!("{:<44} p50 {:>8.2} ms", "warm python job e2e (interleaved)", p50(&python));
    println!("{:<44} p50 {run_p50:>8.3} ms  mean {run_mean:>8.3} ms", "wasm instantiate + run, in the executor");
    report["wasm"] = json!({
        "at": chrono::Utc::now(),
        "first_jobs": {"after_idle": paced.json(setup.pace), "back_to_back": busy.json(Duration::ZERO)},
        "docker_run_at_start_p50_ms": docker_run_p50,
        "job_e2e_ms": wasm,
        "job_stages": wasm_stages,
        "warm_python_job_e2e_ms": python,
        "instantiate_run_in_executor_ms": {"p50": run_p50, "mean": run_mean, "n": counted},
    });
    let ((first, docker_run, git_fetch), (busy_first, busy_docker_run, _)) = (paced.p50s(), busy.p50s());
    let ratios = [
        ("wasm_e2e_p50_to_warm_python_e2e_p50", p50(&wasm) / p50(&python)),
        ("wasm_first_job_e2e_p50_to_docker_run_p50", first / docker_run),
        ("wasm_first_job_back_to_back_e2e_p50_to_docker_run_p50", busy_first / busy_docker_run),
        ("wasm_first_job_e2e_p50_to_docker_run_at_start_p50", first / docker_run_p50),
        ("wasm_first_job_beyond_git_server_p50_to_docker_run_p50", (first - git_fetch) / docker_run),
        ("wasm_instantiate_run_p50_ms", run_p50),
    ];
    for (name, value) in ratios {
        report["ratios"][name] = crate::ratio(value, 1.0);
        println!("{:<44} {}", format!("ratio: {name}"), report["ratios"][name]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median_between;

    #[test]
    fn the_median_is_interpolated_within_its_bucket_and_the_mean_is_exact() {
        let before = (vec![(0.0005, 0.0), (0.001, 0.0), (f64::INFINITY, 0.0)], 0.0);
        let after = (vec![(0.0005, 2.0), (0.001, 4.0), (f64::INFINITY, 4.0)], 0.0024);
        let (p50, mean, n) = median_between(&before, &after).unwrap();
        assert_eq!(n, 4.0);
        assert!((p50 - 0.5).abs() < 1e-9, "{p50}");
        assert!((mean - 0.6).abs() < 1e-9, "{mean}");
    }
}

//! First jobs: what a function that changes costs. Each job of a sequence runs a
//! commit nobody ran before (the bench commits to a repository of the stack's
//! git server, then submits it), so no warm sandbox can serve it:
//!
//! - `first_commit`: a function with no dependencies;
//! - `first_commit_cached_layer`: a function whose dependency layer is cached
//!   (its declaration does not change between commits), with the function's own
//!   import time (measured inside it) beside;
//! - `warm_with_deps` against `warm_vendored`: the same function at a fixed
//!   commit, served warm, importing its module from the layer or from its own
//!   checkout, interleaved.
//!
//! The first jobs are paced (`--pace-ms`, default 1000): a first call that finds
//! the executor idle, as the calls of a rarely used function do; the pool refills
//! its ready sandbox between them. Ratios are to the `docker run` floor and the
//! warm job measured in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::jobs::Api;
use crate::stats::Summary;
use crate::warm::Sample;

/// Where the bench's repositories go, how the git server names them, and the
/// module the dependency layer holds.
pub struct Repos {
    pub dir: PathBuf,
    pub url: String,
    pub module: PathBuf,
    pub pace: Duration,
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git").args(args).current_dir(dir).output().context("running git")?;
    if !out.status.success() {
        bail!("git {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A repository of the git server (under `dir`, served as `url`): its files
/// written (over what is there) and committed.
pub(crate) struct Repo {
    pub(crate) dir: PathBuf,
    pub(crate) url: String,
}

impl Repo {
    /// `bench-NAME-<ms>` under `dir` (served under `url`), with `files` committed.
    pub(crate) fn create(dir: &Path, url: &str, name: &str, files: &[(&str, &[u8])]) -> anyhow::Result<Repo> {
        let name = format!("bench-{name}-{}", chrono::Utc::now().timestamp_millis());
        let repo = Repo { dir: dir.join(&name), url: format!("{url}/{name}") };
        std::fs::create_dir_all(&repo.dir)?;
        git(&repo.dir, &["init", "-q", "-b", "main"])?;
        repo.commit(files)?;
        Ok(repo)
    }

    /// Writes `files` and commits (a commit with no change too).
    pub(crate) fn commit(&self, files: &[(&str, &[u8])]) -> anyhow::Result<()> {
        for (path, content) in files {
            std::fs::write(self.dir.join(path), content)?;
        }
        git(&self.dir, &["add", "."])?;
        let identity = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"];
        git(&self.dir, &[&identity[..], &["commit", "-q", "--allow-empty", "-m", "next"]].concat())
    }

    fn body(&self, n: usize) -> Value {
        json!({"repo": self.url, "ref": "main", "runtime": "python", "input": n})
    }
}

/// A function returning `version`, after importing `benchdep` (timed) when `imports`.
fn source(version: usize, imports: bool) -> String {
    let import = if imports { "import benchdep\n" } else { "" };
    format!(
        "import time\n_t = time.perf_counter()\n{import}IMPORT_MS = (time.perf_counter() - _t) * 1e3\n\
         def main(data, credentials):\n    return {{'version': {version}, 'import_ms': IMPORT_MS}}\n"
    )
}

async fn job(api: &Api, body: &Value) -> anyhow::Result<(Sample, Value)> {
    let (sample, result) = api.send_waiting(body, 30, 10).await?;
    if sample.status != "succeeded" {
        bail!("bench job ended {}: {}", sample.status, result["reason"]);
    }
    Ok((sample, result))
}

fn summary(samples: &[Sample]) -> Value {
    let e2e: Vec<f64> = samples.iter().map(|s| s.e2e_ms).collect();
    let run: Vec<f64> = samples.iter().map(|s| s.run_ms).collect();
    let share = |f: fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count() as f64 / samples.len() as f64;
    json!({
        "e2e_ms": Summary::of(&e2e),
        "run_ms": Summary::of(&run),
        "ready_rate": share(|s| s.ready),
        "warm_rate": share(|s| s.warm),
    })
}

/// `runs` jobs, each of a new commit of `repo` (the function's source at that version).
async fn first_jobs(api: &Api, repos: &Repos, repo: &Repo, imports: bool, runs: usize) -> anyhow::Result<Value> {
    let (mut samples, mut import_ms) = (Vec::new(), Vec::new());
    for n in 1..=runs {
        repo.commit(&[("main.py", source(n, imports).as_bytes())])?;
        tokio::time::sleep(repos.pace).await;
        let (sample, result) = job(api, &repo.body(n)).await?;
        if result["output"]["version"] != n {
            bail!("job of version {n} ran {}", result["output"]);
        }
        import_ms.push(result["output"]["import_ms"].as_f64().unwrap_or_default());
        samples.push(sample);
    }
    let mut figures = summary(&samples);
    figures["function_import_ms"] = json!(Summary::of(&import_ms));
    Ok(figures)
}

/// Measures the three sequences and their ratios into `report`.
pub async fn report(
    api: &Api,
    repos: &Repos,
    runs: usize,
    docker_run_p50: f64,
    report: &mut Value,
) -> anyhow::Result<()> {
    let module = std::fs::read_to_string(&repos.module).with_context(|| format!("{}", repos.module.display()))?;
    let create = |name, files: &[(&str, &[u8])]| Repo::create(&repos.dir, &repos.url, name, files);
    let (source_plain, source_importing) = (source(0, false), source(0, true));
    let importing = source_importing.as_bytes();
    let plain = create("first", &[("main.py", source_plain.as_bytes())])?;
    let deps = create("deps", &[("main.py", importing), ("requirements.txt", b"benchdep==1.0\n")])?;
    let vendored = create("vendored", &[("main.py", importing), ("benchdep.py", module.as_bytes())])?;
    // the layer is built once, by this warm-up job
    job(api, &deps.body(0)).await.context("the dependency layer's build")?;
    let first = first_jobs(api, repos, &plain, false, runs).await.context("first jobs")?;
    let cached = first_jobs(api, repos, &deps, true, runs).await.context("first jobs, cached layer")?;
    // warm: both functions at their last commit, interleaved after a warm-up each
    for repo in [&deps, &vendored] {
        job(api, &repo.body(0)).await?;
    }
    let (mut with_deps, mut without) = (Vec::new(), Vec::new());
    for n in 0..runs.max(30) {
        with_deps.push(job(api, &deps.body(n)).await?.0);
        without.push(job(api, &vendored.body(n)).await?.0);
    }
    let (warm_deps, warm_vendored) = (summary(&with_deps), summary(&without));
    let p50 = |v: &Value| v["e2e_ms"]["p50"].as_f64().unwrap_or(f64::NAN);
    let import_p50 = cached["function_import_ms"]["p50"].as_f64().unwrap_or_default();
    let ratios = [
        ("first_commit_e2e_p50_to_docker_run_p50", p50(&first) / docker_run_p50),
        ("first_commit_e2e_p50_to_warm_e2e_p50", p50(&first) / p50(&warm_vendored)),
        ("first_commit_cached_layer_e2e_p50_to_docker_run_p50", p50(&cached) / docker_run_p50),
        (
            "first_commit_cached_layer_e2e_p50_minus_import_to_docker_run_p50",
            (p50(&cached) - import_p50) / docker_run_p50,
        ),
        ("warm_with_deps_e2e_p50_to_warm_vendored_e2e_p50", p50(&warm_deps) / p50(&warm_vendored)),
    ];
    for (name, label, figures) in [
        ("first job of a new commit, no dependencies", "first_commit", &first),
        ("first job of a new commit, cached layer", "first_commit_cached_layer", &cached),
        ("warm job with a dependency layer", "warm_with_deps", &warm_deps),
        ("warm job, the same module vendored", "warm_vendored", &warm_vendored),
    ] {
        let e2e = &figures["e2e_ms"];
        println!(
            "{name:<44} p50 {:>8.2} ms  p95 {:>8.2} ms  ready {:.2} warm {:.2}",
            e2e["p50"].as_f64().unwrap_or_default(),
            e2e["p95"].as_f64().unwrap_or_default(),
            figures["ready_rate"].as_f64().unwrap_or_default(),
            figures["warm_rate"].as_f64().unwrap_or_default(),
        );
        report["first_jobs"][label] = figures.clone();
    }
    report["first_jobs"]["pace_ms"] = json!(repos.pace.as_millis() as u64);
    report["first_jobs"]["at"] = json!(chrono::Utc::now());
    for (name, value) in ratios {
        report["ratios"][name] = crate::ratio(value, 1.0);
        println!("{:<44} {}", format!("ratio: {name}"), report["ratios"][name]);
    }
    Ok(())
}

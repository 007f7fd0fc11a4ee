//! Functions' state against the same function without it, in one run: a named
//! python function (served warm) whose invocations either increment 10 keys
//! (a state commit, in one Kafka transaction with the result) or only read them
//! (no effects: the result's ordinary publish); `ctx.state.get` timed inside the
//! sandbox by the function itself; and increments per second of concurrent
//! clients against the same load without state.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use futures::future::join_all;
use serde_json::{json, Value};

use crate::first::git;
use crate::jobs::Api;
use crate::stats::Summary;

/// Where the bench's repository goes and how the git server names it.
pub struct Setup {
    pub dir: PathBuf,
    pub url: String,
}

const FUNCTION: &str = r#"
import time

def main(data, credentials, ctx):
    for i in range(data.get("incr", 0)):
        ctx.state.incr("k%d" % i)
    times = []
    for _ in range(data.get("gets", 0)):
        start = time.perf_counter()
        ctx.state.get("k0")
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"get_ms": times[len(times) // 2] if times else None, "k0": ctx.state.get("k0")}
"#;

/// One sync invocation of `name` with `input`, which must succeed: its
/// client-side end-to-end time and output.
async fn invoke(api: &Api, name: &str, input: &Value) -> anyhow::Result<(f64, Value)> {
    let start = Instant::now();
    let response = api
        .client
        .post(format!("{}/v1/functions/{name}/invoke", api.base))
        .bearer_auth(&api.token)
        .header("Prefer", "wait=30")
        .json(&json!({ "input": input }))
        .send()
        .await?;
    let body: Value = response.json().await?;
    let e2e = start.elapsed().as_secs_f64() * 1e3;
    if body["status"] != "succeeded" {
        bail!("state bench job ended {}: {}", body["status"], body["reason"]);
    }
    Ok((e2e, body["output"].clone()))
}

/// `clients` clients each invoking `each` times with `input`: invocations per second.
async fn rate(api: &Api, name: &str, input: &Value, clients: usize, each: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    let runs = (0..clients).map(|_| async {
        for _ in 0..each {
            invoke(api, name, input).await?;
        }
        anyhow::Ok(())
    });
    for run in join_all(runs).await {
        run?;
    }
    Ok((clients * each) as f64 / start.elapsed().as_secs_f64())
}

/// Measures the state sequences and their ratios into `report`.
pub async fn report(api: &Api, setup: &Setup, runs: usize, report: &mut Value) -> anyhow::Result<()> {
    let name = format!("bench-state-{}", chrono::Utc::now().timestamp_millis());
    let dir = setup.dir.join(&name);
    std::fs::create_dir_all(&dir)?;
    git(&dir, &["init", "-q", "-b", "main"])?;
    std::fs::write(dir.join("gitfaas.toml"), "runtime = \"python\"\n")?;
    std::fs::write(dir.join("main.py"), FUNCTION)?;
    git(&dir, &["add", "."])?;
    git(&dir, &["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "state"])?;
    let deployed = api
        .client
        .put(format!("{}/v1/functions/{name}", api.base))
        .bearer_auth(&api.token)
        .json(&json!({"repo": format!("{}/{name}", setup.url), "ref": "main"}))
        .send()
        .await?;
    if !deployed.status().is_success() {
        bail!("deploying the state bench function: {} {}", deployed.status(), deployed.text().await?);
    }
    let (with, without) = (json!({"incr": 10}), json!({"incr": 0}));
    for _ in 0..5 {
        invoke(api, &name, &with).await?;
        invoke(api, &name, &without).await?;
    }
    let (mut stateful, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(50) {
        stateful.push(invoke(api, &name, &with).await.context("a job with 10 increments")?.0);
        plain.push(invoke(api, &name, &without).await.context("the same job without state")?.0);
    }
    let mut gets = Vec::new();
    for _ in 0..5 {
        let (_, output) = invoke(api, &name, &json!({"gets": 1000})).await?;
        gets.push(output["get_ms"].as_f64().context("the function timed its gets")?);
    }
    let clients = 8;
    let each = runs.clamp(5, 20);
    let stateful_rate = rate(api, &name, &with, clients, each).await.context("increments per second")?;
    let plain_rate = rate(api, &name, &without, clients, each).await.context("the same load without state")?;
    let (_, last) = invoke(api, &name, &without).await?;
    let (stateful, plain) = (Summary::of(&stateful).context("samples")?, Summary::of(&plain).context("samples")?);
    let get_p50 = Summary::of(&gets).context("samples")?.p50;
    println!("{:<44} p50 {:>8.2} ms", "job with 10 increments e2e", stateful.p50);
    println!("{:<44} p50 {:>8.2} ms", "the same job without state e2e", plain.p50);
    println!("{:<44} p50 {get_p50:>8.4} ms", "ctx.state.get in the warm sandbox");
    println!("{:<44} {:>8.1} /s", format!("increments/s, one function, {clients} clients"), stateful_rate * 10.0);
    println!("{:<44} {:>8.1} /s", "  jobs/s with state", stateful_rate);
    println!("{:<44} {:>8.1} /s", "  jobs/s of the same load without state", plain_rate);
    report["state"] = json!({
        "at": chrono::Utc::now(),
        "job_10_increments_e2e_ms": stateful,
        "job_without_state_e2e_ms": plain,
        "get_in_sandbox_p50_ms": get_p50,
        "clients": clients,
        "increments_per_s": stateful_rate * 10.0,
        "jobs_per_s_with_state": stateful_rate,
        "jobs_per_s_without_state": plain_rate,
        "k0_after": last["k0"],
    });
    let ratios = [
        ("state_10_incr_e2e_p50_to_without_state_p50", stateful.p50 / plain.p50),
        ("state_get_in_sandbox_p50_ms", get_p50),
        ("state_jobs_per_s_to_without_state", stateful_rate / plain_rate),
    ];
    for (key, value) in ratios {
        report["ratios"][key] = crate::ratio(value, 1.0);
        println!("{:<44} {}", format!("ratio: {key}"), report["ratios"][key]);
    }
    Ok(())
}

//! The executor's prefetch backlog (`executor.prefetch`): jobs fetched ahead wait
//! for a slot without being started, so a slot that frees takes the next one at
//! once — and the promises hold for the waiting jobs too: a cancelled one never
//! runs, one whose partition moves runs on its new owner once, one on an executor
//! killed with it runs elsewhere once, an at-most-once one never runs twice.
//! Each job downloads a source from a loopback server the test runs just before
//! its function: the downloads count the runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitfaas_common::schema::EXECUTOR_LOST;
use gitfaas_tests::cluster::{call, Cluster, FAST_REBALANCE};
use gitfaas_tests::sandbox::HttpServer;
use gitfaas_tests::{sleep_repo, Provider, Stack};
use serde_json::{json, Value};

/// The executor's gauges, read from its `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct Gauges {
    busy: u64,
    slots: u64,
    prefetched: u64,
}

async fn gauges(port: u16) -> Gauges {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut tries = 0;
    let text = loop {
        match reqwest::get(&url).await {
            Ok(response) => break response.text().await.unwrap(),
            // an executor process still starting
            Err(error) if tries < 600 => {
                tries += 1;
                if tries % 100 == 0 {
                    eprintln!("executor metrics on :{port} not answering yet: {error}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("executor metrics on :{port}: {error}"),
        }
    };
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} not in the executor's metrics"))
            .trim()
            .parse::<f64>()
            .unwrap() as u64
    };
    Gauges {
        busy: value("gitfaas_executor_slots_busy"),
        slots: value("gitfaas_executor_slots"),
        prefetched: value("gitfaas_executor_jobs_prefetched"),
    }
}

async fn wait_for_prefetched(port: u16, at_least: u64) -> Gauges {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = gauges(port).await;
        if now.prefetched >= at_least {
            return now;
        }
        assert!(Instant::now() < deadline, "never {at_least} jobs prefetched: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The body of job `n`: a nap of `secs` after downloading `job/n` from `server`.
fn counted_job(repo: &str, server: &HttpServer, n: u32, secs: f64, delivery: Option<&str>) -> Value {
    server.files.lock().unwrap().insert(format!("job/{n}"), b"x".to_vec());
    // each job its own timeout: another "function" to the frontend's affinity, so
    // the jobs spread over every partition
    let mut body = json!({
        "repo": repo, "ref": "main", "input": {"n": n, "secs": secs}, "timeout_secs": 120 + n,
        "sources": [{"name": "in.txt", "url": server.url(&format!("job/{n}"))}],
    });
    if let Some(delivery) = delivery {
        body["delivery"] = delivery.into();
    }
    body
}

/// Submits jobs 0..`jobs` of [`counted_job`] to `cluster`; their ids.
async fn submit_counted(
    cluster: &Cluster,
    token: &str,
    server: &HttpServer,
    jobs: u32,
    secs: f64,
    delivery: Option<&str>,
) -> Vec<String> {
    let repo = sleep_repo();
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..jobs {
        let body = counted_job(&repo, server, n, secs, delivery);
        let response = call(|| client.post(cluster.url("/v1/jobs")).bearer_auth(token).json(&body)).await;
        assert_eq!(response.status(), 202);
        ids.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    ids
}

fn runs_of(server: &HttpServer, n: u32) -> u32 {
    server.fetched.lock().unwrap().get(&format!("job/{n}")).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_prefetched_job_never_runs_and_the_others_do() {
    let stack = Stack::start_with(
        true,
        Box::new(|_, e| {
            e.executor.slots = 1;
            e.executor.prefetch = 4;
        }),
    );
    let port = stack.executor_ops_port.expect("metrics listener");
    let server = HttpServer::start().await;
    let repo = sleep_repo();
    // the one slot is busy with job 0 before the others come: they must wait
    let mut ids = vec![stack.submit_ok(&counted_job(&repo, &server, 0, 4.0, None)).await];
    let deadline = Instant::now() + Duration::from_secs(120);
    while runs_of(&server, 0) == 0 {
        assert!(Instant::now() < deadline, "job 0 never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 1..4 {
        ids.push(stack.submit_ok(&counted_job(&repo, &server, n, 0.5, None)).await);
    }
    let seen = wait_for_prefetched(port, 3).await;
    assert_eq!((seen.busy, seen.slots), (1, 1), "job 0 runs, the others wait in the backlog");
    let waiting = &ids[2];
    let cancel = reqwest::Client::new()
        .post(stack.url(&format!("/v1/jobs/{waiting}/cancel")))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert!(cancel.status().is_success(), "cancel answered {}", cancel.status());
    assert_eq!(runs_of(&server, 0), 1, "job 0 still runs: the others have not started");
    for (n, id) in ids.iter().enumerate() {
        let result = stack.result(id).await;
        if id == waiting {
            assert_eq!(result["status"], "cancelled", "{result}");
        } else {
            assert_eq!((result["status"].as_str(), &result["output"]), (Some("succeeded"), &json!(n)), "{result}");
        }
    }
    assert_eq!(runs_of(&server, 2), 0, "the cancelled job never reached its function");
    assert!([0, 1, 3].iter().all(|&n| runs_of(&server, n) == 1), "{:?}", server.fetched.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_more_clients_than_slots_no_slot_idles_while_a_job_waits() {
    // the shipped executor settings (2 slots, the default prefetch), 8 clients
    let stack = Stack::start(true);
    let port = stack.executor_ops_port.expect("metrics listener");
    let repo = sleep_repo();
    let warm_up = stack.submit_ok(&json!({"repo": repo, "ref": "main", "input": {"n": 0, "secs": 0}})).await;
    stack.result(&warm_up).await;
    let done = Arc::new(AtomicBool::new(false));
    let sampling = tokio::spawn({
        let done = done.clone();
        async move {
            let mut samples = Vec::new();
            while !done.load(Ordering::SeqCst) {
                samples.push(gauges(port).await);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        }
    });
    // 8 clients submit 64 jobs at once, then wait for their results
    let stack = &stack;
    let ids: Vec<String> = futures::future::join_all((0..8).map(|c| {
        let repo = repo.clone();
        async move {
            let mut ids = Vec::new();
            for n in 0..8 {
                let body = json!({"repo": repo, "ref": "main", "input": {"n": c * 100 + n, "secs": 0.3}});
                ids.push(stack.submit_ok(&body).await);
            }
            ids
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    for id in &ids {
        let result = stack.result(id).await;
        assert_eq!(result["status"], "succeeded", "{result}");
    }
    done.store(true, Ordering::SeqCst);
    let samples = sampling.await.unwrap();
    let waiting: Vec<&Gauges> = samples.iter().filter(|g| g.prefetched > 0).collect();
    let idle: Vec<&&Gauges> = waiting.iter().filter(|g| g.busy < g.slots).collect();
    let busy = samples.iter().map(|g| g.busy).sum::<u64>() as f64 / samples.len() as f64;
    eprintln!(
        "prefetch: {} samples (mean busy {busy:.2}), {} with jobs waiting in the backlog, {} of those with a slot free",
        samples.len(),
        waiting.len(),
        idle.len()
    );
    assert!(samples.iter().all(|g| g.slots == 2), "the shipped 2 slots");
    assert!(waiting.len() >= 10, "jobs waited in the backlog during the burst: {} samples", waiting.len());
    // a sample may fall between a job's end and the next one's start (the same
    // wake-up of the loop); a slot idling while jobs wait would show in most
    assert!(idle.len() * 20 <= waiting.len(), "slots idle while jobs wait: {idle:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_moved_while_jobs_are_prefetched_runs_each_job_once_on_one_executor() {
    const JOBS: u32 = 12;
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    let server = HttpServer::start().await;
    let port = cluster.start_executor_with("moved-1", 1, &[("GITFAAS__EXECUTOR__PREFETCH", "16")]);
    let ids = submit_counted(&cluster, &token, &server, JOBS, 1.0, None).await;
    wait_for_prefetched(port, 4).await;
    // the second executor joins: the group moves partitions, backlog and all
    cluster.start_executor_with("moved-2", 1, &[("GITFAAS__EXECUTOR__PREFETCH", "16")]);
    let done = cluster.results(&token, &ids, Duration::from_secs(300)).await;
    let events = cluster.finished_events();
    for (n, id) in ids.iter().enumerate() {
        let result = &done[id];
        assert_eq!((result["status"].as_str(), &result["output"]), (Some("succeeded"), &json!(n)), "job {n}: {result}");
        let results = events.iter().filter(|r| r.job_id.to_string() == *id).count();
        assert_eq!(results, 1, "job {n} has {results} terminal results on the topic");
        assert_eq!(runs_of(&server, n as u32), 1, "job {n} ran once");
    }
    let on_second = ids.iter().filter(|id| done[*id]["executor_id"] == "moved-2").count();
    assert!(on_second > 0, "the joining executor took partitions with waiting jobs");
}

/// Jobs on two executors of one slot and a deep backlog each: `first` is killed
/// (SIGKILL) while it holds prefetched jobs; their results and how often each
/// ran (by job number), and how many jobs `first` had prefetched.
async fn kill_an_executor_holding_prefetched_jobs(delivery: Option<&str>) -> (Vec<Value>, HashMap<u32, u32>, u64) {
    const JOBS: u32 = 16;
    let mode = delivery.unwrap_or("default");
    let (first, second) = (format!("{mode}-prefetch-1"), format!("{mode}-prefetch-2"));
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    let server = HttpServer::start().await;
    let port = cluster.start_executor_with(&first, 1, &[("GITFAAS__EXECUTOR__PREFETCH", "8")]);
    cluster.start_executor_with(&second, 1, &[("GITFAAS__EXECUTOR__PREFETCH", "8")]);
    // both in the group before the jobs come, so each holds partitions
    tokio::time::sleep(Duration::from_secs(8)).await;
    let ids = submit_counted(&cluster, &token, &server, JOBS, 1.5, delivery).await;
    let held = wait_for_prefetched(port, 2).await.prefetched;
    cluster.kill_executor(&first);
    let done = cluster.results(&token, &ids, Duration::from_secs(300)).await;
    let fetched = server.fetched.lock().unwrap().iter().map(|(p, &c)| (p[4..].parse().unwrap(), c)).collect();
    let events = cluster.finished_events();
    for id in &ids {
        let results = events.iter().filter(|r| r.job_id.to_string() == *id).count();
        assert_eq!(results, 1, "job {id} has {results} terminal results on the topic");
    }
    (ids.iter().map(|id| done[id].clone()).collect(), fetched, held)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_executor_killed_with_prefetched_jobs_they_run_elsewhere_once() {
    let (results, runs, held) = kill_an_executor_holding_prefetched_jobs(None).await;
    for (n, result) in results.iter().enumerate() {
        assert_eq!((result["status"].as_str(), &result["output"]), (Some("succeeded"), &json!(n)), "job {n}: {result}");
    }
    // only what ran on the killed executor (one slot) may run again; the jobs it
    // held waiting ran once, on the survivor
    let twice: Vec<u32> = runs.iter().filter(|(_, &c)| c > 1).map(|(&n, _)| n).collect();
    assert!(twice.len() <= 1, "jobs run twice: {twice:?} ({held} were prefetched)");
    assert!(runs.values().all(|&c| (1..=2).contains(&c)), "{runs:?}");
    assert_eq!(runs.len(), results.len(), "every job ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_once_jobs_held_in_a_killed_executors_backlog_run_elsewhere_and_none_twice() {
    let (results, runs, held) = kill_an_executor_holding_prefetched_jobs(Some("at_most_once")).await;
    let lost = results.iter().filter(|r| r["status"] == "failed").count();
    for (n, result) in results.iter().enumerate() {
        let ran = runs.get(&(n as u32)).copied().unwrap_or(0);
        assert!(ran <= 1, "job {n} ran {ran} times");
        if result["status"] == "failed" {
            assert_eq!(result["reason"], EXECUTOR_LOST, "job {n}: {result}");
        } else {
            assert_eq!((result["status"].as_str(), ran), (Some("succeeded"), 1), "job {n}: {result}");
        }
    }
    // only the run under way on the killed executor is lost: the backlog it held
    // had not started, and ran on the survivor
    assert!(lost <= 1, "{lost} lost, more than the killed executor ran at once ({held} were prefetched)");
}

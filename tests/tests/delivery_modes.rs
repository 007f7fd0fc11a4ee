//! The processing guarantee per job, on separate processes with an executor
//! killed (SIGKILL) mid-run and then the broker crashed and restarted. Each job downloads a source from a loopback server
//! the test runs just before its function starts: the downloads count the runs.
//! at-most-once: no job runs twice, each has one result, the killed ones end
//! `executor lost…`; at-least-once: the killed ones run again (attempt > 1), still
//! one result each.

use std::collections::HashMap;
use std::time::Duration;

use gitfaas_common::schema::EXECUTOR_LOST;
use gitfaas_tests::cluster::{call, Cluster, FAST_REBALANCE};
use gitfaas_tests::sandbox::HttpServer;
use gitfaas_tests::{sleep_repo, Provider};
use serde_json::{json, Value};

const JOBS: u32 = 50;
/// Each job's function time: long enough that the kill, a moment after a run
/// of the executor's began, finds it still running on a loaded machine (1.5 s
/// was not: a CI run saw every one of them finish first).
const SECS: f64 = 3.0;
/// Jobs each executor runs at once.
const SLOTS: u32 = 2;

/// Runs `JOBS` jobs of `delivery` (none: the default) on two executors, one of
/// them killed while it runs some, then the broker killed and restarted while
/// the rest run and queue; their results, and how often each job's source was
/// fetched (by job number).
async fn run_with_a_killed_executor(delivery: Option<&str>) -> (Vec<Value>, HashMap<u32, u32>) {
    // executor ids of this run's own: an executor removes the containers labelled
    // with its id when it starts, and the two tests of this file run at once
    let mode = delivery.unwrap_or("default");
    let (first, second) = (format!("{mode}-exec-1"), format!("{mode}-exec-2"));
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    let server = HttpServer::start().await;
    cluster.start_executor(&first, SLOTS);
    cluster.start_executor(&second, SLOTS);
    let repo = sleep_repo();
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..JOBS {
        server.files.lock().unwrap().insert(format!("job/{n}"), b"x".to_vec());
        let mut body = json!({
            "repo": repo, "ref": "main", "input": {"n": n, "secs": SECS}, "timeout_secs": 120,
            "sources": [{"name": "in.txt", "url": server.url(&format!("job/{n}"))}],
        });
        if let Some(delivery) = delivery {
            body["delivery"] = delivery.into();
        }
        let response = call(|| client.post(cluster.url("/v1/jobs")).bearer_auth(&token).json(&body)).await;
        assert_eq!(response.status(), 202);
        ids.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // killed once one of its jobs has made its side effect (its download, just before
    // its function): a "running" status alone may still be cloning or starting
    cluster.wait_running_on(&token, &first).await;
    wait_for_a_side_effect_on(&cluster, &token, &first, &ids, &server).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_executor(&first);
    // the broker crashes while the survivor runs jobs, and before the killed
    // executor's partitions have moved: the loss is found after it is back
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ran_before = server.fetched.lock().unwrap().len();
    assert!(ran_before < JOBS as usize / 2, "the broker restarts mid-run: {ran_before} of {JOBS} jobs had run");
    cluster.restart_broker();
    eprintln!("delivery_modes: broker restarted with {ran_before} of {JOBS} jobs started");
    let done = cluster.results(&token, &ids, Duration::from_secs(300)).await;
    let listed: Value =
        call(|| client.get(cluster.url("/v1/jobs?limit=100")).bearer_auth(&token)).await.json().await.unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), JOBS as usize, "each job listed once");
    for id in &ids {
        let view: Value =
            call(|| client.get(cluster.url(&format!("/v1/jobs/{id}"))).bearer_auth(&token)).await.json().await.unwrap();
        assert_eq!(view["delivery"], delivery.unwrap_or("at_least_once"), "the job view shows the mode");
    }
    let fetched =
        server.fetched.lock().unwrap().iter().map(|(path, &count)| (path[4..].parse().unwrap(), count)).collect();
    (ids.iter().map(|id| done[id].clone()).collect(), fetched)
}

/// Waits until a job `executor` is running has fetched its source.
async fn wait_for_a_side_effect_on(
    cluster: &Cluster,
    token: &str,
    executor: &str,
    ids: &[String],
    server: &HttpServer,
) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        let running: Value = call(|| client.get(cluster.url("/v1/jobs?status=running&limit=100")).bearer_auth(token))
            .await
            .json()
            .await
            .unwrap();
        let fetched = server.fetched.lock().unwrap().clone();
        let on_it = running["jobs"].as_array().unwrap().iter().filter(|j| j["executor_id"] == executor);
        let started = on_it
            .filter_map(|j| ids.iter().position(|id| j["id"] == id.as_str()))
            .any(|n| fetched.get(&format!("job/{n}")).copied().unwrap_or(0) > 0);
        if started {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no job of {executor} reached its function");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_once_jobs_never_run_twice_and_those_of_a_killed_executor_end_executor_lost() {
    let (results, fetched) = run_with_a_killed_executor(Some("at_most_once")).await;
    let mut lost = 0;
    for (n, result) in results.iter().enumerate() {
        let runs = fetched.get(&(n as u32)).copied().unwrap_or(0);
        assert!(runs <= 1, "job {n} started {runs} times: {result}");
        assert_eq!(result["delivery"], "at_most_once", "{result}");
        if result["status"] == "failed" {
            assert_eq!(result["reason"], EXECUTOR_LOST, "job {n}: {result}");
            lost += 1;
        } else {
            assert_eq!((result["status"].as_str(), runs), (Some("succeeded"), 1), "job {n}: {result}");
            assert_eq!(result["output"], n, "job {n}");
        }
    }
    assert!(lost > 0, "the jobs running on the killed executor ended executor lost");
    // only those: the broker's restart cut every executor off the observer topic
    // and the group for a while, which loses none of the survivor's runs
    assert!(lost <= SLOTS as usize, "{lost} jobs lost, more than the killed executor ran at once");
    eprintln!("delivery_modes: at most once, {JOBS} jobs, {lost} lost with their executor, none run twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_jobs_of_a_killed_executor_run_again_with_one_result_each() {
    let (results, fetched) = run_with_a_killed_executor(None).await;
    for (n, result) in results.iter().enumerate() {
        assert_eq!((result["status"].as_str(), &result["output"]), (Some("succeeded"), &json!(n)), "job {n}: {result}");
        assert_eq!(result["delivery"], "at_least_once");
    }
    let rerun: Vec<usize> =
        (0..JOBS as usize).filter(|&n| fetched.get(&(n as u32)).copied().unwrap_or(0) > 1).collect();
    assert!(!rerun.is_empty(), "the killed executor's jobs ran again: {fetched:?}");
    let redelivered = results.iter().filter(|r| r["attempt"].as_u64().unwrap() > 1).count();
    assert!(redelivered > 0, "re-runs count as later attempts");
    eprintln!("delivery_modes: at least once, {JOBS} jobs, {} run again, all succeeded once", rerun.len());
}

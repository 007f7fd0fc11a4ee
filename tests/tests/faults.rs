//! Delivery guarantees under faults, on separate processes: every submitted job
//! ends in exactly one terminal result through executor crashes, broker, Redis and
//! frontend restarts and a Redis wipe; a job longer than `max.poll.interval.ms`
//! runs once; a SIGTERM'd executor finishes its running job before it exits.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use gitfaas_common::schema::decode_event;
use gitfaas_common::JobEvent;
use gitfaas_tests::cluster::Cluster;
use gitfaas_tests::{git_repo, read_topic_from, Provider};
use serde_json::{json, Value};

fn sleep_repo() -> String {
    git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "import time\ndef main(data, credentials):\n    time.sleep(data['secs'])\n    return data['n']\n"),
    ])
}

/// HTTP that rides out a frontend restart.
async fn call(request: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    for _ in 0..300 {
        match request().send().await {
            Ok(response) if response.status().as_u16() != 503 => return response,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("the frontend did not come back");
}

async fn wait_ready(cluster: &Cluster) {
    let client = reqwest::Client::new();
    let response = call(|| client.get(cluster.url("/health/ready"))).await;
    assert_eq!(response.status(), 200);
}

async fn submit(cluster: &Cluster, token: &str, repo: &str, n: u32, secs: f64) -> String {
    let client = reqwest::Client::new();
    let body = json!({"repo": repo, "ref": "main", "input": {"n": n, "secs": secs}, "timeout_secs": 120});
    let response = call(|| client.post(cluster.url("/v1/jobs")).bearer_auth(token).json(&body)).await;
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Results of `ids`, waiting up to `limit` for all of them.
async fn results(cluster: &Cluster, token: &str, ids: &[String], limit: Duration) -> HashMap<String, Value> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + limit;
    let mut done = HashMap::new();
    while done.len() < ids.len() {
        assert!(Instant::now() < deadline, "only {} of {} jobs finished", done.len(), ids.len());
        let waiting: Vec<&String> = ids.iter().filter(|id| !done.contains_key(*id)).collect();
        for id in waiting {
            let response = call(|| client.get(cluster.url(&format!("/v1/jobs/{id}/result"))).bearer_auth(token)).await;
            if response.status() == 200 {
                done.insert(id.clone(), response.json::<Value>().await.unwrap());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    done
}

/// Waits until `executor` is running at least one job.
async fn wait_running_on(cluster: &Cluster, token: &str, executor: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        let running: Value = call(|| client.get(cluster.url("/v1/jobs?status=running&limit=100")).bearer_auth(token))
            .await
            .json()
            .await
            .unwrap();
        if running["jobs"].as_array().unwrap().iter().any(|j| j["executor_id"] == executor) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{executor} never ran a job");
}

fn finished_events(cluster: &Cluster) -> Vec<gitfaas_common::JobResult> {
    read_topic_from(&format!("127.0.0.1:{}", cluster.kafka_port), "gitfaas.results")
        .into_iter()
        .filter_map(|(_, payload, _)| match decode_event(&payload) {
            Ok(JobEvent::Finished(result)) => Some(result),
            _ => None,
        })
        .collect()
}

const FAST_REBALANCE: [(&str, &str); 2] = [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "1000")];

#[tokio::test(flavor = "multi_thread")]
async fn every_job_ends_in_exactly_one_result_through_crashes_restarts_and_a_redis_wipe() {
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    wait_ready(&cluster).await;
    cluster.start_executor("exec-1", 2);
    cluster.start_executor("exec-2", 2);
    let repo = sleep_repo();
    let durations = [0.2, 0.5, 1.0, 2.0, 3.0];
    let mut ids = Vec::new();
    for n in 0..50u32 {
        ids.push(submit(&cluster, &token, &repo, n, durations[n as usize % durations.len()]).await);
    }
    wait_running_on(&cluster, &token, "exec-1").await;
    cluster.kill_executor("exec-1"); // kill -9 mid-job
    cluster.start_executor("exec-3", 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart_broker();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart_redis();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.wipe_redis();
    cluster.restart_frontend();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart_frontend();

    let done = results(&cluster, &token, &ids, Duration::from_secs(420)).await;
    for (n, id) in ids.iter().enumerate() {
        let result = &done[id];
        assert_eq!(result["status"], "succeeded", "job {n}: {result}");
        assert_eq!(result["output"], n, "job {n} returned its own input");
    }
    let client = reqwest::Client::new();
    let listed: Value =
        call(|| client.get(cluster.url("/v1/jobs?limit=100")).bearer_auth(&token)).await.json().await.unwrap();
    let listed: Vec<&Value> = listed["jobs"].as_array().unwrap().iter().collect();
    let unique: HashSet<&str> = listed.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!((listed.len(), unique.len()), (50, 50), "exactly the 50 jobs, once each");
    assert!(listed.iter().all(|j| j["status"] == "succeeded"), "none stuck");
    let redelivered = done.values().filter(|r| r["attempt"].as_u64().unwrap() > 1).count();
    assert!(redelivered > 0, "the jobs running on the killed executor ran again with attempt > 1");
    let finished: HashSet<_> = finished_events(&cluster).into_iter().map(|r| r.job_id.to_string()).collect();
    assert!(ids.iter().all(|id| finished.contains(id)));
    eprintln!("faults: 50 jobs, {redelivered} redelivered, all succeeded exactly once in the api");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_longer_than_the_max_poll_interval_completes_exactly_once() {
    let mut cluster = Cluster::start(&[("session.timeout.ms", "6000"), ("max.poll.interval.ms", "8000")]);
    let token = Provider::shared().token("alice").await;
    wait_ready(&cluster).await;
    cluster.start_executor("exec-long", 1);
    let repo = sleep_repo();
    let long = submit(&cluster, &token, &repo, 1, 15.0).await;
    let short = submit(&cluster, &token, &repo, 2, 0.1).await;
    let done = results(&cluster, &token, &[long.clone(), short.clone()], Duration::from_secs(120)).await;
    assert_eq!(done[&long]["status"], "succeeded");
    assert_eq!(done[&long]["attempt"], 1, "not redelivered");
    assert!(done[&long]["timings"]["run_ms"].as_u64().unwrap() >= 15_000);
    let runs = finished_events(&cluster).iter().filter(|r| r.job_id.to_string() == long).count();
    assert_eq!(runs, 1, "one result on the topic: no rebalance, no second run");
    let log = std::fs::read_to_string(cluster.log_path("exec-long")).unwrap();
    assert!(!log.contains("partition revoked"), "the executor kept its partitions");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigtermed_executor_finishes_its_running_job_before_exiting() {
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    wait_ready(&cluster).await;
    cluster.start_executor("exec-term", 1);
    let id = submit(&cluster, &token, &sleep_repo(), 7, 5.0).await;
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let status: Value =
            call(|| client.get(cluster.url(&format!("/v1/jobs/{id}"))).bearer_auth(&token)).await.json().await.unwrap();
        if status["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut executor = cluster.terminate_executor("exec-term");
    let exit = tokio::task::spawn_blocking(move || executor.wait().unwrap()).await.unwrap();
    assert!(exit.success(), "graceful exit: {exit:?}");
    let finished = finished_events(&cluster);
    let ours: Vec<_> = finished.iter().filter(|r| r.job_id.to_string() == id).collect();
    assert_eq!(ours.len(), 1, "the result was published before the executor exited");
    assert_eq!(ours[0].status, gitfaas_common::JobStatus::Succeeded);
    assert_eq!(ours[0].attempt, 1);
}

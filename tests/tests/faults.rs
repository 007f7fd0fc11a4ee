//! Delivery guarantees under faults, on separate processes: every submitted job
//! ends in exactly one terminal result through executor crashes, broker, Redis and
//! frontend restarts and a Redis wipe; a job longer than `max.poll.interval.ms`
//! runs once; a SIGTERM'd executor finishes its running job before it exits.

use std::collections::HashSet;
use std::time::Duration;

use gitfaas_tests::cluster::{call, Cluster, FAST_REBALANCE};
use gitfaas_tests::sleep_repo;
use gitfaas_tests::Provider;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn every_job_ends_in_exactly_one_result_through_crashes_restarts_and_a_redis_wipe() {
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    cluster.start_executor("exec-1", 2);
    cluster.start_executor("exec-2", 2);
    let repo = sleep_repo();
    let durations = [0.2, 0.5, 1.0, 2.0, 3.0];
    let mut ids = Vec::new();
    for n in 0..50u32 {
        ids.push(cluster.submit_sleep(&token, &repo, n, durations[n as usize % durations.len()]).await);
    }
    cluster.wait_running_on(&token, "exec-1").await;
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

    let done = cluster.results(&token, &ids, Duration::from_secs(420)).await;
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
    let finished: HashSet<_> = cluster.finished_events().into_iter().map(|r| r.job_id.to_string()).collect();
    assert!(ids.iter().all(|id| finished.contains(id)));
    eprintln!("faults: 50 jobs, {redelivered} redelivered, all succeeded exactly once in the api");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_longer_than_the_max_poll_interval_completes_exactly_once() {
    let mut cluster = Cluster::start(&[("session.timeout.ms", "6000"), ("max.poll.interval.ms", "8000")]);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    cluster.start_executor("exec-long", 1);
    let repo = sleep_repo();
    let long = cluster.submit_sleep(&token, &repo, 1, 15.0).await;
    let short = cluster.submit_sleep(&token, &repo, 2, 0.1).await;
    let done = cluster.results(&token, &[long.clone(), short.clone()], Duration::from_secs(120)).await;
    assert_eq!(done[&long]["status"], "succeeded");
    assert_eq!(done[&long]["attempt"], 1, "not redelivered");
    assert!(done[&long]["timings"]["run_ms"].as_u64().unwrap() >= 15_000);
    let runs = cluster.finished_events().iter().filter(|r| r.job_id.to_string() == long).count();
    assert_eq!(runs, 1, "one result on the topic: no rebalance, no second run");
    let log = std::fs::read_to_string(cluster.log_path("exec-long")).unwrap();
    assert!(!log.contains("partition revoked"), "the executor kept its partitions");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigtermed_executor_finishes_its_running_job_before_exiting() {
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    cluster.start_executor("exec-term", 1);
    let id = cluster.submit_sleep(&token, &sleep_repo(), 7, 5.0).await;
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
    let finished = cluster.finished_events();
    let ours: Vec<_> = finished.iter().filter(|r| r.job_id.to_string() == id).collect();
    assert_eq!(ours.len(), 1, "the result was published before the executor exited");
    assert_eq!(ours[0].status, gitfaas_common::JobStatus::Succeeded);
    assert_eq!(ours[0].attempt, 1);
}

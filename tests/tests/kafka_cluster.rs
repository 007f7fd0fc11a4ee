//! Past one broker: gitfaas on a three-node Apache Kafka cluster (KRaft, every node
//! broker and controller), topics replicated three times with `min.insync.replicas=2`,
//! clients authenticating with SASL/SCRAM-SHA-512 — the pass-through settings of
//! `kafka.client`, as a managed Kafka needs them. The leader of the jobs and results
//! partitions dies with SIGKILL while jobs run: every job still ends in exactly one
//! terminal result as the API shows it (a job whose offset commit died with the
//! broker may run again, as at-least-once allows), and the frontend and executors
//! carry on without a restart.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gitfaas_tests::cluster::{call, Cluster, FAST_REBALANCE};
use gitfaas_tests::kafka::KafkaSpec;
use gitfaas_tests::sleep_repo;
use gitfaas_tests::Provider;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

fn spec() -> KafkaSpec {
    KafkaSpec {
        nodes: 3,
        extra: vec!["min.insync.replicas=2".into()],
        scram: Some(("gitfaas".into(), "gitfaas-scram-secret".into())),
    }
}

/// Leader node id of every partition of `topic`, and its replica count.
fn leaders(cluster: &Cluster, topic: &str) -> Vec<(i32, usize)> {
    let consumer: BaseConsumer = cluster.client_config().create().unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    metadata.topics()[0].partitions().iter().map(|p| (p.leader(), p.replicas().len())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_survive_the_loss_of_their_partition_leaders_on_a_replicated_sasl_cluster() {
    let mut cluster = Cluster::start_on(spec(), &FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    cluster.start_executor("exec-a", 2);
    cluster.start_executor("exec-b", 2);

    let jobs = leaders(&cluster, "gitfaas.jobs");
    let results = leaders(&cluster, "gitfaas.results");
    assert!(jobs.iter().chain(&results).all(|(_, replicas)| *replicas == 3), "replication factor 3: {jobs:?}");

    let repo = sleep_repo();
    let durations = [0.3, 1.0, 2.0];
    let mut ids = Vec::new();
    for n in 0..30u32 {
        ids.push(cluster.submit_sleep(&token, &repo, n, durations[n as usize % durations.len()]).await);
    }
    cluster.wait_running_on(&token, "exec-a").await;
    // the node leading most jobs and results partitions
    let mut led: HashMap<i32, usize> = HashMap::new();
    for (leader, _) in jobs.iter().chain(&results) {
        *led.entry(*leader).or_default() += 1;
    }
    let (victim, count) = led.into_iter().max_by_key(|(_, count)| *count).unwrap();
    eprintln!("killing node {victim}, leader of {count} jobs/results partitions");
    cluster.nodes[victim as usize - 1].kill();
    // more work while the cluster runs on two nodes
    for n in 30..40u32 {
        ids.push(cluster.submit_sleep(&token, &repo, n, 0.3).await);
    }

    let done = cluster.results(&token, &ids, Duration::from_secs(300)).await;
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(done[id]["status"], "succeeded", "job {n}: {}", done[id]);
        assert_eq!(done[id]["output"], n, "job {n} returned its own input");
    }
    let moved = leaders(&cluster, "gitfaas.jobs");
    assert!(moved.iter().all(|(leader, _)| *leader != victim && *leader > 0), "leadership moved: {moved:?}");
    let finished = cluster.finished_events();
    let per_job: HashMap<String, usize> = finished.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.job_id.to_string()).or_default() += 1;
        m
    });
    // at-least-once underneath: a job whose offset commit was lost with the broker (the
    // group coordinator can be the node that died) runs again, and the first terminal
    // result on the topic (a job's messages share one partition) stays the one the API shows
    let lost: Vec<_> = ids.iter().filter(|id| !per_job.contains_key(*id)).collect();
    assert!(lost.is_empty(), "a terminal result on the topic for every job; none for {lost:?}");
    for id in &ids {
        let first = finished.iter().find(|r| r.job_id.to_string() == *id).unwrap();
        let shown: chrono::DateTime<chrono::Utc> = serde_json::from_value(done[id]["finished_at"].clone()).unwrap();
        assert_eq!(shown, first.finished_at, "the api shows the first result of {id}");
    }
    let rerun = ids.iter().filter(|id| per_job[*id] > 1).count();
    eprintln!("leader loss: {} jobs, {rerun} ran again, each shown once in the api", ids.len());
    let client = reqwest::Client::new();
    let listed: Value =
        call(|| client.get(cluster.url("/v1/jobs?limit=100")).bearer_auth(&token)).await.json().await.unwrap();
    let unique: HashSet<&str> = listed["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), ids.len(), "exactly the submitted jobs, once each");
    // the same services, never restarted, still work on the two nodes left
    assert!(cluster.executors.contains_key("exec-a") && cluster.executors.contains_key("exec-b"));
    for (id, child) in cluster.executors.iter_mut() {
        assert!(child.try_wait().unwrap().is_none(), "{id} is still running");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_with_a_wrong_scram_password_is_refused_by_the_cluster() {
    let spec = KafkaSpec { nodes: 1, ..spec() };
    let dir = tempfile::tempdir().unwrap();
    let nodes = gitfaas_tests::kafka::start(dir.path(), &spec);
    let mut config = spec.client_config(&nodes);
    config.set("sasl.password", "wrong");
    let consumer: BaseConsumer = config.create().unwrap();
    let refused = consumer.fetch_metadata(None, Duration::from_secs(10));
    assert!(refused.is_err(), "metadata without the right password: {:?}", refused.map(|m| m.brokers().len()));
    let consumer: BaseConsumer = spec.client_config(&nodes).create().unwrap();
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(30)).expect("the right password is accepted");
    assert_eq!(metadata.brokers().len(), 1);
}

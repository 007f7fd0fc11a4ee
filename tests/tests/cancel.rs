//! Cancelling jobs, and jobs on partitions a rebalance moves: each ends in exactly
//! one terminal result, a cancelled job never runs (or is killed), and a stopped
//! executor's partitions are taken over at once, not after the session timeout.

use std::time::{Duration, Instant};

use gitfaas_common::control::{CancelRequest, ControlMessage};
use gitfaas_common::kafka::decode;
use gitfaas_common::kafka::Publisher;
use gitfaas_common::schema::SCHEMA_VERSION;
use gitfaas_common::{JobEvent, JobId};
use gitfaas_tests::{containers_of_job, executor_settings, git_repo, kafka_settings, read_topic, Provider, Stack};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn sleep_repo() -> String {
    git_repo(&[
        ("gitfaas.toml", "runtime = \"command\"\nentry = \"bin/nap\"\n"),
        ("bin/nap", "#!/bin/sh\nsecs=$(cat)\nsleep \"$secs\"\nprintf '{\"slept\": %s}' \"$secs\"\n"),
    ])
}

async fn submit_nap(stack: &Stack, repo: &str, secs: u32) -> String {
    stack.submit_ok(&json!({"repo": repo, "input": secs, "timeout_secs": 120})).await
}

async fn cancel_as(stack: &Stack, token: &str, id: &str) -> reqwest::Response {
    let url = stack.url(&format!("/v1/jobs/{id}/cancel"));
    reqwest::Client::new().post(url).bearer_auth(token).send().await.expect("cancel")
}

async fn status(stack: &Stack, id: &str) -> Value {
    stack.get(&format!("/v1/jobs/{id}")).await.json().await.unwrap()
}

async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Submits quick jobs until one runs on `executor` (which then owns a partition).
async fn wait_for_a_job_on(stack: &Stack, repo: &str, executor: &str) {
    wait_until(&format!("a job on {executor}"), Duration::from_secs(90), async || {
        let id = submit_nap(stack, repo, 0).await;
        stack.result(&id).await["executor_id"] == executor
    })
    .await;
}

/// How many of alice's jobs are running; none (and the answer printed) when the
/// frontend does not list them.
async fn running_jobs(stack: &Stack) -> Option<usize> {
    let response = stack.get("/v1/jobs?status=running&limit=100").await;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let count = body["jobs"].as_array().map(Vec::len);
    if count.is_none() {
        println!("listing running jobs answered {status}: {body}");
    }
    count
}

/// (started, finished) events of `id` on the stack's results topic.
fn events_of(stack: &Stack, id: &str) -> (Vec<Value>, Vec<Value>) {
    let (mut started, mut finished) = (Vec::new(), Vec::new());
    for (_, payload, _) in read_topic(&stack.topics().results) {
        match decode::<gitfaas_common::JobEvent>(&payload) {
            Ok(JobEvent::Started(s)) if s.job_id.to_string() == id => started.push(serde_json::to_value(s).unwrap()),
            Ok(JobEvent::Finished(r)) if r.job_id.to_string() == id => finished.push(serde_json::to_value(r).unwrap()),
            _ => {}
        }
    }
    (started, finished)
}

/// Starts another executor in the stack's consumer group, on this test's runtime.
async fn start_executor(stack: &Stack, id: &str) -> CancellationToken {
    start_executor_with(stack, id, |_| {}).await
}

async fn start_executor_with(
    stack: &Stack,
    id: &str,
    customize: impl FnOnce(&mut gitfaas_executor::Settings),
) -> CancellationToken {
    let state = tempfile::tempdir().expect("tempdir").keep();
    let mut settings = executor_settings(&stack.topic_prefix, &state);
    settings.executor.id = Some(id.to_owned());
    customize(&mut settings);
    let worker = gitfaas_executor::build(&settings).await.expect("executor starts");
    let stop = CancellationToken::new();
    tokio::spawn(worker.run(stop.clone()));
    stop
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_job_is_killed_and_ends_cancelled_once() {
    let stack = Stack::start(true);
    let id = submit_nap(&stack, &sleep_repo(), 60).await;
    wait_until("the job's container", Duration::from_secs(60), async || {
        status(&stack, &id).await["status"] == "running" && containers_of_job(&id).await == 1
    })
    .await;

    let response = cancel_as(&stack, &stack.token, &id).await;
    assert_eq!(response.status(), 202, "a running job is being killed");
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["status"], "running");
    assert!(view["cancel_requested_at"].is_string(), "{view}");

    let result = stack.result(&id).await;
    assert_eq!(result["status"], "cancelled", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("cancelled by its owner"), "{result}");
    assert_eq!(result["executor_id"], stack.executor_id.as_str());
    assert!(result["timings"]["run_ms"].as_u64().unwrap() < 30_000, "killed, not slept out: {result}");
    assert_eq!(containers_of_job(&id).await, 0, "the container is gone");
    let (started, finished) = events_of(&stack, &id);
    assert_eq!((started.len(), finished.len()), (1, 1), "one run, one result: {finished:?}");
    let requests = read_topic(&stack.topics().control);
    let (_, payload, headers) = requests.iter().find(|(k, ..)| k.as_deref() == Some(id.as_str())).expect("on control");
    let request = decode::<gitfaas_common::control::ControlMessage>(payload).expect("a control message");
    assert!(matches!(request, ControlMessage::Cancel(ref r) if !r.result_published), "{request:?}");
    assert!(headers.iter().any(|(k, v)| k == "traceparent" && v.starts_with("00-")), "traced: {headers:?}");
    let observer = read_topic(&stack.topics().observer);
    assert!(!observer.iter().any(|(k, ..)| k.as_deref() == Some(id.as_str())), "no cancel on the observer topic");

    let again = cancel_as(&stack, &stack.token, &id).await;
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert_eq!(problem["job_status"], "cancelled", "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_jobs_are_cancelled_at_once_and_a_later_executor_never_runs_them() {
    let stack = Stack::start(false);
    let repo = sleep_repo();
    let queued = submit_nap(&stack, &repo, 0).await;
    let response = cancel_as(&stack, &stack.token, &queued).await;
    assert_eq!(response.status(), 200, "a queued job is cancelled on the spot");
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "cancelled");
    let result = stack.result(&queued).await;
    assert_eq!((result["status"].as_str(), result["executor_id"].as_str()), (Some("cancelled"), Some("frontend")));
    assert!(result["started_at"].is_null());

    // a request published while the job was thought to run (its executor then
    // crashed): the executor that gets the job publishes the `cancelled` result
    let orphan = submit_nap(&stack, &repo, 0).await;
    let request = CancelRequest {
        version: SCHEMA_VERSION,
        job_id: orphan.parse::<JobId>().unwrap(),
        owner: "alice".into(),
        requested_at: chrono::Utc::now(),
        result_published: false,
    };
    let message = ControlMessage::Cancel(request);
    let publisher = Publisher::new(&kafka_settings(&stack.topic_prefix)).unwrap();
    publisher.publish(&message).await.expect("cancel request published");

    // the executor starts after both requests; it reads them back before taking jobs
    let stop = start_executor(&stack, &stack.executor_id).await;
    let probe = submit_nap(&stack, &repo, 0).await;
    assert_eq!(stack.result(&probe).await["status"], "succeeded", "the executor runs other jobs");
    let orphan_result = stack.result(&orphan).await;
    assert_eq!(orphan_result["status"], "cancelled", "{orphan_result}");
    assert_eq!(orphan_result["executor_id"], stack.executor_id.as_str());
    assert!(orphan_result["reason"].as_str().unwrap().contains("before it started"), "{orphan_result}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [&queued, &orphan] {
        let (started, finished) = events_of(&stack, id);
        assert!(started.is_empty(), "job {id} never started: {started:?}");
        assert_eq!(finished.len(), 1, "exactly one result for {id}: {finished:?}");
    }
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_cancels_and_only_with_post() {
    let stack = Stack::shared();
    let id = submit_nap(stack, &sleep_repo(), 0).await;
    let bob = Provider::shared().token("bob").await;
    let as_bob = cancel_as(stack, &bob, &id).await;
    assert_eq!(as_bob.status(), 404);
    let bob_body: Value = as_bob.json().await.unwrap();
    let missing: Value = cancel_as(stack, &stack.token, &JobId::new().to_string()).await.json().await.unwrap();
    assert_eq!(bob_body, missing, "someone else's job looks exactly like a missing one");
    assert_eq!(cancel_as(stack, &stack.token, "not-a-job").await.status(), 404);

    let get = stack.get(&format!("/v1/jobs/{id}/cancel")).await;
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    assert_eq!(stack.result(&id).await["status"], "succeeded", "bob's attempt changed nothing");
    let finished = cancel_as(stack, &stack.token, &id).await;
    assert_eq!(finished.status(), 409);
    assert_eq!(finished.json::<Value>().await.unwrap()["job_status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_of_a_partition_taken_by_a_new_executor_run_again_there_with_one_result() {
    const JOBS: usize = 8;
    let stack = Stack::start_with(
        true,
        Box::new(|_, executor| {
            executor.executor.slots = JOBS;
            executor.executor.revoke_grace_secs = 1;
        }),
    );
    let repo = sleep_repo();
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(submit_nap(&stack, &repo, 20).await);
    }
    wait_until("every job running on the first executor", Duration::from_secs(90), async || {
        running_jobs(&stack).await == Some(JOBS)
    })
    .await;

    // the newcomer takes one of the two partitions: the first executor abandons that
    // partition's jobs after the 1 s grace, and the newcomer runs them again
    let second = format!("{}-2", stack.executor_id);
    let stop = start_executor(&stack, &second).await;
    let mut moved = 0;
    for id in &ids {
        let result = stack.result(id).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        if result["executor_id"] == second.as_str() {
            moved += 1;
            assert!(result["attempt"].as_u64().unwrap() >= 2, "a rerun counts as another attempt: {result}");
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &ids {
        let (_, finished) = events_of(&stack, id);
        assert_eq!(finished.len(), 1, "exactly one result for {id}: {finished:?}");
        assert_eq!(containers_of_job(id).await, 0);
    }
    assert!(moved > 0, "a partition with running jobs moved to the newcomer");
    stop.cancel();
}

/// Slots enough for every job, and a revoke grace longer than any job.
fn patient(settings: &mut gitfaas_executor::Settings) {
    settings.executor.slots = 12;
    settings.executor.revoke_grace_secs = 30;
    settings.kafka.partitions = 4;
}

/// Jobs still running on a partition's old owner when the partition moves (a third
/// executor joins) finish there and are not started a second time: Kafka's
/// cooperative protocol assigns the partition to the new owner only after the old
/// one revoked it, and the revoke lets its jobs finish and commit first.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_running_when_their_partition_moves_finish_there_and_run_once() {
    const JOBS: usize = 12;
    let stack = Stack::start_with(
        true,
        Box::new(|frontend, executor| {
            patient(executor);
            frontend.kafka.partitions = 4;
        }),
    );
    let repo = sleep_repo();
    let second = format!("{}-2", stack.executor_id);
    let stop_second = start_executor_with(&stack, &second, patient).await;
    wait_for_a_job_on(&stack, &repo, &second).await;

    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(submit_nap(&stack, &repo, 10).await);
    }
    wait_until("every job running", Duration::from_secs(90), async || running_jobs(&stack).await == Some(JOBS)).await;
    let third = format!("{}-3", stack.executor_id);
    let stop_third = start_executor_with(&stack, &third, patient).await;
    for id in &ids {
        let result = stack.result(id).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_ne!(result["executor_id"], third.as_str(), "{result}");
    }
    // the newcomer owns a partition now; had it run moved jobs, it would have
    // started them by the time it runs a new one
    wait_for_a_job_on(&stack, &repo, &third).await;
    for id in &ids {
        let (started, finished) = events_of(&stack, id);
        assert_eq!(started.len(), 1, "started once: {started:?}");
        assert_eq!(finished.len(), 1, "one result: {finished:?}");
    }
    stop_second.cancel();
    stop_third.cancel();
}

/// A long session timeout, so that a member that left without saying so would
/// hold its partitions for 30 s.
fn slow_session(settings: &mut gitfaas_executor::Settings) {
    settings.kafka.client.insert("session.timeout.ms".into(), "30000".into());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_executors_partitions_are_taken_over_at_once() {
    let stack = Stack::start_with(true, Box::new(|_, executor| slow_session(executor)));
    let repo = sleep_repo();
    let second = format!("{}-2", stack.executor_id);
    let stop = start_executor_with(&stack, &second, slow_session).await;
    // both members own a partition once the newcomer has run a job
    wait_for_a_job_on(&stack, &repo, &second).await;

    stop.cancel();
    let stopped = Instant::now();
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..6 {
            ids.push(submit_nap(&stack, &repo, 0).await);
        }
        ids
    };
    for id in &ids {
        let result = stack.result(id).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["executor_id"], stack.executor_id.as_str(), "the stopped executor ran nothing: {result}");
    }
    let takeover = stopped.elapsed();
    println!("all jobs done {takeover:?} after the stop");
    assert!(takeover < Duration::from_secs(25), "the group waited for the 30 s session timeout: {takeover:?}");
}

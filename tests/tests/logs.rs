//! Live logs end to end: the executor streams what a function writes to the logs
//! topic while it runs, the frontend keeps it and serves it — whole as text, or
//! followed as Server-Sent Events — to the job's owner only. A slow printer is
//! followed live; a 50 MB printer is capped; a credential the function prints is
//! redacted; a job redelivered after its executor was killed says which attempt
//! each chunk came from.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use gitfaas_common::kafka::decode;
use gitfaas_common::logs::LogChunk;
use gitfaas_tests::cluster::{call, Cluster, FAST_REBALANCE};
use gitfaas_tests::sandbox::{contains, start, Options};
use gitfaas_tests::sse::{Event, EventReader};
use gitfaas_tests::{git_repo, read_topic, Provider, Stack};
use serde_json::{json, Value};

const CAP: usize = 1 << 20;

fn python(main: &str) -> String {
    git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", main)])
}

/// Prints `line 0` … `line 4`, one a second, then returns.
const SLOW_PRINTER: &str = "import time\ndef main(data, credentials):\n    for i in range(5):\n        \
    print(f'line {i}', flush=True)\n        time.sleep(1)\n    return 'done'\n";

/// How many records of job `id` the logs topic holds.
fn records_on_logs_topic(stack: &Stack, id: &str) -> usize {
    read_topic(&stack.topics().logs).into_iter().filter(|(key, ..)| key.as_deref() == Some(id)).count()
}

async fn follow_as(stack: &Stack, token: &str, id: &str) -> reqwest::Response {
    stack.get_as(token, &format!("/v1/jobs/{id}/logs?follow=true")).await
}

/// The text of the `log` events, and their ids in order.
fn log_text(events: &[Event]) -> (String, Vec<u64>) {
    let logs = events.iter().filter(|e| e.name == "log");
    let text = logs.clone().map(|e| e.data["text"].as_str().unwrap().to_owned()).collect();
    (text, logs.map(|e| e.id.as_deref().unwrap().parse().unwrap()).collect())
}

/// Follows the log of a slow printer's job `id` to its end and checks that each
/// line came while it ran, in order, once; the events.
async fn follow_slow_printer(stack: &Stack, id: &str) -> Vec<Event> {
    let response = follow_as(stack, &stack.token, id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = EventReader::new(response).until_end(Duration::from_secs(60)).await;
    let end = events.last().expect("events");
    assert_eq!((end.name.as_str(), end.data["status"].as_str()), ("end", Some("succeeded")), "{events:?}");
    // each line with the arrival of the chunk that ended it (a chunk may end mid-line)
    let (mut lines, mut partial) = (Vec::<(String, Instant)>::new(), String::new());
    for event in events.iter().filter(|e| e.name == "log") {
        partial.push_str(event.data["text"].as_str().unwrap());
        while let Some(end) = partial.find('\n') {
            lines.push((partial[..end].to_owned(), event.at));
            partial.drain(..=end);
        }
    }
    assert!(partial.is_empty(), "the log ends with a whole line: {partial:?}");
    let texts: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(texts, ["line 0", "line 1", "line 2", "line 3", "line 4"], "in order, none twice");
    let early = end.at - lines[0].1;
    assert!(early >= Duration::from_secs(3), "the first line came {early:?} before the end: not live");
    let apart = lines[3].1 - lines[1].1;
    assert!(apart >= Duration::from_millis(1500), "lines came as printed, not at once ({apart:?})");
    let (_, ids) = log_text(&events);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "event ids increase: {ids:?}");
    assert!(events.iter().filter(|e| e.name == "log").all(|e| e.data["attempt"] == 1));
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn a_followed_log_brings_each_line_while_the_job_runs_in_order_and_once() {
    let stack = Stack::shared();
    let repo = python(SLOW_PRINTER);
    let id = stack.submit_ok(&json!({"repo": repo, "timeout_secs": 60})).await;
    let events = follow_slow_printer(stack, &id).await;

    // after the end: the whole log at once, as text and as a stream that ends at once
    let plain = stack.get(&format!("/v1/jobs/{id}/logs")).await;
    assert_eq!(plain.status(), 200);
    assert!(plain.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(plain.text().await.unwrap(), "line 0\nline 1\nline 2\nline 3\nline 4\n");
    let again = EventReader::new(follow_as(stack, &stack.token, &id).await).until_end(Duration::from_secs(10)).await;
    assert_eq!(log_text(&again), log_text(&events), "a late follower gets the same log");
    assert_eq!(again.last().unwrap().name, "end");
    // the result keeps its tail as before, and says how many chunks the log took
    let result = stack.result(&id).await;
    assert!(result["stderr_tail"].as_str().unwrap().contains("line 4"), "{result}");
    assert_eq!(result["log_chunks"], json!(records_on_logs_topic(stack, &id)), "{result}");

    // the same function again runs in the sandbox the first run left warm: streamed as well
    let id = stack.submit_ok(&json!({"repo": repo, "timeout_secs": 60})).await;
    follow_slow_printer(stack, &id).await;
    assert_eq!(stack.result(&id).await["warm"], true, "the second run was warm");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_that_writes_nothing_sends_no_log_and_its_follow_stream_ends_with_the_job() {
    let stack = Stack::shared();
    let id = stack.submit_ok(&json!({"repo": python("def main(data, credentials):\n    return 7\n")})).await;
    let result = stack.result(&id).await;
    assert_eq!((result["status"].as_str(), result["log_chunks"].as_u64()), (Some("succeeded"), Some(0)), "{result}");
    // no closing chunk to wait for: the stream ends at once, not after the grace
    // (3 s) the log of a lost executor's run gets
    let asked = Instant::now();
    let events = EventReader::new(follow_as(stack, &stack.token, &id).await).until_end(Duration::from_secs(10)).await;
    assert_eq!(events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["end"], "{events:?}");
    assert!(asked.elapsed() < Duration::from_secs(2), "ended after {:?}", asked.elapsed());
    assert_eq!(stack.get(&format!("/v1/jobs/{id}/logs")).await.text().await.unwrap(), "");
    assert_eq!(records_on_logs_topic(stack, &id), 0, "nothing on the logs topic");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_logs_of_a_job_are_its_owners_only() {
    let stack = Stack::shared();
    let id = stack.submit_ok(&json!({"repo": python(SLOW_PRINTER)})).await;
    let bob = Provider::shared().token("bob").await;
    for path in [format!("/v1/jobs/{id}/logs"), format!("/v1/jobs/{id}/logs?follow=true")] {
        let response = stack.get_as(&bob, &path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    let missing = gitfaas_common::JobId::new();
    assert_eq!(stack.get(&format!("/v1/jobs/{missing}/logs")).await.status(), 404);
    assert_eq!(stack.get(&format!("/v1/jobs/{id}/logs?follow=maybe")).await.status(), 400);
    let anonymous = reqwest::get(stack.url(&format!("/v1/jobs/{id}/logs"))).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    stack.result(&id).await;
    // erasing the job takes its log with it
    let client = reqwest::Client::new();
    let erased = client.delete(stack.url(&format!("/v1/jobs/{id}"))).bearer_auth(&stack.token).send().await.unwrap();
    assert_eq!(erased.status(), 204);
    assert_eq!(stack.get(&format!("/v1/jobs/{id}/logs")).await.status(), 404);
    let redis = redis::Client::open(gitfaas_tests::infra::redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let left: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:log*:{id}", stack.redis_prefix)).query_async(&mut conn).await.unwrap();
    assert!(left.is_empty(), "the log's keys went with the job: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_printing_50_mb_keeps_a_capped_log_and_ends_with_one_result() {
    let stack = Stack::shared();
    let flood = "import sys\ndef main(data, credentials):\n    line = 'x' * 1023 + '\\n'\n    \
        for _ in range(50 * 1024):\n        sys.stderr.write(line)\n    return 'flooded'\n";
    let started = Instant::now();
    let id = stack.submit_ok(&json!({"repo": python(flood), "timeout_secs": 120})).await;
    let events = EventReader::new(follow_as(stack, &stack.token, &id).await).until_end(Duration::from_secs(120)).await;
    let took = started.elapsed();
    assert_eq!(events.last().unwrap().data["status"], "succeeded", "{:?}", events.last());
    let (text, _) = log_text(&events);
    assert!(text.len() <= CAP && text.len() > CAP / 2, "the log kept {} bytes", text.len());
    assert!(text.lines().all(|l| l.bytes().all(|b| b == b'x')), "only the function's own lines");
    let truncated = events.iter().filter(|e| e.name == "log" && e.data["truncated"] == true).count();
    assert_eq!(truncated, 1, "truncated marked once");
    let plain = stack.get(&format!("/v1/jobs/{id}/logs")).await.text().await.unwrap();
    assert!(plain.len() <= CAP + 100 && plain.ends_with("the rest was dropped]\n"), "{}", &plain[plain.len() - 80..]);

    // on the topic: bounded chunks, at most the cap in all, one truncated mark
    let chunks: Vec<_> = read_topic(&stack.topics().logs)
        .into_iter()
        .filter(|(key, _, _)| key.as_deref() == Some(id.as_str()))
        .map(|(_, payload, _)| decode::<LogChunk>(&payload).expect("a chunk"))
        .collect();
    let published: usize = chunks.iter().map(|c| c.text.len()).sum();
    assert!(published <= CAP, "{published} bytes published");
    assert!(chunks.iter().all(|c| c.text.len() <= 16 << 10), "chunks of at most 16 KiB");
    assert_eq!(chunks.iter().filter(|c| c.truncated).count(), 1);
    assert_eq!(chunks.iter().filter(|c| c.last).count(), 1, "one run, closed once");
    let results = read_topic(&stack.topics().results)
        .into_iter()
        .filter(|(key, payload, _)| key.as_deref() == Some(id.as_str()) && contains(payload, "\"finished\""))
        .count();
    assert_eq!(results, 1, "exactly one result");
    eprintln!("logs: a 50 MiB printer ran to its end in {took:?}, {published} bytes of log in {} chunks", chunks.len());

    // the executor is still healthy: the next job runs
    let next = stack.submit_ok(&json!({"repo": python(SLOW_PRINTER.replace("range(5)", "range(1)").as_str())})).await;
    assert_eq!(stack.result(&next).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_the_function_prints_is_redacted_from_its_log() {
    let stack = &keyed_stack();
    let secret = format!("s3cret-{}", uuid::Uuid::now_v7().simple());
    let main = "def main(data, credentials):\n    print('the key is', credentials['api_key'], flush=True)\n    \
        return 1\n";
    let body = json!({"repo": python(main), "credentials": {"api_key": secret}});
    let id = stack.submit_ok(&body).await;
    assert_eq!(stack.result(&id).await["status"], "succeeded");
    let events = EventReader::new(follow_as(stack, &stack.token, &id).await).until_end(Duration::from_secs(30)).await;
    assert_eq!(log_text(&events).0, "the key is [redacted]\n");
    let topic: Vec<u8> = read_topic(&stack.topics().logs).into_iter().flat_map(|(_, payload, _)| payload).collect();
    assert!(!contains(&topic, &secret), "the credential is not on the logs topic");
}

/// A stack whose frontend seals credentials to its executor's key (a stack of its
/// own: the shared one takes no credentials).
fn keyed_stack() -> Stack {
    let key = gitfaas_common::sealed::PrivateKey::generate();
    start(Options { oci_runtime: "runc", private_key: Some(key.to_base64().to_string()) })
}

/// Prints `start`, works 4 s, prints `done`.
const STARTER: &str = "import time\ndef main(data, credentials):\n    print('start', data['n'], flush=True)\n    \
    time.sleep(4)\n    print('done', data['n'], flush=True)\n    return data['n']\n";

#[tokio::test(flavor = "multi_thread")]
async fn the_log_of_a_job_redelivered_after_its_executor_died_names_each_attempt() {
    let (first, second) = ("logs-exec-1", "logs-exec-2");
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    cluster.start_executor(first, 2);
    cluster.start_executor(second, 2);
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", STARTER)]);
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    // twelve jobs keyed by id over four partitions: the chance that none lands on a
    // partition of the first executor is 2^-12 (with six it was 1 in 64, and it happened)
    for n in 0..12 {
        let body = json!({"repo": repo, "ref": "main", "input": {"n": n}, "timeout_secs": 60});
        let response = call(|| client.post(cluster.url("/v1/jobs")).bearer_auth(&token).json(&body)).await;
        assert_eq!(response.status(), 202);
        ids.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // killed once a job running on it has logged its start
    let logged = wait_for_a_logged_start_on(&cluster, &token, first).await;
    cluster.kill_executor(first);
    let results = cluster.results(&token, &ids, Duration::from_secs(150)).await;
    let result = &results[&logged];
    assert_eq!((result["status"].as_str(), result["attempt"].as_u64()), (Some("succeeded"), Some(2)), "{result}");

    let follow = call(|| client.get(cluster.url(&format!("/v1/jobs/{logged}/logs?follow=true"))).bearer_auth(&token));
    let events = EventReader::new(follow.await).until_end(Duration::from_secs(30)).await;
    let chunks: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e.name == "log")
        .map(|e| (e.data["attempt"].as_u64().unwrap(), e.data["text"].as_str().unwrap().to_owned()))
        .collect();
    let n = results[&logged]["output"].as_u64().unwrap();
    let of = |attempt| chunks.iter().filter(|(a, _)| *a == attempt).map(|(_, t)| t.as_str()).collect::<String>();
    assert_eq!(of(1), format!("start {n}\n"), "the killed run's chunks are attempt 1: {chunks:?}");
    assert_eq!(of(2), format!("start {n}\ndone {n}\n"), "the redelivered run's are attempt 2: {chunks:?}");
    assert!(chunks.windows(2).all(|w| w[0].0 <= w[1].0), "attempts in order: {chunks:?}");
    assert_eq!(events.last().unwrap().data["attempt"], 2);
    let plain = call(|| client.get(cluster.url(&format!("/v1/jobs/{logged}/logs"))).bearer_auth(&token)).await;
    assert_eq!(plain.text().await.unwrap(), format!("start {n}\n[gitfaas: attempt 2]\nstart {n}\ndone {n}\n"));
    let once: HashSet<&String> = ids.iter().collect();
    assert_eq!(once.len(), results.len(), "one result per job");
}

/// Waits until a job running on `executor` has a line in its log; its id.
async fn wait_for_a_logged_start_on(cluster: &Cluster, token: &str, executor: &str) -> String {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        let running: Value = call(|| client.get(cluster.url("/v1/jobs?status=running&limit=100")).bearer_auth(token))
            .await
            .json()
            .await
            .unwrap();
        for job in running["jobs"].as_array().unwrap().iter().filter(|j| j["executor_id"] == executor) {
            let id = job["id"].as_str().unwrap();
            let log = call(|| client.get(cluster.url(&format!("/v1/jobs/{id}/logs"))).bearer_auth(token)).await;
            if log.text().await.unwrap().starts_with("start") {
                return id.to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no job of {executor} logged its start");
}

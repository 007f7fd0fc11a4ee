//! Schedule and topic triggers on separate processes (their own broker and
//! Redis, the real frontend and executor binaries, the test git server):
//! a schedule firing every 2 s makes exactly one job per tick with two
//! frontends — two scheduler instances — and the active one killed mid-way; a
//! function bound to a topic turns 100 records into 100 output records, none
//! twice, and one poison record into one dead letter, through an executor kill.
//! And the API's refusals, on the shared in-process stack.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gitfaas_tests::cluster::{call, Cluster, FAST_REBALANCE};
use gitfaas_tests::{git_repo, read_topic_with, unique, Provider, Stack};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::StatusCode;
use serde_json::{json, Value};

const FUNCTION: &str = "\
def main(data, credentials):
    if isinstance(data, dict) and data.get('poison'):
        raise ValueError('poison record')
    if isinstance(data, dict) and 'n' in data:
        return {'n': data['n'], 'double': data['n'] * 2}
    return data
";

fn function_repo() -> String {
    git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", FUNCTION)])
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

async fn put(port: u16, token: &str, path: &str, body: &Value) -> reqwest::Response {
    let client = reqwest::Client::new();
    call(|| client.put(url(port, path)).bearer_auth(token).json(body)).await
}

async fn deploy(port: u16, token: &str, name: &str) {
    let response =
        put(port, token, &format!("/v1/functions/{name}"), &json!({"repo": function_repo(), "ref": "main"})).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
}

/// Every job of the caller (all pages).
async fn all_jobs(port: u16, token: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut jobs = Vec::new();
    let mut before = String::new();
    loop {
        let path = format!("/v1/jobs?limit=100{before}");
        let page: Value = call(|| client.get(url(port, &path)).bearer_auth(token)).await.json().await.unwrap();
        jobs.extend(page["jobs"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => before = format!("&before={next}"),
            None => return jobs,
        }
    }
}

async fn is_scheduler(port: u16) -> bool {
    let Ok(response) = reqwest::get(url(port, "/metrics")).await else { return false };
    response.text().await.unwrap_or_default().lines().any(|line| line == "gitfaas_scheduler_leader 1")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_makes_one_job_per_tick_with_two_schedulers_and_the_active_one_killed() {
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let other = cluster.start_another_frontend("frontend-b");
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    cluster.start_executor("schedule-exec", 4);
    let ports = [("frontend", cluster.frontend_port), ("frontend-b", other)];
    deploy(ports[0].1, &token, "ticker").await;
    let trigger =
        json!({"function": "ticker", "schedule": {"cron": "*/2 * * * * *", "missed": "catch_up", "input": {"x": 1}}});
    let created = put(ports[0].1, &token, "/v1/triggers/every-2s", &trigger).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text().await.unwrap());

    // one of the two schedules; the other waits
    let deadline = Instant::now() + Duration::from_secs(60);
    let active = loop {
        let mut leading = Vec::new();
        for (name, port) in ports {
            if is_scheduler(port).await {
                leading.push((name, port));
            }
        }
        assert!(leading.len() <= 1, "two active schedulers: {leading:?}");
        if let [one] = leading[..] {
            break one;
        }
        assert!(Instant::now() < deadline, "no scheduler became active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let survivor = ports.into_iter().find(|(name, _)| *name != active.0).unwrap().1;
    while all_jobs(survivor, &token).await.len() < 3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.kill_frontend(active.0);
    let killed_at = Utc::now();
    eprintln!("triggers: killed the active scheduler {} at {killed_at}", active.0);
    // the group hands the partition over after the session timeout (6 s); the ticks
    // meanwhile are caught up
    let deadline = Instant::now() + Duration::from_secs(60);
    while !is_scheduler(survivor).await {
        assert!(Instant::now() < deadline, "the surviving frontend never took over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let client = reqwest::Client::new();
    let paused = call(|| client.post(url(survivor, "/v1/triggers/every-2s/pause")).bearer_auth(&token)).await;
    assert_eq!(paused.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let jobs = all_jobs(survivor, &token).await;
    let mut ticks: BTreeMap<DateTime<Utc>, u32> = BTreeMap::new();
    for job in &jobs {
        if job["origin"]["kind"] == "schedule" {
            assert_eq!(job["origin"]["trigger"], "every-2s");
            assert_eq!(job["function"]["name"], "ticker", "the job names its function: {job}");
            *ticks.entry(job["origin"]["tick"].as_str().unwrap().parse().unwrap()).or_default() += 1;
        }
    }
    let listed: Vec<DateTime<Utc>> = ticks.keys().copied().collect();
    assert!(ticks.values().all(|&n| n == 1), "a tick listed twice: {ticks:?}");
    assert!(listed.len() >= 8, "ticks fired: {listed:?}");
    for pair in listed.windows(2) {
        assert_eq!((pair[1] - pair[0]).num_seconds(), 2, "a tick missing between {} and {}", pair[0], pair[1]);
    }
    assert!(listed[0] < killed_at && *listed.last().unwrap() > killed_at, "ticks before and after the kill");
    // each tick's job went to the executors once
    let published: Vec<String> =
        read_topic_with(cluster.client_config(), "gitfaas.jobs").into_iter().filter_map(|(key, ..)| key).collect();
    let distinct: HashSet<&String> = published.iter().collect();
    assert_eq!(published.len(), distinct.len(), "a job published twice");
    // after the pause, no more ticks
    let paused_count = listed.len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = all_jobs(survivor, &token).await.iter().filter(|j| j["origin"]["kind"] == "schedule").count();
    assert_eq!(later, paused_count, "a paused schedule fired");
    eprintln!("triggers: {paused_count} ticks, each one job, across the failover");
}

async fn create_topics(cluster: &Cluster, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1))).collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await.unwrap() {
        result.unwrap();
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_trigger_turns_each_record_into_one_output_through_an_executor_kill() {
    const RECORDS: i64 = 100;
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    cluster.start_executor("topic-exec-1", 2);
    cluster.start_executor("topic-exec-2", 2);
    let (input, output) = (unique("trigger-in"), unique("trigger-out"));
    create_topics(&cluster, &[(&input, 2), (&output, 1)]).await;
    let port = cluster.frontend_port;
    deploy(port, &token, "doubler").await;
    let missing = json!({"function": "doubler", "topic": {"input": unique("trigger-none")}});
    let refused = put(port, &token, "/v1/triggers/missing", &missing).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "a topic that does not exist");
    let binding = json!({"function": "doubler", "topic": {"input": input, "output": output, "concurrency": 4}});
    let created = put(port, &token, "/v1/triggers/orders", &binding).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text().await.unwrap());

    let producer: FutureProducer = cluster.client_config().create().unwrap();
    let mut poison_at = None;
    for n in 0..RECORDS {
        let (key, value) = (format!("k{n}"), json!({"n": n}).to_string());
        producer.send(FutureRecord::to(&input).key(&key).payload(&value), Duration::from_secs(10)).await.unwrap();
        if n == RECORDS / 2 {
            let poison = json!({"poison": true}).to_string();
            let delivery = FutureRecord::to(&input).key("poison").payload(&poison);
            poison_at = Some(producer.send(delivery, Duration::from_secs(10)).await.unwrap());
        }
    }
    let poison_at = poison_at.unwrap();
    let (poison_partition, poison_offset) = (poison_at.partition, poison_at.offset);
    cluster.wait_running_on(&token, "topic-exec-1").await;
    cluster.kill_executor("topic-exec-1");

    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let outputs = read_topic_with(cluster.client_config(), &output);
        if outputs.len() >= RECORDS as usize {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {RECORDS} outputs", outputs.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // any duplicate would show by now
    let outputs = read_topic_with(cluster.client_config(), &output);
    let mut by_key: HashMap<String, Value> = HashMap::new();
    for (key, payload, headers) in &outputs {
        let key = key.clone().expect("the output keeps the input's key");
        let value: Value = serde_json::from_slice(payload).unwrap();
        assert!(header(headers, "gitfaas-job-id").is_some());
        assert!(by_key.insert(key.clone(), value).is_none(), "output of {key} produced twice");
    }
    assert_eq!(by_key.len(), RECORDS as usize);
    for n in 0..RECORDS {
        let value = &by_key[&format!("k{n}")];
        assert_eq!(value["double"], n * 2, "output of record {n}: {value}");
    }
    let letters: Vec<_> = read_topic_with(cluster.client_config(), "gitfaas.dead-letter")
        .into_iter()
        .filter(|(_, _, headers)| header(headers, "gitfaas-trigger") == Some("orders"))
        .collect();
    assert_eq!(letters.len(), 1, "one dead letter: {letters:?}");
    let (key, payload, headers) = &letters[0];
    assert_eq!(key.as_deref(), Some("poison"));
    assert_eq!(serde_json::from_slice::<Value>(payload).unwrap(), json!({"poison": true}));
    assert_eq!(header(headers, "gitfaas-source-topic"), Some(input.as_str()));
    assert_eq!(header(headers, "gitfaas-source-partition"), Some(poison_partition.to_string().as_str()));
    assert_eq!(header(headers, "gitfaas-source-offset"), Some(poison_offset.to_string().as_str()));
    assert!(
        header(headers, "gitfaas-error").is_some_and(|e| e.contains("raised ValueError: poison record")),
        "{headers:?}"
    );
    assert!(header(headers, "gitfaas-stderr-tail").is_some_and(|e| e.contains("poison record")), "{headers:?}");
    // one job per record, published once
    let jobs = all_jobs(port, &token).await;
    let from_topic = jobs.iter().filter(|j| j["origin"]["kind"] == "topic").count();
    assert_eq!(from_topic, RECORDS as usize + 1, "one job per record");
    let published: Vec<String> =
        read_topic_with(cluster.client_config(), "gitfaas.jobs").into_iter().filter_map(|(key, ..)| key).collect();
    assert_eq!(published.len(), published.iter().collect::<HashSet<_>>().len(), "a job published twice");
    // the frontend's beacons tell the observer the trigger's load
    let beacons = read_topic_with(cluster.client_config(), "gitfaas.observer");
    let loads: Vec<Value> = beacons
        .iter()
        .filter_map(|(_, payload, _)| serde_json::from_slice::<Value>(payload).ok())
        .filter_map(|m| m["triggers"].as_array().cloned())
        .flatten()
        .filter(|load| load["trigger"].as_str().is_some_and(|t| t.ends_with("/orders")))
        .collect();
    assert!(!loads.is_empty(), "no beacon carried the trigger's load");
    assert!(loads.iter().all(|l| l["concurrency"] == 4 && l["in_flight"].as_u64().unwrap() <= 4), "{loads:?}");
    eprintln!("triggers: {RECORDS} records, {RECORDS} outputs, 1 dead letter, through an executor kill");
}

#[tokio::test(flavor = "multi_thread")]
async fn triggers_are_checked_owned_paused_resumed_and_deleted() {
    let stack = Stack::shared();
    let client = reqwest::Client::new();
    let put = |name: &str, body: Value| {
        client.put(stack.url(&format!("/v1/triggers/{name}"))).bearer_auth(&stack.token).json(&body).send()
    };
    let function = unique("fn-trg").to_lowercase();
    deploy_on(stack, &stack.token, &function).await;

    let refused = [
        (json!({"function": function, "schedule": {"cron": "not a cron"}}), StatusCode::BAD_REQUEST),
        (
            json!({"function": function, "schedule": {"cron": "* * * * *", "timezone": "Mars/Olympus"}}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"function": function}), StatusCode::BAD_REQUEST),
        (
            json!({"function": function, "schedule": {"cron": "* * * * *"}, "topic": {"input": "a"}}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"function": "no-such-function", "schedule": {"cron": "* * * * *"}}), StatusCode::NOT_FOUND),
        // no topic is allowed unless the operator says so; gitfaas's own never
        (json!({"function": function, "topic": {"input": "orders"}}), StatusCode::FORBIDDEN),
        (json!({"function": function, "topic": {"input": stack.topics().jobs}}), StatusCode::FORBIDDEN),
        (json!({"function": function, "schedule": {"cron": "* * * * *"}, "extra": 1}), StatusCode::BAD_REQUEST),
        (json!({"function": function, "schedule": {"cron": "0 0 0 30 2 *"}}), StatusCode::BAD_REQUEST), // never fires
        (json!({"function": function, "schedule": {"cron": "* ".repeat(300)}}), StatusCode::BAD_REQUEST),
        (json!({"function": function, "topic": {"input": "bad topic/name"}}), StatusCode::BAD_REQUEST),
        (json!({"function": function, "topic": {"input": "x", "concurrency": 0}}), StatusCode::BAD_REQUEST),
    ];
    for (body, status) in refused {
        let response = put("t1", body.clone()).await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }

    let name = unique("nightly").to_lowercase();
    let schedule = json!({"function": function, "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Madrid"}});
    let created = put(&name, schedule.clone()).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let view: Value = created.json().await.unwrap();
    assert_eq!(view["enabled"], true);
    assert_eq!(view["schedule"]["missed"], "skip", "the default policy: {view}");
    let next: DateTime<Utc> = view["next_tick"].as_str().unwrap().parse().unwrap();
    let local = next.with_timezone(&chrono_tz::Europe::Madrid);
    assert_eq!(local.format("%H:%M").to_string(), "03:00", "read in its zone: {view}");
    assert_eq!(put(&name, schedule).await.unwrap().status(), StatusCode::OK, "replaced");

    let listed: Value = stack.get("/v1/triggers").await.json().await.unwrap();
    assert!(listed["triggers"].as_array().unwrap().iter().any(|t| t["name"] == name));
    let bob = Provider::shared().token("bob").await;
    let path = format!("/v1/triggers/{name}");
    assert_eq!(stack.get_as(&bob, &path).await.status(), StatusCode::NOT_FOUND, "another owner's trigger");
    let bobs: Value = stack.get_as(&bob, "/v1/triggers").await.json().await.unwrap();
    assert!(!bobs["triggers"].as_array().unwrap().iter().any(|t| t["name"] == name));

    let post = |path: String| client.post(stack.url(&path)).bearer_auth(&stack.token).send();
    let paused: Value = post(format!("{path}/pause")).await.unwrap().json().await.unwrap();
    assert_eq!(paused["enabled"], false);
    assert!(paused.get("next_tick").is_none(), "a paused schedule has no next tick: {paused}");
    let resumed: Value = post(format!("{path}/resume")).await.unwrap().json().await.unwrap();
    assert_eq!(resumed["enabled"], true);
    let deleted = client.delete(stack.url(&path)).bearer_auth(&stack.token).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(stack.get(&path).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_whose_ticks_would_nest_too_deep_is_refused_when_saved() {
    let stack = Stack::shared();
    let client = reqwest::Client::new();
    let function = unique("fn-deep").to_lowercase();
    deploy_on(stack, &stack.token, &function).await;
    let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!([inner]));
    let put = |name: String, input: Value| {
        let body = json!({"function": function, "schedule": {"cron": "0 3 * * *", "input": input}});
        client.put(stack.url(&format!("/v1/triggers/{name}"))).bearer_auth(&stack.token).json(&body).send()
    };
    // 64 levels is a valid job input, but each tick's input holds it one level down
    let refused = put(unique("deep").to_lowercase(), nested(64)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["field"], "schedule.input", "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("nested more than 64 levels"), "{problem}");
    let too_large = put(unique("large").to_lowercase(), json!("x".repeat(600 * 1024))).await.unwrap();
    assert_eq!(too_large.status(), StatusCode::BAD_REQUEST, "past the input limit once inside a tick");
    let accepted = put(unique("deep").to_lowercase(), nested(63)).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED, "{}", accepted.text().await.unwrap());
}

/// Deploys the test function as `name` for the owner of `token` on `stack`.
async fn deploy_on(stack: &Stack, token: &str, name: &str) {
    let client = reqwest::Client::new();
    let body = json!({"repo": function_repo(), "ref": "main"});
    let deployed =
        client.put(stack.url(&format!("/v1/functions/{name}"))).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(deployed.status(), StatusCode::CREATED, "{}", deployed.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_triggers_bind_only_their_owners_topics_under_a_shared_allow_list() {
    let stack = Stack::start_with(
        true,
        Box::new(|s, _| {
            s.frontend.triggers.allowed_topics = vec!["tenant-*".into()];
            s.frontend.triggers.shared_topics = vec!["feed-*".into()];
        }),
    );
    let bob = Provider::shared().token("bob").await;
    let (alice_in, alice_out) = (unique("tenant-a-in"), unique("tenant-a-out"));
    let (bob_in, feed) = (unique("tenant-b-in"), unique("feed"));
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", gitfaas_tests::infra::brokers()).create().unwrap();
    let topics: Vec<NewTopic<'_>> = [&alice_in, &alice_out, &bob_in, &feed]
        .iter()
        .map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(1)))
        .collect();
    for created in admin.create_topics(&topics, &AdminOptions::new()).await.unwrap() {
        created.unwrap();
    }
    deploy_on(&stack, &stack.token, "fa").await;
    deploy_on(&stack, &bob, "fb").await;
    let client = reqwest::Client::new();
    let bind = |token: &str, name: &str, function: &str, input: &str, output: Option<&str>| {
        let body = json!({"function": function, "topic": {"input": input, "output": output}});
        client.put(stack.url(&format!("/v1/triggers/{name}"))).bearer_auth(token).json(&body).send()
    };
    let alice = stack.token.clone();
    let own = bind(&alice, "orders", "fa", &alice_in, Some(&alice_out)).await.unwrap();
    assert_eq!(own.status(), StatusCode::CREATED, "{}", own.text().await.unwrap());

    // bob reading alice's results, or feeding alice's function, is refused
    let refused = [
        ("read-her-results", alice_out.as_str(), None),
        ("read-her-input", alice_in.as_str(), None),
        ("feed-her-function", bob_in.as_str(), Some(alice_in.as_str())),
        ("write-her-results", bob_in.as_str(), Some(alice_out.as_str())),
    ];
    for (name, input, output) in refused {
        let response = bind(&bob, name, "fb", input, output).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "bob binding {input} -> {output:?}");
        let problem: Value = response.json().await.unwrap();
        assert!(problem["type"].as_str().unwrap().ends_with("/topic-of-another-owner"), "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains("another owner"), "{problem}");
    }
    // his own topics are his, and then not alice's either
    let his = bind(&bob, "his", "fb", &bob_in, None).await.unwrap();
    assert_eq!(his.status(), StatusCode::CREATED, "{}", his.text().await.unwrap());
    assert_eq!(bind(&alice, "bobs", "fa", &bob_in, None).await.unwrap().status(), StatusCode::FORBIDDEN);
    // alice keeps hers: replacing and re-creating after a delete bind the same topics
    assert_eq!(bind(&alice, "orders", "fa", &alice_in, Some(&alice_out)).await.unwrap().status(), StatusCode::OK);
    let deleted = client.delete(stack.url("/v1/triggers/orders")).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after_delete = bind(&bob, "after", "fb", &alice_out, None).await.unwrap();
    assert_eq!(after_delete.status(), StatusCode::FORBIDDEN, "a topic stays its owner's after her trigger is gone");
    // a topic the operator shares is bound by both, and gitfaas's own by neither
    for (token, function) in [(&alice, "fa"), (&bob, "fb")] {
        let shared = bind(token, "feed", function, &feed, None).await.unwrap();
        assert_eq!(shared.status(), StatusCode::CREATED, "{}", shared.text().await.unwrap());
    }
    let internal = bind(&bob, "internal", "fb", &stack.topics().results, None).await.unwrap();
    assert_eq!(internal.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fast_schedule_is_held_to_its_owners_rate_and_its_skipped_ticks_are_counted() {
    const REQUESTS: u64 = 2;
    const WINDOW_SECS: u64 = 5;
    let stack = Stack::start_with(
        true,
        Box::new(|s, _| {
            s.frontend.rate_limit.requests = REQUESTS;
            s.frontend.rate_limit.window_secs = WINDOW_SECS;
        }),
    );
    deploy_on(&stack, &stack.token, "ticker").await;
    let client = reqwest::Client::new();
    let body = json!({"function": "ticker", "schedule": {"cron": "* * * * * *"}});
    let created = loop {
        // the deployment took this window's requests, maybe
        let response =
            client.put(stack.url("/v1/triggers/every-second")).bearer_auth(&stack.token).json(&body).send().await;
        let response = response.unwrap();
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            break response;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text().await.unwrap());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let paused = client.post(stack.url("/v1/triggers/every-second/pause")).bearer_auth(&stack.token).send().await;
    let view: Value = paused.unwrap().json().await.unwrap();
    let elapsed = started.elapsed().as_secs();

    let jobs: Value = stack.get("/v1/jobs?limit=100").await.json().await.unwrap();
    let fired = jobs["jobs"].as_array().unwrap().iter().filter(|j| j["origin"]["kind"] == "schedule").count() as u64;
    let skipped = view["skipped_ticks"].as_u64().unwrap_or_else(|| panic!("no skipped_ticks: {view}"));
    eprintln!("triggers: {elapsed} s of an every-second schedule: {fired} jobs, {skipped} ticks skipped");
    // fixed windows: at most REQUESTS jobs in each window the run touched
    let windows = elapsed / WINDOW_SECS + 2;
    assert!(fired <= REQUESTS * windows, "{fired} jobs in {elapsed} s, past {REQUESTS} per {WINDOW_SECS} s");
    assert!(fired >= 1, "the schedule made no job at all");
    let least_skipped = elapsed.saturating_sub(REQUESTS * windows);
    assert!(skipped >= least_skipped, "{skipped} ticks skipped in {elapsed} s: {view}");
    let ticks = elapsed.saturating_sub(2);
    assert!(fired + skipped >= ticks, "each tick fired or was counted: {fired} + {skipped} in {elapsed} s");
    let throttled_at: DateTime<Utc> = view["throttled_at"].as_str().unwrap().parse().unwrap();
    assert!(Utc::now() - throttled_at < chrono::Duration::seconds(15), "{view}");
}

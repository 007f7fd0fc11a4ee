//! Word count, exactly once, through faults: a topic trigger feeds sentences to a
//! function that increments a counter per word; an executor is killed with
//! `kill -9` while jobs run and the broker crashes (`kill -9`) and comes back
//! on its logs; every count ends exact (the redelivered jobs are skipped as
//! committed). The frontend restarted on a wiped Redis folds the same counts from
//! the state topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gitfaas_tests::cluster::{call, Cluster, FAST_REBALANCE};
use gitfaas_tests::{git_repo, unique, Provider};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::StatusCode;
use serde_json::{json, Value};

const WORD_COUNT: &str = r#"
import time

def main(data, credentials, ctx):
    for word in data["text"].split():
        ctx.state.incr(word)
    time.sleep(0.2)  # long enough for the kill to find jobs running
    return {"words": len(data["text"].split())}
"#;

const VOCABULARY: [&str; 7] = ["the", "cat", "sat", "on", "a", "mat", "again"];

fn sentence(n: usize) -> String {
    (0..(3 + n % 5)).map(|i| VOCABULARY[(n * 7 + i * 3) % VOCABULARY.len()]).collect::<Vec<_>>().join(" ")
}

async fn counts(cluster: &Cluster, token: &str) -> Option<BTreeMap<String, i64>> {
    let client = reqwest::Client::new();
    let response = call(|| client.get(cluster.url("/v1/functions/wordcount/state")).bearer_auth(token)).await;
    if response.status() != StatusCode::OK {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["keys"].as_object().map(|keys| keys.iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(-1))).collect())
}

async fn wait_for(cluster: &Cluster, token: &str, expected: &BTreeMap<String, i64>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen = counts(cluster, token).await;
        if seen.as_ref() == Some(expected) {
            return;
        }
        if let Some(seen) = &seen {
            for (word, count) in seen {
                assert!(count <= &expected[word], "{word} counted {count} times, past {}: {seen:?}", expected[word]);
            }
        }
        assert!(Instant::now() < deadline, "counts never became {expected:?}; last {seen:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn word_counts_are_exact_through_an_executor_kill_a_broker_crash_and_a_redis_wipe() {
    const RECORDS: usize = 60;
    let mut cluster = Cluster::start(&FAST_REBALANCE);
    let token = Provider::shared().token("alice").await;
    cluster.wait_ready().await;
    cluster.start_executor("wc-exec-1", 2);
    cluster.start_executor("wc-exec-2", 2);
    let input = unique("trigger-words");
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let topic = NewTopic::new(&input, 2, TopicReplication::Fixed(1));
    admin.create_topics(&[topic], &AdminOptions::new()).await.unwrap()[0].as_ref().unwrap();

    let client = reqwest::Client::new();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", WORD_COUNT)]);
    let deployed = call(|| {
        let body = json!({"repo": repo, "ref": "main"});
        client.put(cluster.url("/v1/functions/wordcount")).bearer_auth(&token).json(&body)
    })
    .await;
    assert_eq!(deployed.status(), StatusCode::CREATED);
    let binding = json!({"function": "wordcount", "topic": {"input": input, "concurrency": 4}});
    let bound = call(|| client.put(cluster.url("/v1/triggers/words")).bearer_auth(&token).json(&binding)).await;
    assert_eq!(bound.status(), StatusCode::CREATED, "{}", bound.text().await.unwrap());

    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let producer: FutureProducer = cluster.client_config().create().unwrap();
    let produce = |n: usize| {
        let (key, value) = (format!("s{n}"), json!({"text": sentence(n)}).to_string());
        let producer = producer.clone();
        let input = input.clone();
        async move {
            let record = FutureRecord::to(&input).key(&key).payload(&value);
            producer.send(record, Duration::from_secs(30)).await.unwrap();
        }
    };
    for n in 0..RECORDS {
        for word in sentence(n).split_whitespace() {
            *expected.entry(word.to_owned()).or_default() += 1;
        }
    }
    for n in 0..RECORDS {
        produce(n).await;
    }
    cluster.wait_running_on(&token, "wc-exec-1").await;
    cluster.kill_executor("wc-exec-1"); // kill -9 while its jobs run
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart_broker(); // while the other executor's transactions are under way
    wait_for(&cluster, &token, &expected, Duration::from_secs(300)).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a second commit of a job would show by now
    assert_eq!(counts(&cluster, &token).await.as_ref(), Some(&expected), "exact, and no job counted twice");

    // the view is the topic's: a new frontend on an empty Redis reads the same counts
    cluster.wipe_redis();
    cluster.restart_frontend();
    cluster.wait_ready().await;
    wait_for(&cluster, &token, &expected, Duration::from_secs(60)).await;
    let total: i64 = expected.values().sum();
    eprintln!("word count: {RECORDS} sentences, {total} words, exact through an executor and a broker kill -9 and a Redis wipe");
}

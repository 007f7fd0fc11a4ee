//! The executor's transactional producer on the real broker: concurrent commits
//! are grouped into few transactions and each commit's records are visible to a
//! committed reader exactly once; a commit whose record cannot be produced fails
//! alone, without failing the commits grouped with it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use gitfaas_common::kafka::{Outgoing, Transactor};
use gitfaas_tests::{infra, kafka_settings, unique};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message};

async fn topic() -> String {
    let name = unique("txn");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", infra::brokers()).create().unwrap();
    let new = NewTopic::new(&name, 1, TopicReplication::Fixed(1));
    admin.create_topics(&[new], &AdminOptions::new()).await.unwrap()[0].as_ref().unwrap();
    name
}

fn record(topic: &str, key: &str, size: usize) -> Outgoing {
    Outgoing { topic: topic.into(), key: Some(key.into()), payload: vec![b'x'; size], headers: Vec::new() }
}

/// What a committed reader finds on `topic` (key → times seen), and the
/// partition's end offset: records plus one marker per transaction.
fn committed(topic: &str) -> (BTreeMap<String, usize>, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", infra::brokers())
        .set("group.id", unique("txn-reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the committed reader never reached the end: {seen:?}");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let key = String::from_utf8_lossy(message.key().unwrap()).into_owned();
                *seen.entry(key).or_default() += 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    let (_, end) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)).unwrap();
    (seen, end)
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_commits_share_transactions_and_each_record_is_committed_once() {
    let topic = topic().await;
    let transactor = Transactor::new(&kafka_settings(&unique("txn")), &unique("gitfaas-test-txn"));
    let commits: Vec<Vec<Outgoing>> = (0..40)
        .map(|i| vec![record(&topic, &format!("c{i}-a"), 100), record(&topic, &format!("c{i}-b"), 100)])
        .collect();
    let outcomes = join_all(commits.iter().map(|records| transactor.commit(records))).await;
    assert!(
        outcomes.iter().all(Result::is_ok),
        "{:?}",
        outcomes.iter().filter_map(|o| o.as_ref().err()).collect::<Vec<_>>()
    );

    let (seen, end) = committed(&topic);
    assert_eq!(seen.len(), 80, "every record of every commit: {seen:?}");
    assert!(seen.values().all(|&n| n == 1), "each once: {seen:?}");
    let transactions = end - 80;
    assert!((1..=5).contains(&transactions), "40 concurrent commits took {transactions} transactions");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_with_a_record_the_broker_refuses_fails_alone() {
    let topic = topic().await;
    let transactor = Transactor::new(&kafka_settings(&unique("txn")), &unique("gitfaas-test-txn"));
    let good: Vec<Vec<Outgoing>> = (0..6).map(|i| vec![record(&topic, &format!("good{i}"), 100)]).collect();
    // past the client's message.max.bytes (1 MB): this record is never produced
    let bad = vec![record(&topic, "bad-small", 100), record(&topic, "bad-huge", 2 << 20)];
    let (outcomes, refused) =
        tokio::join!(join_all(good.iter().map(|records| transactor.commit(records))), transactor.commit(&bad));
    assert!(outcomes.iter().all(Result::is_ok), "the good commits: {outcomes:?}");
    let refused = refused.expect_err("the commit with the huge record");
    assert!(
        matches!(&refused, gitfaas_common::kafka::PublishError::Broker(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge)),
        "{refused:?}"
    );

    let (seen, _) = committed(&topic);
    let expected: BTreeMap<String, usize> = (0..6).map(|i| (format!("good{i}"), 1)).collect();
    assert_eq!(seen, expected, "the good commits once each, nothing of the refused one");
}

//! Creating gitfaas's topics, idempotently, and waiting until they are served.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::message::Topic;
use crate::settings::KafkaSettings;

/// Creates every configured topic that does not exist yet and waits until each
/// partition of each has a leader, retrying for about a minute while the broker is
/// starting. (Kafka answers a creation before the new partitions have elected their
/// leaders; a reader that asks for offsets or watermarks in between is refused with
/// `NotLeaderForPartition`.)
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let mut attempt = 0;
    loop {
        let ready = match create_topics(settings).await {
            Ok(()) => wait_for_leaders(settings).await,
            Err(error) => Err(error),
        };
        match ready {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 12 => {
                attempt += 1;
                tracing::warn!(%error, attempt, "kafka not ready for topic creation; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Polls the topics' metadata until every partition has a leader that answers for
/// it (about 15 s at most).
async fn wait_for_leaders(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let client: BaseConsumer = super::client_config(settings).create()?;
    let client = Arc::new(client);
    let topics: Vec<String> = settings.topics.all().into_iter().map(str::to_owned).collect();
    for _ in 0..150 {
        let (client, topics) = (client.clone(), topics.clone());
        let led = tokio::task::spawn_blocking(move || all_led(&client, &topics)).await.expect("metadata task");
        if led? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(KafkaError::AdminOp(RDKafkaErrorCode::LeaderNotAvailable))
}

/// Whether every partition of `topics` has a leader that serves its offsets.
fn all_led(client: &BaseConsumer, topics: &[String]) -> Result<bool, KafkaError> {
    for topic in topics {
        let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let Some(found) = metadata.topics().first() else { return Ok(false) };
        if found.error().is_some()
            || found.partitions().is_empty()
            || found.partitions().iter().any(|p| p.leader() < 0 || p.error().is_some())
        {
            return Ok(false);
        }
        // the metadata names a leader a moment before that broker serves the
        // partition: ask it for the offsets, as every reader will
        for partition in found.partitions() {
            if client.fetch_watermarks(topic, partition.id(), Duration::from_secs(5)).is_err() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

async fn create_topics(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = super::client_config(settings).create()?;
    let topics: Vec<NewTopic<'_>> = Topic::ALL
        .into_iter()
        .map(|topic| {
            let name = settings.topics.name(topic);
            // -1: the broker's default.replication.factor (1 on one node, 3 on a cluster that says so)
            let new = NewTopic::new(name, topic.partitions(settings.partitions), TopicReplication::Fixed(-1));
            if topic.is_compacted() {
                new.set("cleanup.policy", "compact")
            } else if topic == Topic::State {
                new.set("retention.ms", "-1") // every state view is folded from it
            } else {
                new
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(%topic, ?code, "topic creation failed");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}

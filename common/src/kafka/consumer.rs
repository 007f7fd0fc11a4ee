//! Reading gitfaas's topics: consumers built per [`Role`] (each role's client
//! settings live here, once), partitions assigned from a [`Start`] with the
//! [`CatchUp`] that says when a reader has read what was there, and the one receive
//! loop ([`Inbox::next`]).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, DefaultConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::metrics::STATISTICS_INTERVAL_MS;
use crate::settings::KafkaSettings;

/// What a consumer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Shares its topics' partitions with its group, each message handled once:
    /// the reader marks a message [`Inbox::done`] once handled, and what is marked
    /// is committed in the background (and at [`Inbox::close`]); a new group starts
    /// at the earliest offset. A waiting fetch is held at most 100 ms (500 ms by
    /// default), which bounds how long a partition resumed after a pause waits to
    /// be fetched again.
    Worker,
    /// Reads from the earliest offset (a view rebuilt from its topic, the observer's
    /// window, a trigger's input); commits nothing but what the reader commits.
    Replay,
    /// Reads what is published from now on; commits nothing.
    Broadcast,
}

/// A consumer's client settings: the shared ones ([`super::client_config`]), the
/// role's, and what a reader adds ([`Self::with_lag_statistics`] …).
pub struct ConsumerBuilder {
    config: ClientConfig,
    classic_protocol: bool,
}

impl ConsumerBuilder {
    /// A consumer in `group` for `role`. The operator's pass-through map may tune
    /// the role's fetch, but not what the role's correctness rests on (commits,
    /// where a new group starts, the group).
    pub fn new(settings: &KafkaSettings, role: Role, group: &str) -> Self {
        let tuning: &[(&str, &str)] = match role {
            Role::Worker => &[("fetch.wait.max.ms", "100")],
            Role::Replay | Role::Broadcast => &[],
        };
        let mut config = super::with_defaults(settings, tuning);
        let (auto_commit, reset) = match role {
            Role::Worker => ("true", "earliest"),
            Role::Replay => ("false", "earliest"),
            Role::Broadcast => ("false", "latest"),
        };
        config.set("group.id", group).set("enable.auto.commit", auto_commit).set("auto.offset.reset", reset);
        if role == Role::Worker {
            // offsets are stored by the reader once a message is handled, never on receipt
            config.set("enable.auto.offset.store", "false");
        }
        let classic_protocol = settings.client.get("group.protocol").is_none_or(|p| p.as_str() == "classic");
        Self { config, classic_protocol }
    }

    /// Emits librdkafka statistics for a [`crate::metrics::LagContext`].
    pub fn with_lag_statistics(mut self) -> Self {
        self.config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        self
    }

    /// Sees only committed transactions' messages (librdkafka's default, set so
    /// that no pass-through map undoes it) and is told each partition's end.
    pub fn reading_committed_to_the_end(mut self) -> Self {
        self.config.set("isolation.level", "read_committed").set("enable.partition.eof", "true");
        self
    }

    /// Names the client (the broker's logs, the group's members).
    pub fn client_id(mut self, id: &str) -> Self {
        self.config.set("client.id", id);
        self
    }

    /// Under the classic group protocol (the default), partitions move one by one
    /// (cooperative-sticky) and a member learns of a rebalance within a second, so
    /// a revoked partition's work starts finishing at once. (With KIP-848's
    /// `group.protocol: consumer` in the pass-through map the broker does both.)
    pub fn rebalancing_promptly(mut self) -> Self {
        if self.classic_protocol {
            self.config.set("partition.assignment.strategy", "cooperative-sticky").set("heartbeat.interval.ms", "1000");
        }
        self
    }

    /// A member that died loses its partitions within 6 s (the broker's minimum
    /// session), for a group whose one member owns a duty.
    pub fn failing_over_fast(mut self) -> Self {
        self.config.set("session.timeout.ms", "6000").set("heartbeat.interval.ms", "1000");
        self
    }

    pub fn create(self) -> Result<StreamConsumer, KafkaError> {
        self.config.create()
    }

    pub fn create_with<C: ConsumerContext + 'static>(self, context: C) -> Result<StreamConsumer<C>, KafkaError> {
        self.config.create_with_context(context)
    }
}

/// `error` only says the brokers could not be reached for a while: librdkafka
/// reconnects by itself and queues one such error per failed attempt, so a reader
/// that slept on each would wake up long after the brokers came back.
pub fn brokers_out_of_reach(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
        )
    )
}

/// A consumer and the one way its reader waits for messages.
pub struct Inbox<C: ConsumerContext + 'static = DefaultConsumerContext> {
    consumer: StreamConsumer<C>,
    /// What it reads, for its log lines.
    label: String,
}

impl<C: ConsumerContext + 'static> Inbox<C> {
    pub fn new(consumer: StreamConsumer<C>, label: impl Into<String>) -> Self {
        Self { consumer, label: label.into() }
    }

    /// The next message, or `None` once `shutdown` is cancelled. A receive error
    /// is logged; one that is not the brokers being out of reach (which the
    /// client mends itself) is retried after half a second.
    pub async fn next(&self, shutdown: &CancellationToken) -> Option<BorrowedMessage<'_>> {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                received = self.consumer.recv() => match received {
                    Ok(message) => return Some(message),
                    Err(error) if brokers_out_of_reach(&error) => {
                        tracing::debug!(%error, topic = %self.label, "receive error");
                    }
                    Err(error) => {
                        tracing::warn!(%error, topic = %self.label, "receive error");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
        }
    }

    /// Marks `message` handled: a [`Role::Worker`]'s offset to commit.
    pub fn done(&self, message: &BorrowedMessage<'_>) {
        if let Err(error) = self.consumer.store_offset_from_message(message) {
            tracing::debug!(%error, topic = %self.label, "offset not stored");
        }
    }

    /// Commits what was marked handled, at the end of a [`Role::Worker`]'s reading.
    pub fn close(self) {
        if let Err(error) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(%error, topic = %self.label, "final commit");
        }
    }
}

/// Where a reader starts in each partition of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Beginning,
    End,
    /// At the first message at or after this time (from the beginning when the
    /// broker cannot look offsets up by time).
    Since(DateTime<Utc>),
}

/// A consumer's client context for which a partition's end is news, not an
/// error (readers [`ConsumerBuilder::reading_committed_to_the_end`]).
pub struct EndsExpected;

impl rdkafka::ClientContext for EndsExpected {
    fn error(&self, error: KafkaError, reason: &str) {
        let end = matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF));
        if !end {
            tracing::error!(%error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for EndsExpected {}

/// Where each assigned partition ended when it was assigned: once a reader has
/// read up to every one, it has read what was there.
#[derive(Debug, Default)]
pub struct CatchUp {
    ends: HashMap<(String, i32), i64>,
}

impl CatchUp {
    /// Whether every partition has been read up to its end.
    pub fn is_done(&self) -> bool {
        self.ends.is_empty()
    }

    /// Partitions not read up to their end yet.
    pub fn remaining(&self) -> usize {
        self.ends.len()
    }

    /// Whether `message` was there when its partition was assigned (and is not
    /// read yet).
    pub fn is_before_end(&self, message: &BorrowedMessage<'_>) -> bool {
        self.ends.get(&(message.topic().to_owned(), message.partition())).is_some_and(|&end| message.offset() < end)
    }

    /// Counts `partition` of `topic` read to its end (the consumer's end-of-partition
    /// event, [`ConsumerBuilder::reading_committed_to_the_end`]): a partition whose
    /// last records are a transaction's markers ends past its last message.
    pub fn reached_end(&mut self, topic: &str, partition: i32) -> bool {
        self.ends.remove(&(topic.to_owned(), partition));
        self.ends.is_empty()
    }

    /// Counts `message` read; true when it was the last one to catch up on.
    pub fn advance(&mut self, message: &BorrowedMessage<'_>) -> bool {
        let key = (message.topic().to_owned(), message.partition());
        if self.ends.get(&key).is_some_and(|&end| message.offset() + 1 >= end) {
            self.ends.remove(&key);
            return self.ends.is_empty();
        }
        false
    }
}

const ASSIGN_TIMEOUT: Duration = Duration::from_secs(10);

/// Assigns `consumer` every partition of each topic from its [`Start`], and says
/// where each ended at this moment. Blocking (metadata and offset look-ups).
pub fn assign_all<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topics: &[(&str, Start)],
) -> Result<CatchUp, KafkaError> {
    let mut assignment = TopicPartitionList::new();
    let mut catch_up = CatchUp::default();
    for &(topic, start) in topics {
        let metadata = consumer.fetch_metadata(Some(topic), ASSIGN_TIMEOUT)?;
        let partitions: Vec<i32> =
            metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        if partitions.is_empty() {
            return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition));
        }
        let since = match start {
            Start::Since(since) => offsets_since(consumer, topic, &partitions, since),
            Start::Beginning | Start::End => None,
        };
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(topic, partition, ASSIGN_TIMEOUT)?;
            let from = match (start, since.as_ref().map(|found| found.get(&partition).copied())) {
                (Start::End, _) => high,
                (Start::Since(_), Some(Some(Some(offset)))) => offset.clamp(low, high),
                (Start::Since(_), Some(Some(None))) => high, // nothing at or after that time
                _ => low,
            };
            if from < high {
                catch_up.ends.insert((topic.to_owned(), partition), high);
            }
            assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
        }
    }
    consumer.assign(&assignment)?;
    Ok(catch_up)
}

/// The first offset at or after `since` per partition (none: there is no such
/// message); none at all when the broker cannot look offsets up by time.
fn offsets_since<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    partitions: &[i32],
    since: DateTime<Utc>,
) -> Option<HashMap<i32, Option<i64>>> {
    let mut query = TopicPartitionList::new();
    for &partition in partitions {
        query.add_partition_offset(topic, partition, Offset::Offset(since.timestamp_millis().max(0))).ok()?;
    }
    let found = match consumer.offsets_for_times(query, ASSIGN_TIMEOUT) {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%topic, %error, "broker cannot look up offsets by time; reading from the beginning");
            return None;
        }
    };
    let mut starts = HashMap::new();
    for element in found.elements() {
        let offset = match element.offset() {
            Offset::Offset(offset) => Some(offset),
            Offset::Beginning => Some(0), // clamped to the partition's first offset
            Offset::End => None,
            _ => return None,
        };
        starts.insert(element.partition(), offset);
    }
    Some(starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreachable_brokers_count_as_out_of_reach() {
        let down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        let transport = KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(brokers_out_of_reach(&down) && brokers_out_of_reach(&transport));
        let deleted = KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition);
        let denied = KafkaError::MessageConsumption(RDKafkaErrorCode::TopicAuthorizationFailed);
        assert!(!brokers_out_of_reach(&deleted) && !brokers_out_of_reach(&denied));
    }
}

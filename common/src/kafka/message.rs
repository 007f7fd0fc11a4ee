//! What travels on gitfaas's own topics: each message type names its [`Topic`],
//! its key and its envelope version, and every reader decodes it the one way
//! ([`decode`]). A new topic is a [`Topic`] variant and a [`Message`] impl.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::schema::{DecodeError, SCHEMA_VERSION};
use crate::settings::TopicSettings;

/// The topics gitfaas publishes its own messages to; their names are configured
/// in [`TopicSettings`] ([`TopicSettings::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Jobs to run, keyed by job id (the executors' group shares them).
    Jobs,
    /// Jobs' `started` events and terminal results, keyed by job id.
    Results,
    /// Heartbeats, beacons, parameters, reports and scaler events.
    Observer,
    /// Requests to every executor (cancels), keyed by job id.
    Control,
    /// Messages that could not be read, as they were, with the reason in a header.
    DeadLetter,
    /// Named functions' definitions: compacted, one key per function.
    Functions,
    /// Live log chunks of running jobs, keyed by job id.
    Logs,
    /// Triggers' definitions: compacted, one key per trigger, one partition.
    Triggers,
    /// Jobs an executor without container runtimes handed over (see the executor's `handover`).
    JobsContainers,
    /// Jobs an executor without the wasm runtime handed over.
    JobsWasm,
    /// Named functions' state commits, keyed by function (see [`crate::state`]); kept forever.
    State,
}

impl Topic {
    pub const ALL: [Topic; 11] = [
        Topic::Jobs,
        Topic::Results,
        Topic::Observer,
        Topic::Control,
        Topic::DeadLetter,
        Topic::Functions,
        Topic::Logs,
        Topic::Triggers,
        Topic::JobsContainers,
        Topic::JobsWasm,
        Topic::State,
    ];

    /// Whether the topic keeps each key's latest message only (a definition's
    /// latest state is its truth; a tombstone deletes it).
    pub fn is_compacted(self) -> bool {
        matches!(self, Topic::Functions | Topic::Triggers)
    }

    /// Partitions the topic is created with, `default` unless it needs one: the
    /// triggers topic's one partition has one owner in the frontends' group, the
    /// scheduler.
    pub fn partitions(self, default: i32) -> i32 {
        if self == Topic::Triggers {
            1
        } else {
            default
        }
    }
}

impl TopicSettings {
    /// The configured name of `topic`.
    pub fn name(&self, topic: Topic) -> &str {
        match topic {
            Topic::Jobs => &self.jobs,
            Topic::Results => &self.results,
            Topic::Observer => &self.observer,
            Topic::Control => &self.control,
            Topic::DeadLetter => &self.dead_letter,
            Topic::Functions => &self.functions,
            Topic::Logs => &self.logs,
            Topic::Triggers => &self.triggers,
            Topic::JobsContainers => &self.jobs_containers,
            Topic::JobsWasm => &self.jobs_wasm,
            Topic::State => &self.state,
        }
    }
}

/// A message of one of gitfaas's topics, as versioned JSON.
pub trait Message: Serialize + DeserializeOwned + Send + Sync {
    /// The topic it is published to.
    const TOPIC: Topic;

    /// The key it is published under (what orders it, or what it compacts to).
    fn key(&self) -> String;

    /// The schema version the message was written with.
    fn version(&self) -> u32;
}

/// Reads a message of type `M`: JSON of its schema, of the version this build
/// reads (a message of another version is refused, never guessed at).
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, DecodeError> {
    let message: M = serde_json::from_slice(bytes)?;
    match message.version() {
        SCHEMA_VERSION => Ok(message),
        found => Err(DecodeError::Version { found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_its_own_configured_name() {
        let topics = TopicSettings::prefixed("t-");
        let names: std::collections::HashSet<&str> = Topic::ALL.iter().map(|&t| topics.name(t)).collect();
        assert_eq!(names.len(), Topic::ALL.len());
        assert_eq!(topics.name(Topic::DeadLetter), "t-dead-letter");
        assert_eq!(Topic::ALL.iter().filter(|t| t.is_compacted()).count(), 2);
        assert_eq!(topics.name(Topic::State), "t-state");
        assert_eq!(Topic::Triggers.partitions(4), 1);
        assert_eq!(Topic::Jobs.partitions(4), 4);
    }

    #[test]
    fn a_message_of_another_version_is_refused_by_the_one_decode() {
        let job = serde_json::json!({
            "kind": "cancel", "version": 2, "job_id": crate::JobId::new(),
            "owner": "u", "requested_at": "2026-01-01T00:00:00Z", "result_published": false
        });
        let error = decode::<crate::control::ControlMessage>(job.to_string().as_bytes()).unwrap_err();
        assert!(matches!(error, DecodeError::Version { found: 2 }), "{error}");
        assert!(matches!(decode::<crate::control::ControlMessage>(b"{"), Err(DecodeError::Json(_))));
    }
}

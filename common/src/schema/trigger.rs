//! Triggers: what makes jobs of a named function without anyone submitting them
//! — a schedule's ticks, or the records of a Kafka topic. (Invoking a function by
//! name is its HTTP trigger.) Their source of truth is a compacted one-partition
//! topic holding one message per trigger, keyed by owner and name, and a
//! tombstone once it is deleted; the one partition also elects the scheduler.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Owner, SCHEMA_VERSION};
use crate::kafka::{Message, Topic};

/// The most records of one topic trigger in flight at once.
pub const MAX_TOPIC_CONCURRENCY: u32 = 64;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    #[serde(rename = "schema_version")]
    pub schema: u32,
    pub owner: Owner,
    pub name: String,
    /// The owner's function the trigger invokes (its current version at each job).
    pub function: String,
    /// A paused trigger makes no jobs; resumed, it goes on from then (ticks of the
    /// pause are never caught up).
    pub enabled: bool,
    #[serde(flatten)]
    pub source: TriggerSource,
    pub created_at: DateTime<Utc>,
    /// The last change (of any kind): a schedule fires only ticks after it.
    pub updated_at: DateTime<Utc>,
}

/// What fires the trigger.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerSource {
    Schedule(Schedule),
    Topic(TopicBinding),
}

/// A cron schedule: each tick makes one job.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Five fields (minute hour day-of-month month day-of-week) or six, with seconds first.
    pub cron: String,
    /// IANA time zone the expression is read in (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// Ticks missed while no scheduler ran.
    #[serde(default)]
    pub missed: MissedTicks,
    /// The input of every tick's job (the job also gets the tick's time).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub input: serde_json::Value,
}

fn utc() -> String {
    "UTC".into()
}

/// `skip` (the default): a tick that was due more than a moment ago is dropped;
/// `catch_up`: every missed tick still makes its job (at most
/// [`MAX_CATCH_UP_TICKS`] of them).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedTicks {
    #[default]
    Skip,
    CatchUp,
}

/// The most missed ticks a `catch_up` schedule makes up for.
pub const MAX_CATCH_UP_TICKS: usize = 1000;

/// A function bound to a Kafka topic: each record a job with the record as input.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicBinding {
    /// The input topic (one the operator allows).
    pub input: String,
    /// Where a succeeded job's output goes, with the input record's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Records in flight at once, per frontend (1 to 64, default 4).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
}

fn default_concurrency() -> u32 {
    4
}

impl TriggerState {
    /// The compacted topic's key of `name` of `subject` ([`super::owned_key`]).
    pub fn key_of(subject: &str, name: &str) -> String {
        super::owned_key(subject, name)
    }

    pub fn new(owner: Owner, name: &str, function: &str, source: TriggerSource, previous: Option<&Self>) -> Self {
        let now = Utc::now();
        Self {
            schema: SCHEMA_VERSION,
            owner,
            name: name.to_owned(),
            function: function.to_owned(),
            enabled: true,
            source,
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
        }
    }
}

impl Message for TriggerState {
    const TOPIC: Topic = Topic::Triggers;

    fn key(&self) -> String {
        Self::key_of(&self.owner.subject, &self.name)
    }

    fn version(&self) -> u32 {
        self.schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_round_trips_with_its_source_flattened() {
        let owner = Owner { subject: "alice".into(), name: None };
        let schedule = Schedule {
            cron: "*/5 * * * * *".into(),
            timezone: "Europe/Madrid".into(),
            missed: MissedTicks::CatchUp,
            input: serde_json::json!({"a": 1}),
        };
        let state = TriggerState::new(owner, "tick", "fn", TriggerSource::Schedule(schedule), None);
        let json: serde_json::Value = serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
        assert_eq!(json["schedule"]["missed"], "catch_up");
        assert_eq!(crate::kafka::decode::<TriggerState>(&serde_json::to_vec(&state).unwrap()).unwrap(), state);
        let topic: TopicBinding = serde_json::from_str(r#"{"input": "in"}"#).unwrap();
        assert_eq!(topic.concurrency, 4);
    }
}

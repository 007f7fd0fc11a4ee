//! Where a job came from when no one submitted it by hand: a trigger's tick or
//! record, or a pipeline's step. Each of these names the job's id too
//! ([`JobOrigin::job_id`]): the same tick, record or step always makes the same
//! id, so a second scheduler, a redelivered record or a replayed step finds the
//! job already there instead of making another.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::JobId;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobOrigin {
    /// One tick of a schedule trigger.
    Schedule { trigger: String, tick: DateTime<Utc> },
    /// One record of a topic trigger's input topic.
    Topic {
        trigger: String,
        topic: String,
        partition: i32,
        offset: i64,
        /// The record's key (base64), which the output record gets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// Where a succeeded job's output goes, if anywhere.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
}

impl JobOrigin {
    /// The id of the job this origin makes, the same every time for the same
    /// owner, trigger and tick or record.
    pub fn job_id(&self, subject: &str) -> JobId {
        match self {
            JobOrigin::Schedule { trigger, tick } => {
                JobId::derived(&["schedule", subject, trigger, &tick.timestamp_millis().to_string()])
            }
            JobOrigin::Topic { trigger, topic, partition, offset, .. } => {
                JobId::derived(&["topic", subject, trigger, topic, &partition.to_string(), &offset.to_string()])
            }
        }
    }

    pub fn trigger(&self) -> &str {
        match self {
            JobOrigin::Schedule { trigger, .. } | JobOrigin::Topic { trigger, .. } => trigger,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tick_or_record_makes_the_same_id_and_another_one_another() {
        let tick = "2026-12-01T10:00:00Z".parse().unwrap();
        let a = JobOrigin::Schedule { trigger: "nightly".into(), tick };
        assert_eq!(a.job_id("alice"), a.job_id("alice"));
        assert_ne!(a.job_id("alice"), a.job_id("bob"));
        let later = JobOrigin::Schedule { trigger: "nightly".into(), tick: tick + chrono::Duration::seconds(1) };
        assert_ne!(a.job_id("alice"), later.job_id("alice"));
        let record = |offset| JobOrigin::Topic {
            trigger: "t".into(),
            topic: "in".into(),
            partition: 0,
            offset,
            key: None,
            output: None,
        };
        assert_eq!(record(7).job_id("alice"), record(7).job_id("alice"));
        assert_ne!(record(7).job_id("alice"), record(8).job_id("alice"));
    }
}

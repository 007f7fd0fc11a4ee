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
        /// The record's timestamp (ms since the epoch), where its job's id sorts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record_ms: Option<i64>,
    },
    /// One step of a pipeline run: the run, which step (from 0), and the
    /// functions of all its steps in order, so that the run can be told from its
    /// jobs alone.
    Pipeline {
        run: String,
        step: u32,
        steps: Vec<String>,
        /// The version of each step's function when the run started: every step
        /// runs that one, whatever is deployed meanwhile.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        versions: Vec<u32>,
    },
}

/// The most steps a pipeline may have.
pub const MAX_PIPELINE_STEPS: usize = 16;

impl JobOrigin {
    /// The id of the job this origin makes, the same every time for the same
    /// owner, trigger and tick or record — made at the tick's time, or the
    /// record's, so that job lists (newest first by id) show it there.
    pub fn job_id(&self, subject: &str) -> JobId {
        match self {
            JobOrigin::Schedule { trigger, tick } => {
                let at = tick.timestamp_millis();
                JobId::derived_at(at.max(0) as u64, &["schedule", subject, trigger, &at.to_string()])
            }
            JobOrigin::Topic { trigger, topic, partition, offset, record_ms, .. } => {
                let parts = ["topic", subject, trigger, topic, &partition.to_string(), &offset.to_string()];
                match record_ms.filter(|ms| *ms >= 0) {
                    Some(ms) => JobId::derived_at(ms as u64, &parts),
                    None => JobId::derived(&parts),
                }
            }
            JobOrigin::Pipeline { run, step, .. } => Self::pipeline_step_id(subject, run, *step),
        }
    }

    /// The id of step `step` of the pipeline run `run` of `subject`: known before
    /// the step's job is made, so a run is read (and cancelled) from its jobs.
    /// Made at the run's start plus `step` ms, so that job lists (newest first by
    /// id) show the steps where the run began, in order.
    pub fn pipeline_step_id(subject: &str, run: &str, step: u32) -> JobId {
        let parts = ["pipeline", subject, run, &step.to_string()];
        match run.parse::<JobId>().ok().and_then(|run| run.created_ms()) {
            Some(started) => JobId::derived_at(started + u64::from(step), &parts),
            None => JobId::derived(&parts),
        }
    }

    /// The trigger that made the job (none for a pipeline's step).
    pub fn trigger(&self) -> Option<&str> {
        match self {
            JobOrigin::Schedule { trigger, .. } | JobOrigin::Topic { trigger, .. } => Some(trigger),
            JobOrigin::Pipeline { .. } => None,
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
            record_ms: Some(1_700_000_000_000),
        };
        assert_eq!(record(7).job_id("alice"), record(7).job_id("alice"));
        assert_ne!(record(7).job_id("alice"), record(8).job_id("alice"));
        // ids sort where their tick or record is
        assert_eq!(a.job_id("alice").created_ms(), Some(tick.timestamp_millis() as u64));
        assert!(a.job_id("alice") < later.job_id("alice"));
        assert_eq!(record(7).job_id("alice").created_ms(), Some(1_700_000_000_000));
    }

    #[test]
    fn a_pipeline_step_names_its_id_by_owner_run_and_step() {
        let step = |run: &str, step| JobOrigin::Pipeline {
            run: run.into(),
            step,
            steps: vec!["a".into(), "b".into()],
            versions: Vec::new(),
        };
        assert_eq!(step("r1", 1).job_id("alice"), step("r1", 1).job_id("alice"));
        assert_eq!(step("r1", 1).job_id("alice"), JobOrigin::pipeline_step_id("alice", "r1", 1));
        assert_ne!(step("r1", 1).job_id("alice"), step("r1", 0).job_id("alice"));
        assert_ne!(step("r1", 1).job_id("alice"), step("r2", 1).job_id("alice"));
        assert_ne!(step("r1", 1).job_id("alice"), step("r1", 1).job_id("bob"), "another owner's run is another");
        let json = serde_json::to_value(step("r1", 1)).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "pipeline", "run": "r1", "step": 1, "steps": ["a", "b"]}));
        assert_eq!(step("r1", 0).trigger(), None);
        let run = JobId::new();
        let (first, second) = (step(&run.to_string(), 0).job_id("alice"), step(&run.to_string(), 1).job_id("alice"));
        assert_eq!(first.created_ms(), run.created_ms(), "a run's steps sort where it began");
        assert!(first < second, "in order");
    }
}

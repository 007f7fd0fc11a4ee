//! The executors' control traffic, on the control topic, as versioned JSON tagged
//! by `kind`:
//!
//! - `cancel` ([`CancelRequest`]): the owner (or an operator) asked to stop a job;
//!   published by the frontend keyed by job id, read by every executor, which
//!   reads the recent ones back when it starts.
//!
//! The observer's own traffic (heartbeats, reports, parameters, scaler events)
//! stays on the observer topic (`crate::observer`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::kafka::{Message, Topic};
use crate::schema::SCHEMA_VERSION;
use crate::JobId;

/// An owner's request to cancel a job. Every executor follows these: a job not
/// started yet ends `cancelled` without running, a running one is killed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub version: u32,
    pub job_id: JobId,
    /// Subject of the job's owner (the only one who may cancel it).
    pub owner: String,
    pub requested_at: DateTime<Utc>,
    /// The frontend saw the job still queued and published its `cancelled` result
    /// itself: executors publish none, they only make sure it does not run.
    pub result_published: bool,
}

impl CancelRequest {
    /// A request made now by `owner`'s side for `job_id`.
    pub fn new(job_id: JobId, owner: impl Into<String>, result_published: bool) -> Self {
        Self { version: SCHEMA_VERSION, job_id, owner: owner.into(), requested_at: Utc::now(), result_published }
    }
}

/// A message on the control topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlMessage {
    Cancel(CancelRequest),
}

impl Message for ControlMessage {
    const TOPIC: Topic = Topic::Control;

    /// The job it is about.
    fn key(&self) -> String {
        match self {
            ControlMessage::Cancel(m) => m.job_id.to_string(),
        }
    }

    fn version(&self) -> u32 {
        match self {
            ControlMessage::Cancel(m) => m.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DecodeError;
    use serde_json::{json, Value};

    #[test]
    fn cancel_requests_are_tagged_keyed_by_job_and_strict() {
        let request = CancelRequest::new(JobId::new(), "alice", false);
        let message = ControlMessage::Cancel(request.clone());
        let value: Value = serde_json::to_value(&message).unwrap();
        assert_eq!((value["kind"].as_str(), value["owner"].as_str()), (Some("cancel"), Some("alice")));
        assert_eq!(message.key(), request.job_id.to_string());
        let bytes = serde_json::to_vec(&message).unwrap();
        assert_eq!(crate::kafka::decode::<ControlMessage>(&bytes).unwrap(), message);

        let mut future = value.clone();
        future["version"] = json!(2);
        let future = crate::kafka::decode::<ControlMessage>(future.to_string().as_bytes());
        assert!(matches!(future, Err(DecodeError::Version { found: 2 })));
        let mut typo = value;
        typo["result_publishd"] = json!(true);
        assert!(crate::kafka::decode::<ControlMessage>(typo.to_string().as_bytes()).is_err(), "typos are not ignored");
        let heartbeat = json!({"kind": "heartbeat", "version": 1, "executor_id": "e1", "slots": 2, "busy": 1,
            "state": "running", "at": "2025-01-01T00:00:00Z"});
        assert!(
            crate::kafka::decode::<ControlMessage>(heartbeat.to_string().as_bytes()).is_err(),
            "not control traffic"
        );
    }
}

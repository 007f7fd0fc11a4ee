//! What can still be read of a message that does not decode, so that its job can
//! be ended with a terminal result that says why rather than left waiting.
//!
//! The job id comes from the message's fields when they parse, else from the Kafka
//! key (always the job id). Unknown fields are skipped without building them
//! (serde_json skips iteratively), so a message nested past serde_json's recursion
//! limit still yields its id and owner.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{JobId, Owner};

/// The job a message that could not be decoded was about.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub job_id: JobId,
    /// Unknown when the payload is not even partly readable: the reader takes the
    /// owner it has on record.
    pub owner: Option<Owner>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub attempt: Option<u32>,
    /// `started` or `finished` on the results topic, when readable.
    pub kind: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default, alias = "job_id")]
    id: Option<JobId>,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    submitted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    kind: Option<String>,
}

/// The job an unreadable message on the jobs or results topic names, if any.
pub fn salvage(key: Option<&[u8]>, payload: &[u8]) -> Option<Unreadable> {
    let envelope = serde_json::from_slice::<Envelope>(payload).ok();
    let from_key = key.and_then(|k| std::str::from_utf8(k).ok()).and_then(|k| k.parse::<JobId>().ok());
    let job_id = envelope.as_ref().and_then(|e| e.id).or(from_key)?;
    let (owner, submitted_at, attempt, kind) = match envelope {
        Some(e) => (e.owner, e.submitted_at, e.attempt, e.kind),
        None => (None, None, None, None),
    };
    Some(Unreadable { job_id, owner, submitted_at, attempt, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::nested;
    use serde_json::json;

    #[test]
    fn a_message_nested_past_the_recursion_limit_still_names_its_job_and_owner() {
        let id = JobId::new();
        let job = json!({"version": 1, "id": id, "owner": {"subject": "alice"}, "spec": {"input": nested(127)}});
        let bytes = serde_json::to_vec(&job).unwrap();
        assert!(crate::kafka::decode::<crate::Job>(&bytes).is_err());
        let found = salvage(None, &bytes).unwrap();
        assert_eq!((found.job_id, found.owner.unwrap().subject), (id, "alice".to_owned()));
    }

    #[test]
    fn garbage_is_ended_by_its_key_and_keyless_garbage_names_nothing() {
        let id = JobId::new();
        let found = salvage(Some(id.to_string().as_bytes()), b"\xff not json").unwrap();
        assert_eq!((found.job_id, found.owner), (id, None));
        assert!(salvage(None, b"not json").is_none());
        assert!(salvage(Some(b"not-an-id"), b"{}").is_none());
        let event = json!({"kind": "finished", "job_id": id, "output": nested(130)});
        let found = salvage(None, &serde_json::to_vec(&event).unwrap()).unwrap();
        assert_eq!((found.job_id, found.kind.as_deref()), (id, Some("finished")));
    }
}

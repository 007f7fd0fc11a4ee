//! The logs topic's messages: bounded chunks of what a running function writes
//! besides its result, published by the executor keyed by job id (so one job's
//! chunks stay in order on one partition) and kept by the frontend.
//!
//! Chunks of one attempt are numbered from 0 by `seq`; `last` closes an attempt's
//! stream, and `truncated` is set on the one chunk after which the attempt's per-job
//! byte cap ([`LogLimits::max_bytes_per_job`]) dropped the rest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::kafka::{Message, Topic};
use crate::schema::SCHEMA_VERSION;
use crate::JobId;

/// Which of the process's streams a chunk's text came from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// The run a chunk came from: a job's attempt on one executor. A job redelivered
/// after its executor was lost runs again with the same `attempt` number on another
/// executor; `executor_id` and `started_at` tell the two runs apart (as the
/// `started` events of the results topic do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRun {
    pub job_id: JobId,
    /// The attempt as its executor counts them.
    pub attempt: u32,
    pub executor_id: String,
    pub started_at: DateTime<Utc>,
}

/// One chunk of a job attempt's live log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogChunk {
    pub version: u32,
    #[serde(flatten)]
    pub run: LogRun,
    /// Position of this chunk among its attempt's chunks, from 0.
    pub seq: u64,
    pub stream: LogStream,
    /// Whole lines but for a line longer than a chunk; credentials redacted.
    pub text: String,
    /// The cap was reached with this chunk: what the function wrote after it is not kept.
    #[serde(default)]
    pub truncated: bool,
    /// The attempt's last chunk: its function ended.
    #[serde(default)]
    pub last: bool,
}

impl LogChunk {
    pub fn new(run: LogRun, seq: u64, stream: LogStream, text: String) -> Self {
        Self { version: SCHEMA_VERSION, run, seq, stream, text, truncated: false, last: false }
    }
}

impl Message for LogChunk {
    const TOPIC: Topic = Topic::Logs;

    /// The job: its chunks stay in order on one partition.
    fn key(&self) -> String {
        self.run.job_id.to_string()
    }

    fn version(&self) -> u32 {
        self.version
    }
}

/// The bounds on one job's live log, the same at both ends: the executor stops
/// publishing and the frontend stops storing at `max_bytes_per_job`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogLimits {
    /// Bytes of log text kept per job attempt (the executor) and per job (the frontend).
    pub max_bytes_per_job: usize,
    /// The largest chunk; a chunk goes out once this much is buffered.
    pub chunk_bytes: usize,
    /// A chunk goes out at most this often (unless `chunk_bytes` are buffered).
    pub interval_ms: u64,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self { max_bytes_per_job: 1 << 20, chunk_bytes: 16 << 10, interval_ms: 200 }
    }
}

impl LogLimits {
    /// Why these limits cannot be used, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.chunk_bytes < 64 || self.chunk_bytes > 256 << 10 {
            return Err("logs.chunk_bytes must be between 64 and 262144".into());
        }
        if self.max_bytes_per_job < self.chunk_bytes {
            return Err("logs.max_bytes_per_job must be at least logs.chunk_bytes".into());
        }
        if self.interval_ms == 0 {
            return Err("logs.interval_ms must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DecodeError;
    use serde_json::{json, Value};

    #[test]
    fn chunks_round_trip_and_unknown_versions_are_refused() {
        let run = LogRun { job_id: JobId::new(), attempt: 2, executor_id: "e1".into(), started_at: Utc::now() };
        let chunk = LogChunk { truncated: true, ..LogChunk::new(run, 7, LogStream::Stderr, "hi\n".into()) };
        let text = serde_json::to_vec(&chunk).unwrap();
        assert_eq!(crate::kafka::decode::<LogChunk>(&text).unwrap(), chunk);
        let mut value: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!((value["stream"].as_str(), value["seq"].as_u64()), (Some("stderr"), Some(7)));
        assert_eq!((value["attempt"].as_u64(), value["executor_id"].as_str()), (Some(2), Some("e1")));
        value["version"] = json!(2);
        assert!(matches!(
            crate::kafka::decode::<LogChunk>(value.to_string().as_bytes()),
            Err(DecodeError::Version { found: 2 })
        ));
        assert!(crate::kafka::decode::<LogChunk>(b"{}").is_err());
    }

    #[test]
    fn limits_default_to_a_mebibyte_in_16_kib_chunks_and_bad_ones_are_refused() {
        let limits = LogLimits::default();
        assert_eq!((limits.max_bytes_per_job, limits.chunk_bytes, limits.interval_ms), (1 << 20, 16 << 10, 200));
        assert!(limits.validate().is_ok());
        assert!(LogLimits { chunk_bytes: 1, ..limits.clone() }.validate().is_err());
        assert!(LogLimits { max_bytes_per_job: 100, ..limits.clone() }.validate().is_err());
        assert!(LogLimits { interval_ms: 0, ..limits }.validate().is_err());
    }
}

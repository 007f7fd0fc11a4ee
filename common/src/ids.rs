//! Identifiers. Job ids are UUIDv7: unique without coordination and ordered by
//! creation time, so "newest first" listings and Kafka keys sort naturally.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id named by `parts` (a UUIDv8 of their SHA-256): the same parts always
    /// give the same id, so a job made twice from one origin is one job.
    pub fn derived(parts: &[&str]) -> Self {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest_of(parts)[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// Like [`JobId::derived`], but ordered among UUIDv7 ids as one made at
    /// `at_ms` (ms since the epoch) is: a UUIDv7 of that time whose other bits
    /// are the parts' hash. Lists of jobs are newest first by id, so an id
    /// derived without a time would put its job anywhere in them.
    pub fn derived_at(at_ms: u64, parts: &[&str]) -> Self {
        let mut random = [0u8; 10];
        random.copy_from_slice(&digest_of(parts)[..10]);
        Self(uuid::Builder::from_unix_timestamp_millis(at_ms, &random).into_uuid())
    }

    /// When an id of [`JobId::new`] (or [`JobId::derived_at`]) was made, in ms
    /// since the epoch; none for other ids.
    pub fn created_ms(&self) -> Option<u64> {
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        Some(secs * 1000 + u64::from(nanos) / 1_000_000)
    }
}

/// SHA-256 of `parts`, each prefixed by its length so that no two lists collide.
fn digest_of(parts: &[&str]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("job id must be a uuid: {0}")]
pub struct InvalidJobId(#[from] uuid::Error);

impl FromStr for JobId {
    type Err = InvalidJobId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(Uuid::parse_str(s)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_time_ordered_and_round_trip_as_text() {
        let first = JobId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = JobId::new();
        assert!(first < second);
        assert_eq!(second.to_string().parse::<JobId>().unwrap(), second);
        assert!("not-a-uuid".parse::<JobId>().is_err());
    }

    #[test]
    fn ids_derived_at_a_time_sort_among_new_ids_by_that_time() {
        let before = JobId::new();
        let at = before.created_ms().unwrap() + 5;
        let derived = JobId::derived_at(at, &["a", "b"]);
        assert_eq!(derived, JobId::derived_at(at, &["a", "b"]), "the same parts and time, the same id");
        assert_ne!(derived, JobId::derived_at(at, &["a", "c"]));
        assert_eq!(derived.created_ms(), Some(at));
        assert!(before < derived && derived < JobId::derived_at(at + 1, &["a", "b"]));
        assert_eq!(JobId::derived(&["a", "b"]).created_ms(), None);
    }
}

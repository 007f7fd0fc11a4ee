//! Named functions: a name bound to a repository and a ref, each deployment an
//! immutable version pinned to the commit its ref resolved to. Their source of
//! truth is a compacted topic holding one message per function — keyed by its
//! owner and name, carrying its whole state — and a tombstone once it is deleted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobSpec, Owner, SCHEMA_VERSION};
use crate::kafka::{Message, Topic};

/// The longest function name, in characters.
pub const MAX_FUNCTION_NAME_CHARS: usize = 63;
/// Versions a function keeps (the oldest go first); the current one is always kept.
pub const MAX_VERSIONS_KEPT: usize = 20;

/// The function and version a job runs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRef {
    pub name: String,
    pub version: u32,
}

/// One deployment of a function: what every invocation of it runs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionVersion {
    pub version: u32,
    /// The commit the ref named when this version was deployed.
    pub commit_sha: String,
    /// The job an invocation submits, but for its input (its `ref` as deployed).
    pub spec: JobSpec,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A function with its versions and which of them runs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionState {
    /// Schema version of the message.
    #[serde(rename = "schema_version")]
    pub schema: u32,
    pub owner: Owner,
    pub name: String,
    /// The version invocations run.
    pub current: u32,
    pub versions: Vec<FunctionVersion>,
    pub updated_at: DateTime<Utc>,
}

/// Why a function could not be rolled back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("version {0} does not exist (or is no longer kept)")]
    NoSuchVersion(u32),
}

impl FunctionState {
    /// The compacted topic's key of `name` of `subject` ([`super::owned_key`]).
    pub fn key_of(subject: &str, name: &str) -> String {
        super::owned_key(subject, name)
    }

    /// The job an invocation of the current version with `input` runs: pinned to
    /// the version's commit, naming the function and version.
    pub fn invocation(&self, input: serde_json::Value) -> Option<JobSpec> {
        self.invocation_of(self.current, input)
    }

    /// The job an invocation of kept version `number` with `input` runs.
    pub fn invocation_of(&self, number: u32, input: serde_json::Value) -> Option<JobSpec> {
        let version = self.version(number)?;
        Some(JobSpec {
            input,
            // a commit git resolved is a ref; a stored one that is not names no job
            git_ref: version.commit_sha.parse().ok()?,
            function: Some(FunctionRef { name: self.name.clone(), version: version.version }),
            ..version.spec.clone()
        })
    }

    /// `previous` (none: a new function) with one more version, which becomes current.
    pub fn deployed(
        previous: Option<FunctionState>,
        owner: Owner,
        name: &str,
        commit_sha: String,
        spec: JobSpec,
    ) -> FunctionState {
        let now = Utc::now();
        let mut state = previous.unwrap_or_else(|| FunctionState {
            schema: SCHEMA_VERSION,
            owner: owner.clone(),
            name: name.to_owned(),
            current: 0,
            versions: Vec::new(),
            updated_at: now,
        });
        let version = state.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let created_by = owner.name.clone().unwrap_or_else(|| owner.subject.clone());
        state.versions.push(FunctionVersion { version, commit_sha, spec, created_by, created_at: now });
        state.current = version;
        state.updated_at = now;
        if state.versions.len() > MAX_VERSIONS_KEPT {
            state.versions.drain(..state.versions.len() - MAX_VERSIONS_KEPT);
        }
        state
    }

    /// Makes the kept version `to` current again.
    pub fn rolled_back(mut self, to: u32) -> Result<FunctionState, RollbackError> {
        if self.version(to).is_none() {
            return Err(RollbackError::NoSuchVersion(to));
        }
        self.current = to;
        self.updated_at = Utc::now();
        Ok(self)
    }

    pub fn version(&self, number: u32) -> Option<&FunctionVersion> {
        self.versions.iter().find(|v| v.version == number)
    }

    /// The version invocations run.
    pub fn current_version(&self) -> Option<&FunctionVersion> {
        self.version(self.current)
    }
}

/// Names: 1 to 63 of lowercase letters, digits, `-`, `_` and `.`, starting with
/// a letter or digit (they appear in URLs and keys).
pub fn is_valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().count() <= MAX_FUNCTION_NAME_CHARS
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

impl Message for FunctionState {
    const TOPIC: Topic = Topic::Functions;

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

    fn spec() -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "repo": "https://git.example.org/f.git", "ref": "main", "timeout_secs": 10,
            "resources": {"memory_mb": 64, "cpu_millis": 100, "pids": 16},
        }))
        .unwrap()
    }

    #[test]
    fn deployments_add_versions_that_become_current_and_rollback_picks_a_kept_one() {
        let owner = Owner { subject: "alice".into(), name: None };
        let one = FunctionState::deployed(None, owner.clone(), "hello", "a".repeat(40), spec());
        let two = FunctionState::deployed(Some(one), owner.clone(), "hello", "b".repeat(40), spec());
        assert_eq!((two.current, two.versions.len()), (2, 2));
        let back = two.clone().rolled_back(1).unwrap();
        assert_eq!(back.current_version().unwrap().commit_sha, "a".repeat(40));
        assert_eq!(two.rolled_back(7), Err(RollbackError::NoSuchVersion(7)));
        let mut many = back;
        for _ in 0..MAX_VERSIONS_KEPT + 5 {
            many = FunctionState::deployed(Some(many), owner.clone(), "hello", "c".repeat(40), spec());
        }
        assert_eq!(many.versions.len(), MAX_VERSIONS_KEPT);
        assert_eq!(many.current as usize, MAX_VERSIONS_KEPT + 7);
        assert_eq!(crate::kafka::decode::<FunctionState>(&serde_json::to_vec(&many).unwrap()).unwrap(), many);
    }

    #[test]
    fn names_are_short_lowercase_words_and_keys_are_unambiguous() {
        assert!(is_valid_function_name("resize-image_v2.1"));
        for bad in ["", "-x", "Upper", "a/b", "a b", "ä", &"x".repeat(64)] {
            assert!(!is_valid_function_name(bad), "{bad:?}");
        }
        assert_ne!(FunctionState::key_of("a\",\"b", "c"), FunctionState::key_of("a", "b\",\"c"));
    }
}

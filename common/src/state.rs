//! Named functions' state: the state topic's commit records and the view every
//! reader folds them into.
//!
//! A job of a named function may change its function's state (a map of JSON
//! values under string keys, one per owner and function: a [`Scope`]). The
//! function's writes are buffered in its sandbox and come back with its result as
//! one [`StateCommit`], which the executor produces in one Kafka transaction with
//! the result (and the job's publishes), so the commit is visible exactly when
//! the result is. Commits are keyed by their scope, so one partition holds a
//! scope's commits in one order, and every reader ([`StateView`]) applies them in
//! that order, **the first commit of each job only**: a job run again after its
//! executor died (at-least-once redelivery) adds nothing. Increments are
//! operations, not values, so concurrent jobs incrementing one key lose no update.
//!
//! A scope remembers the job ids it applied for [`DEDUPLICATION_WINDOW`] of commit
//! time (the latest commit's `committed_at` sets the clock, so every reader
//! forgets the same ids at the same commit): a job's second commit can only come
//! from a run that began after its first run's executor died, within a job's
//! timeout of it, so a day is ample, and a reader's memory stays bounded.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kafka::{Message, Topic};

mod follow;
use crate::schema::SCHEMA_VERSION;
pub use follow::FollowedState;

/// Whose state: an owner's (their subject) named function's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    pub subject: String,
    pub function: String,
}

impl Scope {
    pub fn new(subject: impl Into<String>, function: impl Into<String>) -> Self {
        Self { subject: subject.into(), function: function.into() }
    }
}

/// One change of a scope's state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum StateOp {
    /// Sets `key` to `value`.
    Put { key: String, value: Value },
    /// Adds `by` to the integer at `key` (absent, or not an integer: 0);
    /// saturating at the bounds of a 64-bit integer.
    Incr { key: String, by: i64 },
    /// Removes `key`.
    Delete { key: String },
    /// Removes every key (the owner's `DELETE .../state`).
    Clear,
}

impl StateOp {
    fn key(&self) -> Option<&str> {
        match self {
            StateOp::Put { key, .. } | StateOp::Incr { key, .. } | StateOp::Delete { key } => Some(key),
            StateOp::Clear => None,
        }
    }
}

/// The state topic's record: what one job (or one owner's request, `job_id`
/// `api:<uuid>`) changed in one scope, applied whole or not at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateCommit {
    pub version: u32,
    pub scope: Scope,
    /// The job whose commit this is: the first commit of a job id is applied,
    /// any later one (a redelivered job's) is not.
    pub job_id: String,
    pub ops: Vec<StateOp>,
    pub committed_at: DateTime<Utc>,
}

impl StateCommit {
    pub fn new(scope: Scope, job_id: impl Into<String>, ops: Vec<StateOp>) -> Self {
        Self { version: SCHEMA_VERSION, scope, job_id: job_id.into(), ops, committed_at: Utc::now() }
    }
}

impl Message for StateCommit {
    const TOPIC: Topic = Topic::State;

    /// The scope: one partition, one order, per function.
    fn key(&self) -> String {
        format!("{}/{}", self.scope.subject, self.scope.function)
    }

    fn version(&self) -> u32 {
        self.version
    }
}

/// A record a function publishes to a topic of its owner's, with the job's result.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    pub topic: String,
    #[serde(default)]
    pub key: Option<String>,
    pub value: Value,
}

/// What a run asked for besides its output: state changes and records to publish.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Effects {
    #[serde(default)]
    pub ops: Vec<StateOp>,
    #[serde(default)]
    pub publish: Vec<Publish>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.publish.is_empty()
    }
}

/// The bounds of a function's state and of one job's effects. The sandbox's
/// runner enforces them as the function calls (an error the function sees); the
/// executor checks them again before it commits (the sandbox is not trusted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Keys per function. Checked against the committed state and the job's own
    /// writes; concurrent jobs each adding keys may pass it together by their sum.
    pub max_keys: usize,
    /// State changes of one job.
    pub max_ops: usize,
    /// Records one job publishes.
    pub max_publishes: usize,
    /// The JSON size of one published record's value.
    pub max_publish_bytes: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 256,
            max_value_bytes: 16 * 1024,
            max_keys: 1024,
            max_ops: 1000,
            max_publishes: 100,
            max_publish_bytes: 64 * 1024,
        }
    }
}

/// Why a run's effects are not committed (the job ends `failed` with this).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EffectsError {
    #[error("state: {0} changes; the limit is {1} per job")]
    TooManyOps(usize, usize),
    #[error("state: a key of {0} bytes; the limit is {1}")]
    KeyTooLong(usize, usize),
    #[error("state: an empty key")]
    EmptyKey,
    #[error("state: the value of key {0:?} is {1} bytes of JSON; the limit is {2}")]
    ValueTooLarge(String, usize, usize),
    #[error("state: the function would hold {0} keys; the limit is {1}")]
    TooManyKeys(usize, usize),
    #[error("state: a job may not clear its function's state")]
    Clear,
    #[error("publish: {0} records; the limit is {1} per job")]
    TooManyPublishes(usize, usize),
    #[error("publish: topic {0:?} is not one this function may publish to")]
    TopicNotAllowed(String),
    #[error("publish: a record of {0} bytes to {1:?}; the limit is {2}")]
    PublishTooLarge(usize, String, usize),
    #[error("state and publish belong to named functions; this job is not one")]
    NotAFunction,
}

impl Effects {
    /// Checks a run's effects against `limits`, the topics it may publish to and
    /// the committed state they apply to.
    pub fn check(&self, limits: &StateLimits, topics: &[String], state: &ScopeState) -> Result<(), EffectsError> {
        if self.ops.len() > limits.max_ops {
            return Err(EffectsError::TooManyOps(self.ops.len(), limits.max_ops));
        }
        let mut keys: HashSet<&str> = state.values.keys().map(String::as_str).collect();
        for op in &self.ops {
            let Some(key) = op.key() else { return Err(EffectsError::Clear) };
            check_key(key, limits)?;
            match op {
                StateOp::Put { value, .. } => {
                    let bytes = json_len(value);
                    if bytes > limits.max_value_bytes {
                        return Err(EffectsError::ValueTooLarge(key.to_owned(), bytes, limits.max_value_bytes));
                    }
                    keys.insert(key);
                }
                StateOp::Incr { .. } => {
                    keys.insert(key);
                }
                StateOp::Delete { .. } => {
                    keys.remove(key);
                }
                StateOp::Clear => unreachable!("refused above"),
            }
        }
        if keys.len() > limits.max_keys && keys.len() > state.values.len() {
            return Err(EffectsError::TooManyKeys(keys.len(), limits.max_keys));
        }
        if self.publish.len() > limits.max_publishes {
            return Err(EffectsError::TooManyPublishes(self.publish.len(), limits.max_publishes));
        }
        for record in &self.publish {
            if !topics.contains(&record.topic) {
                return Err(EffectsError::TopicNotAllowed(record.topic.clone()));
            }
            let bytes = json_len(&record.value);
            if bytes > limits.max_publish_bytes {
                return Err(EffectsError::PublishTooLarge(bytes, record.topic.clone(), limits.max_publish_bytes));
            }
        }
        Ok(())
    }
}

fn check_key(key: &str, limits: &StateLimits) -> Result<(), EffectsError> {
    if key.is_empty() {
        return Err(EffectsError::EmptyKey);
    }
    if key.len() > limits.max_key_bytes {
        return Err(EffectsError::KeyTooLong(key.len(), limits.max_key_bytes));
    }
    Ok(())
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// How long (in commit time) a scope remembers that it applied a job's commit.
pub const DEDUPLICATION_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// One scope's committed state, and the jobs whose commits it applied within
/// [`DEDUPLICATION_WINDOW`] of its latest commit.
#[derive(Clone, Debug, Default)]
pub struct ScopeState {
    pub values: BTreeMap<String, Value>,
    applied: HashSet<String>,
    /// The applied job ids in the order applied, with their commit times.
    recent: VecDeque<(DateTime<Utc>, String)>,
    latest: Option<DateTime<Utc>>,
}

impl ScopeState {
    /// Forgets the job ids applied more than the window before `at` (or before
    /// the latest commit, if that is later).
    fn forget_before(&mut self, at: DateTime<Utc>) {
        let latest = self.latest.map_or(at, |latest| latest.max(at));
        self.latest = Some(latest);
        let horizon = latest - DEDUPLICATION_WINDOW;
        while self.recent.front().is_some_and(|(when, _)| *when < horizon) {
            if let Some((_, job_id)) = self.recent.pop_front() {
                self.applied.remove(&job_id);
            }
        }
    }

    /// How many job ids the scope remembers.
    pub fn remembered(&self) -> usize {
        self.applied.len()
    }

    /// Whether the commit of `job_id` is applied.
    pub fn has_applied(&self, job_id: &str) -> bool {
        self.applied.contains(job_id)
    }

    /// The keys starting with `prefix`, in order, and their values.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.values.range(prefix.to_owned()..).take_while(move |(k, _)| k.starts_with(prefix))
    }

    fn apply(&mut self, op: &StateOp) {
        match op {
            StateOp::Put { key, value } => {
                self.values.insert(key.clone(), value.clone());
            }
            StateOp::Incr { key, by } => {
                let slot = self.values.entry(key.clone()).or_insert(Value::from(0));
                let now = slot.as_i64().unwrap_or(0).saturating_add(*by);
                *slot = Value::from(now);
            }
            StateOp::Delete { key } => {
                self.values.remove(key);
            }
            StateOp::Clear => self.values.clear(),
        }
    }
}

/// Every scope's state, folded from the state topic's commits in their order.
#[derive(Debug, Default)]
pub struct StateView {
    scopes: HashMap<Scope, ScopeState>,
}

impl StateView {
    /// Applies `commit` unless its job's commit was applied already; whether it was.
    pub fn apply(&mut self, commit: &StateCommit) -> bool {
        let scope = self.scopes.entry(commit.scope.clone()).or_default();
        scope.forget_before(commit.committed_at);
        if !scope.applied.insert(commit.job_id.clone()) {
            return false;
        }
        scope.recent.push_back((commit.committed_at, commit.job_id.clone()));
        for op in &commit.ops {
            scope.apply(op);
        }
        true
    }

    pub fn scope(&self, scope: &Scope) -> Option<&ScopeState> {
        self.scopes.get(scope)
    }

    /// Whether `job_id`'s commit to `scope` is applied.
    pub fn has_applied(&self, scope: &Scope, job_id: &str) -> bool {
        self.scopes.get(scope).is_some_and(|s| s.has_applied(job_id))
    }
}

#[cfg(test)]
mod tests;

//! The messages on the observer topic, as versioned JSON tagged by `kind`.
//!
//! - `heartbeat` ([`ExecutorHeartbeat`]): every executor, every [`HEARTBEAT_EVERY`],
//!   keyed by executor id: how many slots it has and how many are busy;
//! - `config` ([`ConfigUpdate`]): a change of the observer's parameters, published by
//!   the frontend (or an operator) with key [`CONFIG_KEY`] so that all of them land on
//!   one partition, in order. The observer re-reads them from the beginning of the
//!   topic on start, so parameters survive a restart;
//! - `report` ([`ObserverReport`]): what the observer measured and decided, every
//!   interval and on change, keyed by observer id;
//! - `scaler` ([`ScalerEvent`]): what the scaler did with a decision;
//! - `beacon` ([`FeedBeacon`]): every frontend, every [`HEARTBEAT_EVERY`]: the
//!   topic carries messages, so silent executors are silent, not cut off.
//!
//! Cancel requests, which only the executors read, are on the control topic
//! ([`crate::control`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::kafka::{Message, Topic};
use crate::schema::SCHEMA_VERSION;

/// Key of every config message: one key, one partition, a total order.
pub const CONFIG_KEY: &str = "observer-config";

/// How often executors publish a heartbeat.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// What an executor is doing with its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorState {
    /// Taking jobs.
    Running,
    /// Asked to stop: finishing its running jobs, taking no new ones.
    Draining,
    /// Drained; about to exit.
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutorHeartbeat {
    pub version: u32,
    pub executor_id: String,
    /// Jobs it can run at once.
    pub slots: u32,
    /// Jobs running now.
    pub busy: u32,
    pub state: ExecutorState,
    pub at: DateTime<Utc>,
    /// When this executor process started: a job it started before then was lost
    /// with an earlier process of the same id (none: an older executor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// No longer sent: partitions of the jobs topic an executor had unsettled work
    /// on, for a handover hold that Kafka does not need. Kept so that heartbeats
    /// of older executors decode as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsettled: Vec<i32>,
}

impl ExecutorHeartbeat {
    /// `executor_id`'s heartbeat now: `busy` of its `slots` running, up since `since`.
    pub fn new(executor_id: &str, slots: u32, busy: u32, state: ExecutorState, since: DateTime<Utc>) -> Self {
        let executor_id = executor_id.to_owned();
        let (at, unsettled, since) = (Utc::now(), Vec::new(), Some(since));
        Self { version: SCHEMA_VERSION, executor_id, slots, busy, state, at, unsettled, since }
    }
}

/// A frontend's sign that the observer topic carries its messages: each frontend
/// sends one every [`HEARTBEAT_EVERY`] and reads them back, so a silence of the
/// whole topic is an outage of the feed (the broker, or the link to it), which
/// says nothing about the executors whose heartbeats it also stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedBeacon {
    pub version: u32,
    /// The sending frontend instance.
    pub from: String,
    pub at: DateTime<Utc>,
    /// The topic triggers this frontend reads, and how far behind it is on each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerLoad>,
}

impl FeedBeacon {
    pub fn new(from: impl Into<String>, triggers: Vec<TriggerLoad>) -> Self {
        Self { version: SCHEMA_VERSION, from: from.into(), at: Utc::now(), triggers }
    }
}

/// One topic trigger's load on one frontend — or, in a report, summed over them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerLoad {
    /// `<owner subject>/<trigger name>`.
    pub trigger: String,
    /// Records of the input topic not yet read (at the last record read).
    pub lag: i64,
    /// Jobs of the trigger made and not finished.
    pub in_flight: u32,
    /// Jobs it may have unfinished at once.
    pub concurrency: u32,
}

/// Which statistic of the response time the target bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatistic {
    Mean,
    P95,
}

/// The observer's parameters. Durations are whole seconds unless named `_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserverParams {
    pub target_statistic: TargetStatistic,
    /// Response time (queue + run) the chosen worker count must keep below.
    pub target_response_ms: u64,
    /// Window of the arrival and completion rates.
    pub rate_window_secs: u64,
    /// Window of service, waiting and response times.
    pub latency_window_secs: u64,
    pub min_workers: u32,
    pub max_workers: u32,
    /// No further `add` this long after a scaling action.
    pub scale_out_cooldown_secs: u64,
    /// No `remove` this long after a scaling action.
    pub scale_in_cooldown_secs: u64,
    /// A report is published at least this often.
    pub interval_secs: u64,
    /// A backlog must be worked off within this long, on top of the new arrivals.
    pub drain_horizon_secs: u64,
    /// Scale in only when the smaller count meets the target by this fraction
    /// (0.2 = predicted at most 80 % of the target).
    pub hysteresis: f64,
}

impl Default for ObserverParams {
    fn default() -> Self {
        Self {
            target_statistic: TargetStatistic::P95,
            target_response_ms: 10_000,
            rate_window_secs: 30,
            latency_window_secs: 60,
            min_workers: 1,
            max_workers: 4,
            scale_out_cooldown_secs: 15,
            scale_in_cooldown_secs: 60,
            interval_secs: 10,
            drain_horizon_secs: 30,
            hysteresis: 0.2,
        }
    }
}

/// Why parameters were refused, and the field at fault when one is.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("invalid observer parameters: {0}")]
pub struct InvalidParams(pub String, pub Option<&'static str>);

/// The longest span a parameter may name: a year. The observer turns spans into
/// signed time deltas, which a span near `u64::MAX` seconds overflows (a panic, not
/// a refusal), however the parameters reach it — the admin route, its own config,
/// or a message written to the observer topic by anyone with broker access.
pub const MAX_SPAN_SECS: u64 = 365 * 24 * 3600;

impl ObserverParams {
    pub fn validate(&self) -> Result<(), InvalidParams> {
        let fail = |m: &str| Err(InvalidParams(m.to_owned(), None));
        let spans = [
            ("rate_window_secs", self.rate_window_secs),
            ("latency_window_secs", self.latency_window_secs),
            ("scale_out_cooldown_secs", self.scale_out_cooldown_secs),
            ("scale_in_cooldown_secs", self.scale_in_cooldown_secs),
            ("interval_secs", self.interval_secs),
            ("drain_horizon_secs", self.drain_horizon_secs),
            ("target_response_ms", self.target_response_ms / 1000),
        ];
        if let Some((field, _)) = spans.into_iter().find(|&(_, secs)| secs > MAX_SPAN_SECS) {
            return Err(InvalidParams(format!("{field} is at most a year ({MAX_SPAN_SECS} s)"), Some(field)));
        }
        if self.target_response_ms == 0 {
            return fail("target_response_ms must be positive");
        }
        if self.rate_window_secs == 0 || self.latency_window_secs == 0 || self.interval_secs == 0 {
            return fail("windows and interval must be at least one second");
        }
        if self.drain_horizon_secs == 0 {
            return fail("drain_horizon_secs must be at least one second");
        }
        if self.max_workers == 0 || self.min_workers > self.max_workers {
            return fail("need 0 <= min_workers <= max_workers and max_workers >= 1");
        }
        if !(0.0..1.0).contains(&self.hysteresis) {
            return fail("hysteresis must be in [0, 1)");
        }
        Ok(())
    }

    /// These parameters with the fields `update` sets replaced.
    pub fn apply(&self, update: &ParamsUpdate) -> Result<Self, InvalidParams> {
        let mut next = self.clone();
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = update.$field.clone() { next.$field = v; })* };
        }
        set!(
            target_statistic,
            target_response_ms,
            rate_window_secs,
            latency_window_secs,
            min_workers,
            max_workers,
            scale_out_cooldown_secs,
            scale_in_cooldown_secs,
            interval_secs,
            drain_horizon_secs,
            hysteresis
        );
        next.validate()?;
        Ok(next)
    }
}

/// A partial change of [`ObserverParams`]: fields left out keep their value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_statistic: Option<TargetStatistic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_response_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_window_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_window_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_workers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_workers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_out_cooldown_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_in_cooldown_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_horizon_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    pub version: u32,
    /// Who asked for the change (the frontend's authenticated subject, an operator).
    pub issued_by: String,
    pub issued_at: DateTime<Utc>,
    pub params: ParamsUpdate,
}

impl ConfigUpdate {
    pub fn new(issued_by: impl Into<String>, params: ParamsUpdate) -> Self {
        Self { version: SCHEMA_VERSION, issued_by: issued_by.into(), issued_at: Utc::now(), params }
    }
}

/// Mean and percentiles of a duration sample, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub samples: u64,
}

/// Messages the observer could not use, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomalies {
    /// Not JSON of this schema, or of an unknown version.
    pub malformed: u64,
    /// A job, start or result seen before (redelivery, producer retry).
    pub duplicates: u64,
    /// Arrived after its time had left the window it belonged to.
    pub late: u64,
    /// Config updates refused by validation.
    pub rejected_config: u64,
}

/// An executor as the latest heartbeat described it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub executor_id: String,
    pub slots: u32,
    pub busy: u32,
    pub state: ExecutorState,
    pub last_seen: DateTime<Utc>,
}

/// What the observer measured. Rates are per second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// λ: jobs submitted per second over the rate window.
    pub arrival_rate: f64,
    /// Results per second over the rate window.
    pub completion_rate: f64,
    /// Mean run time of one job (E\[S\]) over the latency window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time_ms: Option<f64>,
    /// μ: jobs one worker completes per second when all its slots are busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_rate_per_worker: Option<f64>,
    /// ρ = λ / (c·μ); none without workers or without a service time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilisation: Option<f64>,
    /// Jobs submitted and not started yet.
    pub backlog: u64,
    /// Jobs started and not finished yet.
    pub running: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<LatencyStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<LatencyStats>,
    /// c: executors taking jobs (fresh heartbeat, state running).
    pub workers: u32,
    /// Slots of one worker used by the model (mean over live workers).
    pub slots_per_worker: u32,
    /// Partitions of the jobs topic: no more workers than these can get jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// Whether the rate window is covered by observation (not just since start).
    pub window_filled: bool,
    pub executors: Vec<WorkerView>,
    pub anomalies: Anomalies,
    /// Topic triggers' lag and jobs in flight, over the frontends reading them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerLoad>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleAction {
    Add,
    Remove,
    None,
}

impl ScaleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleAction::Add => "add",
            ScaleAction::Remove => "remove",
            ScaleAction::None => "none",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObserverReport {
    pub version: u32,
    pub observer_id: String,
    pub at: DateTime<Utc>,
    pub metrics: Metrics,
    pub current_workers: u32,
    pub desired_workers: u32,
    pub action: ScaleAction,
    /// Executors to drain and stop (only idle ones); empty unless `remove`.
    #[serde(default)]
    pub remove: Vec<String>,
    pub reason: String,
    /// The model's response time (of the target statistic) at the desired count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_response_ms: Option<f64>,
    /// Parameters in force when deciding.
    pub params: ObserverParams,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ScalerAction {
    /// Process spawned.
    Started { pid: u32 },
    /// SIGTERM sent; the executor finishes its running jobs.
    Draining,
    /// Process exited; `exit_code` is none when it was killed by a signal.
    Stopped { exit_code: Option<i32>, drained: bool },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalerEvent {
    pub version: u32,
    pub scaler_id: String,
    pub executor_id: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub action: ScalerAction,
}

impl ScalerEvent {
    /// What `scaler_id` did to `executor_id`, now.
    pub fn new(scaler_id: impl Into<String>, executor_id: impl Into<String>, action: ScalerAction) -> Self {
        Self {
            version: SCHEMA_VERSION,
            scaler_id: scaler_id.into(),
            executor_id: executor_id.into(),
            at: Utc::now(),
            action,
        }
    }
}

/// A message on the observer topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObserverMessage {
    Heartbeat(ExecutorHeartbeat),
    Config(ConfigUpdate),
    Report(Box<ObserverReport>),
    Scaler(ScalerEvent),
    Beacon(FeedBeacon),
}

impl Message for ObserverMessage {
    const TOPIC: Topic = Topic::Observer;

    fn version(&self) -> u32 {
        match self {
            ObserverMessage::Heartbeat(m) => m.version,
            ObserverMessage::Config(m) => m.version,
            ObserverMessage::Report(m) => m.version,
            ObserverMessage::Scaler(m) => m.version,
            ObserverMessage::Beacon(m) => m.version,
        }
    }

    fn key(&self) -> String {
        match self {
            ObserverMessage::Heartbeat(m) => m.executor_id.clone(),
            ObserverMessage::Config(_) => CONFIG_KEY.to_owned(),
            ObserverMessage::Report(m) => m.observer_id.clone(),
            ObserverMessage::Scaler(m) => m.executor_id.clone(),
            ObserverMessage::Beacon(m) => m.from.clone(),
        }
    }
}

#[cfg(test)]
mod tests;

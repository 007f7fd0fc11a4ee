//! The observer without Kafka: takes decoded messages in, gives reports out.
//!
//! [`Observer::ingest`] folds one message into the measurements, the parameters or
//! the cooldown state; [`Observer::evaluate`] decides and returns a report when one
//! is due (the interval passed, or something changed). Both take the time as an
//! argument, so tests run it under a synthetic clock.

use chrono::{DateTime, Duration, Utc};
use gitfaas_common::observer::{ObserverMessage, ObserverParams, ObserverReport, ParamsUpdate, ScaleAction};
use gitfaas_common::schema::SCHEMA_VERSION;
use gitfaas_common::{Job, JobEvent};

use crate::decision::{decide, DecisionInput, ScalingState};
use crate::measure::{Measurements, Spans};

/// One thing read from a topic.
#[derive(Clone, Debug)]
pub enum Input {
    Job {
        job: Box<Job>,
        seen_at: DateTime<Utc>,
    },
    Event {
        event: Box<JobEvent>,
        seen_at: DateTime<Utc>,
    },
    Observer(ObserverMessage),
    /// Not a message of this schema; `at` says where it was.
    Malformed {
        at: String,
        reason: String,
    },
    /// The start-up replay reached the end of every partition.
    CaughtUp,
}

/// What was last published, to tell whether the next report is due.
#[derive(Clone, Debug)]
struct Published {
    at: DateTime<Utc>,
    current: u32,
    desired: u32,
    params: ObserverParams,
}

#[derive(Debug)]
pub struct Observer {
    id: String,
    params: ObserverParams,
    measurements: Measurements,
    scaling: ScalingState,
    published: Option<Published>,
    caught_up: bool,
    last_prune: Option<DateTime<Utc>>,
    partitions: Option<u32>,
}

pub struct ObserverOptions {
    /// Partitions of the jobs topic, when known.
    pub partitions: Option<u32>,
    pub lookback: Duration,
    pub worker_timeout: Duration,
    pub default_slots: u32,
}

impl Observer {
    /// `observed_since`: the earliest event time the observer will have read.
    pub fn new(id: String, params: ObserverParams, options: ObserverOptions, observed_since: DateTime<Utc>) -> Self {
        let spans = Spans {
            rate_window: Duration::seconds(params.rate_window_secs as i64),
            latency_window: Duration::seconds(params.latency_window_secs as i64),
            memory: options.lookback,
            worker_timeout: options.worker_timeout,
        };
        Self {
            id,
            params,
            measurements: Measurements::new(spans, observed_since, options.default_slots),
            scaling: ScalingState::default(),
            published: None,
            caught_up: false,
            last_prune: None,
            partitions: options.partitions,
        }
    }

    #[cfg(test)]
    pub fn params(&self) -> &ObserverParams {
        &self.params
    }

    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }

    pub fn ingest(&mut self, input: Input) {
        match input {
            Input::Job { job, seen_at } => self.measurements.job_submitted(&job, seen_at),
            Input::Event { event, seen_at } => self.measurements.job_event(&event, seen_at),
            Input::Observer(message) => self.observer_message(message),
            Input::Malformed { at, reason } => {
                self.measurements.anomalies.malformed += 1;
                tracing::warn!(%at, %reason, "malformed message ignored");
            }
            Input::CaughtUp => {
                if !self.caught_up {
                    tracing::info!(params = ?self.params, "replay done; deciding from now on");
                }
                self.caught_up = true;
            }
        }
    }

    fn observer_message(&mut self, message: ObserverMessage) {
        match message {
            ObserverMessage::Heartbeat(heartbeat) => self.measurements.heartbeat(&heartbeat),
            ObserverMessage::Config(update) => self.configure(&update.params, &update.issued_by),
            // our own earlier decisions: the cooldown outlives a restart
            ObserverMessage::Report(report) if report.observer_id == self.id && report.action != ScaleAction::None => {
                self.scaling.last_action_at = self.scaling.last_action_at.max(Some(report.at));
            }
            ObserverMessage::Beacon(beacon) => self.measurements.beacon(&beacon),
            ObserverMessage::Report(_) | ObserverMessage::Scaler(_) => {}
        }
    }

    fn configure(&mut self, update: &ParamsUpdate, issued_by: &str) {
        match self.params.apply(update) {
            Ok(params) => {
                tracing::info!(%issued_by, ?update, "observer parameters changed");
                self.measurements.set_windows(
                    Duration::seconds(params.rate_window_secs as i64),
                    Duration::seconds(params.latency_window_secs as i64),
                );
                self.params = params;
            }
            Err(error) => {
                self.measurements.anomalies.rejected_config += 1;
                tracing::warn!(%issued_by, %error, "observer parameters refused");
            }
        }
    }

    /// Decides; returns the report to publish when one is due. Nothing before the
    /// replay caught up: half-read history would look like a backlog.
    pub fn evaluate(&mut self, now: DateTime<Utc>) -> Option<ObserverReport> {
        if !self.caught_up {
            return None;
        }
        if self.last_prune.is_none_or(|at| now - at >= Duration::seconds(10)) {
            self.measurements.prune(now);
            self.last_prune = Some(now);
        }
        let mut snapshot = self.measurements.snapshot(now);
        snapshot.metrics.partitions = self.partitions;
        let m = &snapshot.metrics;
        let input = DecisionInput {
            arrival_rate: m.arrival_rate,
            service_time_ms: m.service_time_ms,
            backlog: m.backlog,
            workers: m.workers,
            slots_per_worker: m.slots_per_worker,
            partitions: m.partitions,
            idle: snapshot.idle.clone(),
            window_filled: m.window_filled,
        };
        let decision = decide(&input, &self.params, &self.scaling, now);
        if !self.is_due(now, m.workers, &decision.action, decision.desired) {
            return None;
        }
        if decision.action != ScaleAction::None {
            self.scaling.last_action_at = Some(now);
        }
        self.published =
            Some(Published { at: now, current: m.workers, desired: decision.desired, params: self.params.clone() });
        Some(ObserverReport {
            version: SCHEMA_VERSION,
            observer_id: self.id.clone(),
            at: now,
            current_workers: m.workers,
            desired_workers: decision.desired,
            action: decision.action,
            remove: decision.remove,
            reason: decision.reason,
            predicted_response_ms: decision.predicted_ms,
            params: self.params.clone(),
            metrics: snapshot.metrics,
        })
    }

    fn is_due(&self, now: DateTime<Utc>, current: u32, action: &ScaleAction, desired: u32) -> bool {
        let Some(last) = &self.published else { return true };
        *action != ScaleAction::None
            || last.current != current
            || last.desired != desired
            || last.params != self.params
            || now - last.at >= Duration::seconds(self.params.interval_secs as i64)
    }
}

#[cfg(test)]
mod tests;

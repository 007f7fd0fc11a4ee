//! How many workers: the smallest count whose predicted response time meets the
//! target and whose capacity works off the backlog within the drain horizon.
//!
//! Around that core, four rules keep the count from flapping: scale in only to a
//! count that would meet a stricter target (hysteresis), only once the rate window
//! is covered by observation, only while no job waits, and never within a cooldown
//! of the last action. Removal names only idle workers.

use chrono::{DateTime, Duration, Utc};
use gitfaas_common::observer::{ObserverParams, ScaleAction, TargetStatistic};

use crate::queueing::{MMc, Partitioned};

/// What the decision looks at, taken from a [`crate::measure::Snapshot`].
#[derive(Clone, Debug, Default)]
pub struct DecisionInput {
    pub arrival_rate: f64,
    /// Mean run time of a job; none until one finished.
    pub service_time_ms: Option<f64>,
    pub backlog: u64,
    /// Live workers taking jobs.
    pub workers: u32,
    pub slots_per_worker: u32,
    /// Partitions of the jobs topic: more workers than these get no jobs. None:
    /// model the workers as one pooled queue.
    pub partitions: Option<u32>,
    /// Live workers with nothing running.
    pub idle: Vec<String>,
    pub window_filled: bool,
}

/// When the last add or remove was decided.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScalingState {
    pub last_action_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub desired: u32,
    pub action: ScaleAction,
    pub remove: Vec<String>,
    pub reason: String,
    /// Response time (of the target statistic) predicted at `desired`, ms.
    pub predicted_ms: Option<f64>,
}

/// The model's response time of `statistic` with `workers` workers, in ms.
pub fn predict_ms(input: &DecisionInput, workers: u32, statistic: TargetStatistic) -> Option<f64> {
    let service_ms = input.service_time_ms.filter(|&ms| ms > 0.0)?;
    let (lambda, mu, slots) = (input.arrival_rate, 1000.0 / service_ms, input.slots_per_worker.max(1));
    let seconds = match (input.partitions, statistic) {
        (Some(partitions), TargetStatistic::Mean) => {
            Partitioned { lambda, mu, slots, workers, partitions }.mean_response()
        }
        (Some(partitions), TargetStatistic::P95) => {
            Partitioned { lambda, mu, slots, workers, partitions }.response_quantile(0.95)
        }
        (None, TargetStatistic::Mean) => MMc::new(lambda, mu, workers * slots).mean_response(),
        (None, TargetStatistic::P95) => MMc::new(lambda, mu, workers * slots).response_quantile(0.95),
    };
    Some(seconds * 1000.0)
}

/// The response time of `statistic` with no queueing at all: no worker count beats it.
fn service_floor_ms(service_ms: f64, statistic: TargetStatistic) -> f64 {
    match statistic {
        TargetStatistic::Mean => service_ms,
        TargetStatistic::P95 => 20f64.ln() * service_ms, // p95 of an exponential
    }
}

/// The smallest worker count in `[floor, max]` predicted to meet `target_ms` and
/// to drain the backlog in time. When none does: the most that can help (false).
fn smallest_count(input: &DecisionInput, params: &ObserverParams, floor: u32, target_ms: f64) -> (u32, bool) {
    // workers beyond the partition count get no jobs and add no capacity
    let useful = params.max_workers.min(input.partitions.unwrap_or(u32::MAX)).max(floor);
    let service_ms = input.service_time_ms.unwrap_or(f64::INFINITY);
    let per_worker = f64::from(input.slots_per_worker.max(1)) * 1000.0 / service_ms;
    let drain = input.arrival_rate + input.backlog as f64 / params.drain_horizon_secs as f64;
    let for_drain = ((drain / per_worker).ceil() as u32).min(useful);
    (floor.max(for_drain)..=useful)
        .find(|&workers| {
            input.arrival_rate == 0.0
                || predict_ms(input, workers, params.target_statistic).is_some_and(|ms| ms <= target_ms)
        })
        .map_or((useful, false), |workers| (workers, true))
}

fn in_cooldown(state: &ScalingState, now: DateTime<Utc>, secs: u64) -> bool {
    state.last_action_at.is_some_and(|at| now - at < Duration::seconds(secs as i64))
}

pub fn decide(input: &DecisionInput, params: &ObserverParams, state: &ScalingState, now: DateTime<Utc>) -> Decision {
    let current = input.workers;
    let busy = input.arrival_rate > 0.0 || input.backlog > 0;
    let floor = params.min_workers.max(u32::from(busy));
    let (wanted, strict_wanted, why) = match input.service_time_ms.filter(|&ms| ms > 0.0) {
        None if busy => {
            let keep = current.clamp(floor, params.max_workers);
            (keep, keep, "no service time measured yet".to_owned())
        }
        None => (params.min_workers, params.min_workers, "no load".to_owned()),
        Some(service_ms) => {
            let floor_ms = service_floor_ms(service_ms, params.target_statistic);
            let target = params.target_response_ms as f64;
            let mut why = String::new();
            if floor_ms * 1.1 > target {
                why = format!("target {target:.0} ms is below the service time alone ({floor_ms:.0} ms); ");
            }
            // below the floor more workers do not help: size for little queueing instead
            let target = target.max(floor_ms * 1.1);
            let (wanted, reachable) = smallest_count(input, params, floor, target);
            let strict = target * (1.0 - params.hysteresis);
            let (strict_wanted, _) = smallest_count(input, params, floor, strict.max(floor_ms * 1.1));
            why += &if reachable {
                format!("{} workers meet the target", wanted)
            } else {
                format!("target unreachable with the {wanted} workers that can help")
            };
            (wanted, strict_wanted.max(wanted), why)
        }
    };
    let predicted = |workers: u32| predict_ms(input, workers, params.target_statistic).filter(|ms| ms.is_finite());
    // `desired` is what the measurements ask for even when nothing is done about it yet
    let none = |desired: u32, reason: String| Decision {
        desired,
        action: ScaleAction::None,
        remove: vec![],
        reason,
        predicted_ms: predicted(current),
    };

    if wanted > current {
        if in_cooldown(state, now, params.scale_out_cooldown_secs) {
            return none(wanted, format!("{why}; scale-out cooldown"));
        }
        let reason = format!("{why}; have {current}, backlog {}", input.backlog);
        return Decision {
            desired: wanted,
            action: ScaleAction::Add,
            remove: vec![],
            reason,
            predicted_ms: predicted(wanted),
        };
    }
    // hysteresis: remove only down to what would meet the stricter target
    let target_in = strict_wanted.max(params.min_workers);
    if target_in >= current {
        return none(current, format!("{why}; keeping {current}"));
    }
    if !input.window_filled {
        return none(current, format!("{why}; rate window not yet covered, not scaling in"));
    }
    // the steady-state model does not see a queue that is there now: while jobs
    // wait, the capacity is still in use (a dip of the measured rate is not enough)
    if input.backlog > 0 {
        return none(current, format!("{why}; {} jobs waiting, not scaling in", input.backlog));
    }
    if in_cooldown(state, now, params.scale_in_cooldown_secs) {
        return none(target_in, format!("{why}; scale-in cooldown"));
    }
    let mut idle = input.idle.clone();
    idle.sort_unstable_by(|a, b| b.cmp(a)); // newest-numbered first, a stable choice
    idle.truncate((current - target_in) as usize);
    if idle.is_empty() {
        return none(target_in, format!("{why}; {target_in} would do but no worker is idle"));
    }
    let desired = current - idle.len() as u32;
    let reason = format!("{why}; {current} is more than needed ({target_in})");
    Decision { desired, action: ScaleAction::Remove, remove: idle, reason, predicted_ms: predicted(desired) }
}

#[cfg(test)]
mod tests;

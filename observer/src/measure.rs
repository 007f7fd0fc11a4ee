//! What the observer knows about the traffic: arrivals, completions, the state of
//! every recent job (for the backlog and for spotting duplicates) and the latest
//! heartbeat of every executor.
//!
//! Every method takes the time explicitly, so tests drive it with a synthetic
//! clock. Times are event times from the messages (`submitted_at`, `finished_at`,
//! a heartbeat's `at`), not the time the observer happened to read them: a replay
//! after a restart rebuilds the same windows. `seen_at` is when the broker got the
//! message; a message whose event time was already out of its window by then is
//! counted as late.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use gitfaas_common::observer::{
    Anomalies, ExecutorHeartbeat, ExecutorState, FeedBeacon, LatencyStats, Metrics, TriggerLoad, WorkerView,
};
use gitfaas_common::{Job, JobEvent, JobId};

use crate::window::{latency_stats, TimeWindow};

/// Spans of the windows and of what is remembered.
#[derive(Clone, Copy, Debug)]
pub struct Spans {
    pub rate_window: Duration,
    pub latency_window: Duration,
    /// Jobs and results older than this are forgotten (and no longer deduplicated).
    pub memory: Duration,
    /// A worker without a heartbeat for this long is gone.
    pub worker_timeout: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Completion {
    queue_ms: f64,
    run_ms: f64,
    total_ms: f64,
    /// False for results of jobs that never started (refused before running).
    ran: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Unknown,
    Queued,
    Running,
    Done,
}

#[derive(Clone, Copy, Debug, Default)]
struct Track {
    submitted: bool,
    started: bool,
    finished: bool,
    touched: Option<DateTime<Utc>>,
}

impl Track {
    fn phase(&self) -> Phase {
        match (self.submitted, self.started, self.finished) {
            (_, _, true) => Phase::Done,
            (_, true, false) => Phase::Running,
            (true, false, false) => Phase::Queued,
            (false, false, false) => Phase::Unknown,
        }
    }
}

/// The measured state, plus what the decision needs beyond [`Metrics`].
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub metrics: Metrics,
    /// Live workers with nothing running, safe to name for removal.
    pub idle: Vec<String>,
}

#[derive(Debug)]
pub struct Measurements {
    spans: Spans,
    /// Events before this time are not known to the observer.
    observed_since: DateTime<Utc>,
    arrivals: TimeWindow<()>,
    completions: TimeWindow<Completion>,
    /// By job id and attempt: a retry is a new arrival, a redelivery a duplicate.
    jobs: HashMap<(JobId, u32), Track>,
    num_queued: u64,
    num_running: u64,
    executors: BTreeMap<String, WorkerView>,
    /// Mean service time of the last window that had one, for quiet windows.
    last_service_ms: Option<f64>,
    default_slots: u32,
    /// Each frontend's last beacon: when, and its topic triggers' load.
    frontends: BTreeMap<String, (DateTime<Utc>, Vec<TriggerLoad>)>,
    pub anomalies: Anomalies,
}

impl Measurements {
    pub fn new(spans: Spans, observed_since: DateTime<Utc>, default_slots: u32) -> Self {
        Self {
            spans,
            observed_since,
            arrivals: TimeWindow::default(),
            completions: TimeWindow::default(),
            jobs: HashMap::new(),
            num_queued: 0,
            num_running: 0,
            executors: BTreeMap::new(),
            last_service_ms: None,
            default_slots,
            frontends: BTreeMap::new(),
            anomalies: Anomalies::default(),
        }
    }

    pub fn set_windows(&mut self, rate_window: Duration, latency_window: Duration) {
        self.spans.rate_window = rate_window;
        self.spans.latency_window = latency_window;
    }

    /// Applies `change` to the job's track, keeping the queued/running counts;
    /// false when the job already had that step (a duplicate).
    fn step(&mut self, key: (JobId, u32), at: DateTime<Utc>, change: impl FnOnce(&mut Track) -> bool) -> bool {
        let track = self.jobs.entry(key).or_default();
        let before = track.phase();
        if !change(track) {
            self.anomalies.duplicates += 1;
            return false;
        }
        track.touched = Some(track.touched.map_or(at, |t| t.max(at)));
        let after = track.phase();
        for (phase, delta) in [(before, -1i64), (after, 1)] {
            let counter = match phase {
                Phase::Queued => &mut self.num_queued,
                Phase::Running => &mut self.num_running,
                Phase::Unknown | Phase::Done => continue,
            };
            *counter = counter.saturating_add_signed(delta);
        }
        true
    }

    fn check_late(&mut self, event_at: DateTime<Utc>, seen_at: DateTime<Utc>, window: Duration) {
        if event_at < seen_at - window {
            self.anomalies.late += 1;
        }
    }

    pub fn job_submitted(&mut self, job: &Job, seen_at: DateTime<Utc>) {
        if job.submitted_at < seen_at - self.spans.memory {
            return; // older than anything remembered: could not be deduplicated
        }
        if self.step((job.id, job.attempt), job.submitted_at, |t| !std::mem::replace(&mut t.submitted, true)) {
            self.check_late(job.submitted_at, seen_at, self.spans.rate_window);
            self.arrivals.insert(job.submitted_at, ());
        }
    }

    pub fn job_event(&mut self, event: &JobEvent, seen_at: DateTime<Utc>) {
        match event {
            JobEvent::Started(started) => {
                if started.started_at < seen_at - self.spans.memory {
                    return;
                }
                let key = (started.job_id, started.attempt);
                self.step(key, started.started_at, |t| !t.finished && !std::mem::replace(&mut t.started, true));
            }
            JobEvent::Finished(result) => {
                if result.finished_at < seen_at - self.spans.memory {
                    return;
                }
                let key = (result.job_id, result.attempt);
                if self.step(key, result.finished_at, |t| !std::mem::replace(&mut t.finished, true)) {
                    self.check_late(result.finished_at, seen_at, self.spans.rate_window);
                    let t = result.timings;
                    let completion = Completion {
                        queue_ms: t.queue_ms as f64,
                        run_ms: t.run_ms as f64,
                        total_ms: t.total_ms as f64,
                        ran: result.started_at.is_some(),
                    };
                    self.completions.insert(result.finished_at, completion);
                }
            }
        }
    }

    /// A frontend's beacon: its topic triggers' load replaces what it said before.
    pub fn beacon(&mut self, beacon: &FeedBeacon) {
        let newer = self.frontends.get(&beacon.from).is_none_or(|(at, _)| *at <= beacon.at);
        if newer {
            self.frontends.insert(beacon.from.clone(), (beacon.at, beacon.triggers.clone()));
        }
    }

    /// The topic triggers' load summed over the frontends heard from lately.
    fn trigger_loads(&self, now: DateTime<Utc>) -> Vec<TriggerLoad> {
        let since = now - self.spans.worker_timeout;
        let mut sums: BTreeMap<&str, TriggerLoad> = BTreeMap::new();
        for load in self.frontends.values().filter(|(at, _)| *at >= since).flat_map(|(_, loads)| loads) {
            let sum = sums.entry(&load.trigger).or_insert_with(|| TriggerLoad {
                lag: 0,
                in_flight: 0,
                concurrency: 0,
                ..load.clone()
            });
            sum.lag += load.lag;
            sum.in_flight += load.in_flight;
            sum.concurrency += load.concurrency;
        }
        sums.into_values().collect()
    }

    pub fn heartbeat(&mut self, heartbeat: &ExecutorHeartbeat) {
        let view = WorkerView {
            executor_id: heartbeat.executor_id.clone(),
            slots: heartbeat.slots,
            busy: heartbeat.busy,
            state: heartbeat.state,
            last_seen: heartbeat.at,
        };
        match self.executors.get(&heartbeat.executor_id) {
            // an older heartbeat must not bring back a worker that said it stopped
            Some(known) if known.last_seen >= heartbeat.at => {}
            _ => {
                self.executors.insert(heartbeat.executor_id.clone(), view);
            }
        }
    }

    /// Forgets what no window or deduplication needs any more.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let s = self.spans;
        let keep = s.rate_window.max(s.latency_window).max(s.memory);
        self.arrivals.prune(now - s.rate_window.max(s.latency_window));
        self.completions.prune(now - s.rate_window.max(s.latency_window));
        let forget = now - keep;
        let (mut queued, mut running) = (0, 0);
        self.jobs.retain(|_, track| {
            let keep = track.touched.is_some_and(|t| t >= forget);
            if keep {
                match track.phase() {
                    Phase::Queued => queued += 1,
                    Phase::Running => running += 1,
                    Phase::Unknown | Phase::Done => {}
                }
            }
            keep
        });
        (self.num_queued, self.num_running) = (queued, running);
        let gone = now - s.worker_timeout * 10;
        self.executors.retain(|_, w| w.last_seen >= gone);
    }

    pub fn live_workers(&self, now: DateTime<Utc>) -> impl Iterator<Item = &WorkerView> {
        let since = now - self.spans.worker_timeout;
        self.executors.values().filter(move |w| w.last_seen >= since && w.state == ExecutorState::Running)
    }

    pub fn snapshot(&mut self, now: DateTime<Utc>) -> Snapshot {
        let s = self.spans;
        let arrival_rate = self.arrivals.rate(now, s.rate_window);
        let completion_rate = self.completions.rate(now, s.rate_window);
        let recent: Vec<Completion> = self.completions.within(now, s.latency_window).copied().collect();
        let run = latency_stats(recent.iter().filter(|c| c.ran).map(|c| c.run_ms));
        if let Some(run) = run {
            self.last_service_ms = Some(run.mean_ms);
        }
        let service_time_ms = self.last_service_ms;
        let waiting = latency_stats(recent.iter().map(|c| c.queue_ms));
        let response: Option<LatencyStats> = latency_stats(recent.iter().map(|c| c.total_ms));

        let live: Vec<&WorkerView> = self.live_workers(now).collect();
        let workers = live.len() as u32;
        let slots_per_worker = match workers {
            0 => self.default_slots,
            n => (live.iter().map(|w| w.slots).sum::<u32>() as f64 / f64::from(n)).round().max(1.0) as u32,
        };
        let idle = live.iter().filter(|w| w.busy == 0).map(|w| w.executor_id.clone()).collect();
        let service_rate_per_worker =
            service_time_ms.filter(|&ms| ms > 0.0).map(|ms| f64::from(slots_per_worker) * 1000.0 / ms);
        let utilisation =
            service_rate_per_worker.filter(|_| workers > 0).map(|mu| arrival_rate / (f64::from(workers) * mu));
        let since = now - self.spans.worker_timeout * 10;
        let executors = self.executors.values().filter(|w| w.last_seen >= since).cloned().collect();
        let metrics = Metrics {
            arrival_rate,
            completion_rate,
            service_time_ms,
            service_rate_per_worker,
            utilisation,
            backlog: self.num_queued,
            running: self.num_running,
            waiting,
            response,
            workers,
            slots_per_worker,
            partitions: None,
            window_filled: now - self.observed_since >= s.rate_window,
            executors,
            anomalies: self.anomalies,
            triggers: self.trigger_loads(now),
        };
        Snapshot { metrics, idle }
    }
}

#[cfg(test)]
mod tests;

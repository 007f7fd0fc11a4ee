//! Ends at-most-once jobs whose executor was lost while they ran. Such a job is
//! never run again (its start was committed), so without this it would stay
//! `running` for ever: a job `running` on an executor that sent no heartbeat for
//! `executor_lost_after_secs`, that announced it stopped, or whose process started
//! after the job did (a restart under the same id) ends `failed` with
//! [`EXECUTOR_LOST`](gitfaas_common::schema::EXECUTOR_LOST).
//!
//! The result goes out on the results topic only, and reaches the store through
//! it: a result the executor published first is ahead of it on the job's
//! partition and wins; a duplicate (another frontend instance, or the executor's
//! own `executor lost` after a revocation) changes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gitfaas_common::observer::{ExecutorHeartbeat, ExecutorState, HEARTBEAT_EVERY};
use gitfaas_common::schema::Delivery;
use gitfaas_common::{JobResult, JobStatus};
use tokio_util::sync::CancellationToken;

use crate::ending::{attempt_of, ResultPublisher, FRONTEND_EXECUTOR_ID};
use crate::store::{JobRecord, JobStore};

/// A stopped executor's running jobs are lost this soon (its last results are
/// on the topic before its `stopped` heartbeat; this lets them be read first).
const STOPPED_GRACE: Duration = Duration::from_secs(2);

/// Every frontend's beacon comes back every [`HEARTBEAT_EVERY`]: a longer
/// silence of the whole observer topic is an outage of the feed (a broker
/// restart, this frontend cut off), during which no executor is judged, and
/// which counts against none of them once the feed is back.
const FEED_GAP: Duration = HEARTBEAT_EVERY.saturating_mul(2);

/// The last sign of life of each executor this frontend heard of.
#[derive(Debug)]
pub struct Liveness {
    /// When this frontend first read the observer topic: an executor never heard
    /// of since counts from then (none yet: the consumer may still be joining, and
    /// no executor counts as lost).
    listening_since: Option<Instant>,
    /// When the last message of any kind was read.
    last_read: Option<Instant>,
    seen: HashMap<String, Sign>,
}

#[derive(Debug)]
struct Sign {
    at: Instant,
    stopped: bool,
    process_since: Option<DateTime<Utc>>,
}

pub type SharedLiveness = Arc<Mutex<Liveness>>;

impl Liveness {
    pub fn new() -> Self {
        Self { listening_since: None, last_read: None, seen: HashMap::new() }
    }

    /// Any message read from the observer topic: the feed is live. After an
    /// outage of the feed, every executor's silence is counted from its end.
    pub fn listening(&mut self, now: Instant) {
        if let Some(gap) = self.last_read.map(|last| now.saturating_duration_since(last)) {
            if gap > FEED_GAP {
                let outage = gap - HEARTBEAT_EVERY;
                tracing::info!(outage_ms = outage.as_millis() as u64, "observer feed back after an outage");
                for sign in self.seen.values_mut() {
                    sign.at += outage;
                }
                if let Some(since) = self.listening_since.as_mut() {
                    *since += outage;
                }
            }
        }
        self.listening_since.get_or_insert(now);
        self.last_read = Some(now);
    }

    pub fn heard(&mut self, heartbeat: &ExecutorHeartbeat, now: Instant) {
        self.listening(now);
        let sign = Sign { at: now, stopped: heartbeat.state == ExecutorState::Stopped, process_since: heartbeat.since };
        self.seen.insert(heartbeat.executor_id.clone(), sign);
    }

    /// Whether executor `id`, which started a job at `started_at`, is lost.
    /// Never while the feed itself is silent.
    pub fn lost(&self, id: &str, started_at: Option<DateTime<Utc>>, now: Instant, bound: Duration) -> bool {
        if self.last_read.is_none_or(|last| now.saturating_duration_since(last) > FEED_GAP) {
            return false;
        }
        let Some(sign) = self.seen.get(id) else {
            return self.listening_since.is_some_and(|since| now.saturating_duration_since(since) > bound);
        };
        if sign.process_since.zip(started_at).is_some_and(|(since, started)| since > started) {
            return true; // a new process under the same id: the one that ran the job is gone
        }
        let quiet = now.saturating_duration_since(sign.at);
        quiet > if sign.stopped { STOPPED_GRACE.min(bound) } else { bound }
    }
}

/// The `executor lost` result of `record` if it is an at-most-once job running on
/// a lost executor.
pub fn lost_result(record: &JobRecord, liveness: &Liveness, now: Instant, bound: Duration) -> Option<JobResult> {
    let job = record.job.as_ref()?;
    let executor = record.executor_id.as_deref()?;
    if record.status != JobStatus::Running
        || job.spec.delivery != Delivery::AtMostOnce
        || executor == FRONTEND_EXECUTOR_ID
    {
        return None;
    }
    let started_at =
        record.started_at.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
    if !liveness.lost(executor, started_at, now, bound) {
        return None;
    }
    let attempt = attempt_of(record);
    Some(JobResult::executor_lost(&match started_at {
        Some(at) => attempt.started(at),
        None => attempt,
    }))
}

/// Every heartbeat interval, ends the running at-most-once jobs of lost executors.
pub async fn watch(
    store: JobStore,
    results: ResultPublisher,
    liveness: SharedLiveness,
    bound: Duration,
    shutdown: CancellationToken,
) {
    let mut published: HashSet<gitfaas_common::JobId> = HashSet::new();
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let ids = match store.active_ids().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "listing active jobs failed");
                continue;
            }
        };
        let active: HashSet<_> = ids.iter().copied().collect();
        published.retain(|id| active.contains(id));
        let unpublished: Vec<_> = ids.into_iter().filter(|id| !published.contains(id)).collect();
        for id in unpublished {
            let Ok(Some(record)) = store.get(id).await else { continue };
            let result = lost_result(&record, &liveness.lock().expect("liveness lock"), Instant::now(), bound);
            let Some(result) = result else { continue };
            let executor_id = record.executor_id.as_deref().unwrap_or_default();
            tracing::warn!(job_id = %id, executor_id, "at-most-once job lost with its executor");
            match results.publish(&result).await {
                Ok(()) => {
                    published.insert(id);
                }
                Err(error) => tracing::warn!(job_id = %id, %error, "executor lost result not published"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfaas_common::schema::SCHEMA_VERSION;

    fn beat(state: ExecutorState, since: DateTime<Utc>) -> ExecutorHeartbeat {
        let (executor_id, at, unsettled) = ("e".to_owned(), Utc::now(), Vec::new());
        ExecutorHeartbeat {
            version: SCHEMA_VERSION,
            executor_id,
            slots: 1,
            busy: 1,
            state,
            at,
            unsettled,
            since: Some(since),
        }
    }

    /// `liveness` with the feed live (a beacon read) every second from `from` to `to`.
    fn beacons(liveness: &mut Liveness, t0: Instant, from: u64, to: u64) {
        (from..=to).for_each(|t| liveness.listening(t0 + Duration::from_secs(t)));
    }

    #[test]
    fn an_executor_is_lost_after_the_bound_without_heartbeats_soon_after_it_stopped_or_once_it_restarted() {
        let (t0, bound, started) = (Instant::now(), Duration::from_secs(6), Utc::now());
        let s = Duration::from_secs;
        let mut liveness = Liveness::new();
        assert!(!liveness.lost("e", Some(started), t0 + s(60), bound), "the feed is not live yet");
        beacons(&mut liveness, t0, 0, 5);
        assert!(!liveness.lost("e", Some(started), t0 + s(5), bound), "never heard of: counted from the start");
        beacons(&mut liveness, t0, 6, 7);
        assert!(liveness.lost("e", Some(started), t0 + s(7), bound));
        beacons(&mut liveness, t0, 8, 10);
        liveness.heard(&beat(ExecutorState::Running, started - chrono::Duration::seconds(60)), t0 + s(10));
        beacons(&mut liveness, t0, 11, 15);
        assert!(!liveness.lost("e", Some(started), t0 + s(15), bound), "heard within the bound");
        beacons(&mut liveness, t0, 16, 17);
        assert!(liveness.lost("e", Some(started), t0 + s(17), bound), "silent past the bound");
        beacons(&mut liveness, t0, 18, 20);
        liveness.heard(&beat(ExecutorState::Stopped, started - chrono::Duration::seconds(60)), t0 + s(20));
        beacons(&mut liveness, t0, 21, 21);
        assert!(!liveness.lost("e", Some(started), t0 + s(21), bound));
        beacons(&mut liveness, t0, 22, 23);
        assert!(liveness.lost("e", Some(started), t0 + s(23), bound), "stopped: lost after the short grace");
        beacons(&mut liveness, t0, 24, 30);
        liveness.heard(&beat(ExecutorState::Running, started + chrono::Duration::seconds(1)), t0 + s(30));
        assert!(liveness.lost("e", Some(started), t0 + s(30), bound), "a new process of the same id");
        let later = started + chrono::Duration::seconds(2);
        assert!(!liveness.lost("e", Some(later), t0 + s(30), bound), "its own jobs are not lost");
    }

    #[test]
    fn an_outage_of_the_feed_counts_against_no_executor() {
        let (t0, bound, started) = (Instant::now(), Duration::from_secs(6), Utc::now());
        let s = Duration::from_secs;
        let mut liveness = Liveness::new();
        beacons(&mut liveness, t0, 0, 2);
        liveness.heard(&beat(ExecutorState::Running, started - chrono::Duration::seconds(60)), t0 + s(2));
        // the broker is down from 2 s to 20 s: nothing is read
        assert!(!liveness.lost("e", Some(started), t0 + s(12), bound), "the feed is silent: nobody is judged");
        beacons(&mut liveness, t0, 20, 23);
        assert!(!liveness.lost("e", Some(started), t0 + s(23), bound), "the outage counts against nobody");
        liveness.heard(&beat(ExecutorState::Running, started - chrono::Duration::seconds(60)), t0 + s(23));
        beacons(&mut liveness, t0, 24, 28);
        assert!(!liveness.lost("e", Some(started), t0 + s(28), bound), "heard since the outage");
        // an executor that died in the outage: its silence counts from the feed's return
        let mut dead = Liveness::new();
        beacons(&mut dead, t0, 0, 2);
        dead.heard(&beat(ExecutorState::Running, started - chrono::Duration::seconds(60)), t0 + s(2));
        beacons(&mut dead, t0, 20, 24);
        assert!(!dead.lost("e", Some(started), t0 + s(24), bound), "not yet a bound of live feed since");
        beacons(&mut dead, t0, 25, 28);
        assert!(dead.lost("e", Some(started), t0 + s(28), bound), "silent for the bound after the outage");
    }
}

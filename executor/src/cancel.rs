//! Stopping jobs before they finish: cancel requests from owners, and jobs given up
//! because their partition was revoked.
//!
//! [`Controls`] knows the jobs this executor is running (a token each) and every
//! cancel request seen on the control topic over the last `lookback`. A request for
//! a running job kills its container; a request seen before a job starts keeps it
//! from running at all. [`follow`] feeds the requests in, starting `lookback` back
//! in time, so that an executor started after the request still honours it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use gitfaas_common::control::{CancelRequest, ControlMessage};
use gitfaas_common::kafka::{decode, CatchUp, Inbox};
use gitfaas_common::JobId;
use rdkafka::message::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::offsets::TopicPartition;

/// Why a job was stopped from outside.
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// Its owner cancelled it.
    Cancelled(CancelRequest),
    /// Its partition went to another executor, which will run it again: this run
    /// publishes nothing. (A run whose at-most-once start is durable is never
    /// abandoned: nobody runs it again, so it goes on and publishes its result.)
    Abandoned,
}

struct Running {
    job_id: JobId,
    partition: TopicPartition,
    token: CancellationToken,
    abandoned: Arc<AtomicBool>,
    durable: Arc<AtomicBool>,
}

#[derive(Default)]
struct Inner {
    requests: HashMap<JobId, CancelRequest>,
    running: HashMap<u64, Running>,
}

pub struct Controls {
    inner: Mutex<Inner>,
    next: AtomicU64,
    lookback: chrono::Duration,
}

/// A running job's registration; dropping it forgets the job.
pub struct RunGuard {
    controls: Arc<Controls>,
    key: u64,
    job_id: JobId,
    token: CancellationToken,
    abandoned: Arc<AtomicBool>,
    durable: Arc<AtomicBool>,
}

impl RunGuard {
    /// The run's at-most-once start is committed: no other executor will run the
    /// job, so losing its partition no longer stops it.
    pub fn mark_durable(&self) {
        self.durable.store(true, Ordering::SeqCst);
    }

    /// Cancelled when the job must stop (cancel request or abandonment).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Why the job was stopped, if it was.
    pub fn stop(&self) -> Option<Stop> {
        if self.abandoned.load(Ordering::SeqCst) {
            return Some(Stop::Abandoned);
        }
        if !self.token.is_cancelled() {
            return None;
        }
        self.controls.requested(self.job_id).map(Stop::Cancelled)
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.controls.lock().running.remove(&self.key);
    }
}

/// Whether a job may start.
pub enum Admission {
    Run(RunGuard),
    Cancelled(CancelRequest),
}

impl Controls {
    pub fn new(lookback: Duration) -> Arc<Self> {
        let lookback = chrono::Duration::from_std(lookback).unwrap_or(chrono::Duration::MAX);
        Arc::new(Self { inner: Mutex::default(), next: AtomicU64::new(0), lookback })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("controls lock")
    }

    /// Registers a job about to run from `partition`, unless it was cancelled.
    pub fn admit(self: &Arc<Self>, job_id: JobId, partition: TopicPartition) -> Admission {
        let mut inner = self.lock();
        if let Some(request) = inner.requests.get(&job_id) {
            return Admission::Cancelled(request.clone());
        }
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let (token, abandoned) = (CancellationToken::new(), Arc::new(AtomicBool::new(false)));
        let durable = Arc::new(AtomicBool::new(false));
        let running =
            Running { job_id, partition, token: token.clone(), abandoned: abandoned.clone(), durable: durable.clone() };
        inner.running.insert(key, running);
        Admission::Run(RunGuard { controls: self.clone(), key, job_id, token, abandoned, durable })
    }

    /// Records a cancel request and stops the job if it runs here. Returns how
    /// many runs it stopped.
    pub fn request(&self, request: CancelRequest) -> usize {
        let mut inner = self.lock();
        let horizon = Utc::now() - self.lookback;
        inner.requests.retain(|_, r| r.requested_at >= horizon);
        let mut stopped = 0;
        for running in inner.running.values().filter(|r| r.job_id == request.job_id) {
            running.token.cancel();
            stopped += 1;
        }
        inner.requests.entry(request.job_id).or_insert(request);
        stopped
    }

    pub fn requested(&self, job_id: JobId) -> Option<CancelRequest> {
        self.lock().requests.get(&job_id).cloned()
    }

    /// Jobs running from these partitions that their next owner would run again
    /// (not those with a durable at-most-once start).
    pub fn running_on(&self, partitions: &[TopicPartition]) -> usize {
        self.lock().running.values().filter(|r| Self::moves_with(r, partitions)).count()
    }

    fn moves_with(running: &Running, partitions: &[TopicPartition]) -> bool {
        partitions.contains(&running.partition) && !running.durable.load(Ordering::SeqCst)
    }

    /// Stops the jobs running from these partitions without a result: their new
    /// owner runs them again. Returns how many. Runs with a durable at-most-once
    /// start go on: their offset is committed and nobody else will run them.
    pub fn abandon(&self, partitions: &[TopicPartition]) -> usize {
        let inner = self.lock();
        let mut abandoned = 0;
        for running in inner.running.values().filter(|r| Self::moves_with(r, partitions)) {
            running.abandoned.store(true, Ordering::SeqCst);
            running.token.cancel();
            abandoned += 1;
        }
        abandoned
    }
}

/// Feeds cancel requests from `inbox` into `controls` until `stop`. `catch_up`
/// says where the partitions ended when assigned: `ready` turns true once they are
/// read up to there, or after a quiet spell, so a broker that under-reports never
/// blocks the executor.
pub async fn follow(
    inbox: Inbox,
    controls: Arc<Controls>,
    mut catch_up: CatchUp,
    ready: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let quiet = Duration::from_secs(3);
    if catch_up.is_done() {
        ready.send_replace(true);
    }
    loop {
        let message = match tokio::time::timeout(quiet, inbox.next(&stop)).await {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(_) => {
                if !*ready.borrow() {
                    tracing::info!(missing = catch_up.remaining(), "cancel requests: quiet, taking them as read");
                    ready.send_replace(true);
                }
                continue;
            }
        };
        if let Ok(ControlMessage::Cancel(request)) = decode::<ControlMessage>(message.payload().unwrap_or_default()) {
            let job_id = request.job_id;
            let stopped = controls.request(request);
            tracing::info!(%job_id, stopped, "cancel request");
        }
        if catch_up.advance(&message) && !*ready.borrow() {
            tracing::info!("cancel requests read up to now");
            ready.send_replace(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfaas_common::schema::SCHEMA_VERSION;

    fn request(job_id: JobId, age_secs: i64) -> CancelRequest {
        CancelRequest {
            version: SCHEMA_VERSION,
            job_id,
            owner: "alice".into(),
            requested_at: Utc::now() - chrono::Duration::seconds(age_secs),
            result_published: false,
        }
    }

    fn tp(partition: i32) -> TopicPartition {
        ("jobs".to_owned(), partition)
    }

    #[test]
    fn a_request_stops_the_running_job_and_keeps_later_copies_from_starting() {
        let controls = Controls::new(Duration::from_secs(60));
        let (job, other) = (JobId::new(), JobId::new());
        let Admission::Run(guard) = controls.admit(job, tp(0)) else { panic!("not cancelled yet") };
        let Admission::Run(bystander) = controls.admit(other, tp(0)) else { panic!("not cancelled") };
        assert_eq!(controls.request(request(job, 0)), 1);
        assert!(guard.token().is_cancelled());
        assert!(matches!(guard.stop(), Some(Stop::Cancelled(r)) if r.job_id == job));
        assert!(!bystander.token().is_cancelled() && bystander.stop().is_none());
        assert!(matches!(controls.admit(job, tp(0)), Admission::Cancelled(_)), "a redelivered copy does not run");
    }

    #[test]
    fn abandoning_a_partition_stops_only_its_jobs_and_says_why() {
        let controls = Controls::new(Duration::from_secs(60));
        let Admission::Run(on_1) = controls.admit(JobId::new(), tp(1)) else { panic!() };
        let Admission::Run(on_2) = controls.admit(JobId::new(), tp(2)) else { panic!() };
        assert_eq!(controls.running_on(&[tp(1)]), 1);
        assert_eq!(controls.abandon(&[tp(1)]), 1);
        assert_eq!(on_1.stop(), Some(Stop::Abandoned));
        assert_eq!(on_2.stop(), None);
        drop(on_1);
        assert_eq!(controls.running_on(&[tp(1), tp(2)]), 1, "a finished run is forgotten");
    }

    #[test]
    fn a_run_with_a_durable_at_most_once_start_goes_on_when_its_partition_moves() {
        let controls = Controls::new(Duration::from_secs(60));
        let Admission::Run(durable) = controls.admit(JobId::new(), tp(1)) else { panic!() };
        let Admission::Run(plain) = controls.admit(JobId::new(), tp(1)) else { panic!() };
        durable.mark_durable();
        assert_eq!(controls.running_on(&[tp(1)]), 1, "only the run the next owner repeats holds the revocation");
        assert_eq!(controls.abandon(&[tp(1)]), 1);
        assert_eq!((durable.stop(), durable.token().is_cancelled()), (None, false));
        assert_eq!(plain.stop(), Some(Stop::Abandoned));
    }

    #[test]
    fn requests_older_than_the_lookback_are_forgotten() {
        let controls = Controls::new(Duration::from_secs(60));
        let old = JobId::new();
        controls.request(request(old, 120));
        controls.request(request(JobId::new(), 0)); // pruning happens on insert
        assert!(controls.requested(old).is_none());
        assert!(matches!(controls.admit(old, tp(0)), Admission::Run(_)));
    }
}

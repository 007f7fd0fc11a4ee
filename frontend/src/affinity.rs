//! Which partition of the jobs topic a job goes to: repeated invocations of one
//! function reach the executors that hold its warm sandboxes.
//!
//! A function's jobs (same owner, repository, ref, runtime and limits — what the
//! executor's warm pool keys on, short of the commit and image, which only the
//! executor knows) go to `spread` neighbouring partitions starting at a home
//! partition derived from that identity; each job picks one of them by its id. A
//! partition is owned by one executor at a time, so a function warms at most
//! `spread` executors' pools instead of every executor's.
//!
//! The trade-off: a function's load is confined to the executors owning its
//! `spread` partitions (their slots), while other functions still spread over the
//! rest; `spread` = the partition count gives back the uniform spread (and no
//! affinity). Ordering is unchanged: each partition keeps its order and its own
//! committed offset. With `spread` 0 the broker's partitioner places jobs by their
//! key (the job id), as before.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gitfaas_common::kafka::Publisher;
use gitfaas_common::{Job, JobId};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// The partition count of the jobs topic as last read from the broker (0 while
/// unknown), shared by the request handlers.
#[derive(Clone, Default)]
pub struct Affinity {
    partitions: Arc<AtomicI32>,
    spread: u32,
}

impl Affinity {
    pub fn new(spread: u32) -> Self {
        Self { partitions: Arc::default(), spread }
    }

    pub fn set_partitions(&self, partitions: i32) {
        self.partitions.store(partitions, Ordering::Relaxed);
    }

    /// The partition for `job`, or `None` to leave it to the key.
    pub fn partition(&self, job: &Job) -> Option<i32> {
        place(&function_key(job), job.id, self.partitions.load(Ordering::Relaxed), self.spread)
    }

    /// Reads the jobs topic's partition count every minute, so that partitions an
    /// operator adds are used (a job placed by a stale count still lands on a
    /// partition that exists).
    pub async fn follow(self, publisher: Publisher, topic: String, stop: CancellationToken) {
        if self.spread == 0 {
            return;
        }
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            self.read_partitions(&publisher, &topic).await;
        }
    }

    /// Reads the partition count of `topic` once (kept as it was when unread).
    pub async fn read_partitions(&self, publisher: &Publisher, topic: &str) {
        if self.spread == 0 {
            return;
        }
        match publisher.partitions(topic, Duration::from_secs(5)).await {
            Ok(count) if count > 0 => self.set_partitions(i32::try_from(count).unwrap_or(i32::MAX)),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "jobs topic partitions not read"),
        }
    }
}

/// What makes two jobs the same function, as far as the frontend can tell.
fn function_key(job: &Job) -> [u8; 32] {
    let s = &job.spec;
    let r = &s.resources;
    let mut hash = Sha256::new();
    for part in [
        job.owner.subject.as_str(),
        s.repo.as_str(),
        s.git_ref.as_str(),
        s.runtime.as_deref().unwrap_or(""),
        &format!("{}/{}/{}/{}", r.memory_mb, r.cpu_millis, r.pids, s.timeout_secs),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

fn place(function: &[u8; 32], job: JobId, partitions: i32, spread: u32) -> Option<i32> {
    if spread == 0 || partitions <= 0 {
        return None;
    }
    let partitions = partitions as u64;
    let home = u64::from_be_bytes(function[..8].try_into().expect("8 bytes")) % partitions;
    let spread = u64::from(spread).min(partitions);
    // a hash of the id (a v7 uuid begins with its time) picks the neighbour
    let pick = u64::from_be_bytes(Sha256::digest(job.to_string().as_bytes())[..8].try_into().expect("8 bytes"));
    Some(((home + pick % spread) % partitions) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 32] {
        Sha256::digest([n]).into()
    }

    #[test]
    fn a_functions_jobs_stay_on_its_spread_of_neighbouring_partitions() {
        let f = key(1);
        let seen: std::collections::BTreeSet<i32> = (0..200).map(|_| place(&f, JobId::new(), 12, 2).unwrap()).collect();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let (a, b) = (*seen.first().unwrap(), *seen.last().unwrap());
        assert!(b == a + 1 || (a == 0 && b == 11), "neighbours: {seen:?}");
    }

    #[test]
    fn functions_spread_over_the_partitions() {
        let homes: std::collections::BTreeSet<i32> =
            (0..64).map(|n| place(&key(n), JobId::new(), 8, 1).unwrap()).collect();
        assert_eq!(homes.len(), 8, "64 functions use every one of 8 partitions");
    }

    #[test]
    fn no_spread_or_no_known_partitions_leaves_it_to_the_key() {
        assert_eq!(place(&key(1), JobId::new(), 12, 0), None);
        assert_eq!(place(&key(1), JobId::new(), 0, 2), None);
        // a spread past the partition count is every partition, each in range
        assert!((0..100).all(|_| (0..3).contains(&place(&key(2), JobId::new(), 3, 10).unwrap())));
    }
}

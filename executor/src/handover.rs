//! Taking over a partition only once its previous owner has let go of it.
//!
//! Kafka's cooperative protocol assigns a moved partition to its new owner only
//! after the old one revoked it. A broker may hand it over early — tansu 0.6 answers
//! JoinGroup without waiting for every member, so the leader assigns with stale
//! metadata — and a member that lost its session may still be working (a zombie).
//! Either way the new owner starts from a committed offset that does not yet count
//! the old owner's last jobs, and runs them a second time.
//!
//! [`Handover`] holds each newly assigned partition paused for `hold`; then the
//! executor reads the partition's committed offset afresh, seeks there and resumes.
//! Whatever the old owner finished and committed within the hold is not run again.
//! Messages of a held partition that arrive anyway are dropped (never begun): the
//! seek fetches them again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::offsets::TopicPartition;
use crate::worker::WorkerContext;

#[derive(Default)]
struct State {
    /// Held partitions and when they may be released.
    held: HashMap<TopicPartition, Instant>,
    /// True while the worker pauses every partition because all slots are busy.
    slots_full: bool,
}

pub struct Handover {
    hold: Duration,
    state: Mutex<State>,
}

impl Handover {
    pub fn new(hold: Duration) -> Self {
        Self { hold, state: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("handover lock")
    }

    /// Called with newly assigned partitions: they are paused and held, or, without
    /// a hold, resumed (a partition keeps the paused flag it had when it was revoked).
    pub fn assigned(&self, consumer: &impl Consumer<WorkerContext>, list: &TopicPartitionList) {
        let result = if self.hold.is_zero() {
            consumer.resume(list)
        } else {
            let until = Instant::now() + self.hold;
            let mut state = self.lock();
            for e in list.elements() {
                state.held.insert((e.topic().to_owned(), e.partition()), until);
            }
            consumer.pause(list)
        };
        if let Err(error) = result {
            tracing::warn!(%error, "pausing or resuming assigned partitions failed");
        }
    }

    /// Called with revoked partitions: a hold on them ends without a release.
    pub fn revoked(&self, partitions: &[TopicPartition]) {
        let mut state = self.lock();
        for tp in partitions {
            state.held.remove(tp);
        }
    }

    pub fn is_held(&self, tp: &TopicPartition) -> bool {
        self.lock().held.contains_key(tp)
    }

    /// Pauses or resumes the whole assignment for want of slots; held partitions
    /// stay paused.
    pub fn set_slots_full(&self, consumer: &impl Consumer<WorkerContext>, full: bool) {
        let Ok(assignment) = consumer.assignment() else { return };
        let mut state = self.lock();
        state.slots_full = full;
        let result = if full {
            consumer.pause(&assignment)
        } else {
            let mut free = TopicPartitionList::new();
            for e in assignment.elements() {
                if !state.held.contains_key(&(e.topic().to_owned(), e.partition())) {
                    free.add_partition(e.topic(), e.partition());
                }
            }
            consumer.resume(&free)
        };
        if let Err(error) = result {
            tracing::warn!(%error, paused = full, "pause/resume failed");
        }
    }

    /// Partitions whose hold is over. Blocking (reads committed offsets, seeks):
    /// for `spawn_blocking`.
    pub fn release_due(&self, consumer: &impl Consumer<WorkerContext>) {
        let now = Instant::now();
        let due: Vec<TopicPartition> =
            self.lock().held.iter().filter(|(_, until)| **until <= now).map(|(tp, _)| tp.clone()).collect();
        for tp in due {
            let mut list = TopicPartitionList::new();
            list.add_partition(&tp.0, tp.1);
            let committed = consumer
                .committed_offsets(list, Timeout::After(Duration::from_secs(5)))
                .ok()
                .and_then(|l| l.find_partition(&tp.0, tp.1).map(|e| e.offset()));
            let mut state = self.lock();
            if state.held.get(&tp).is_none_or(|until| *until > now) {
                continue; // revoked (or assigned again) meanwhile
            }
            if let Some(Offset::Offset(offset)) = committed {
                if let Err(error) = consumer.seek(&tp.0, tp.1, Offset::Offset(offset), Duration::from_secs(5)) {
                    tracing::warn!(%error, partition = tp.1, offset, "seek after the handover hold failed");
                }
            }
            state.held.remove(&tp);
            let mut list = TopicPartitionList::new();
            list.add_partition(&tp.0, tp.1);
            if !state.slots_full {
                if let Err(error) = consumer.resume(&list) {
                    tracing::warn!(%error, partition = tp.1, "resume after the handover hold failed");
                }
            }
            tracing::info!(partition = tp.1, ?committed, "partition taken over");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_partition_is_no_longer_held() {
        let handover = Handover::new(Duration::from_secs(60));
        let tp = ("jobs".to_owned(), 3);
        handover.lock().held.insert(tp.clone(), Instant::now());
        assert!(handover.is_held(&tp));
        handover.revoked(std::slice::from_ref(&tp));
        assert!(!handover.is_held(&tp));
    }
}

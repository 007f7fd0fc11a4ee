//! Taking over a partition only once its previous owner has let go of it.
//!
//! Kafka's cooperative protocol assigns a moved partition to its new owner only
//! after the old one revoked it, so on Kafka this is off (`handover_hold_ms: 0`,
//! the default). A broker may hand it over early — tansu 0.6 answered JoinGroup
//! without waiting for every member, so the leader assigned with stale metadata.
//! Either way the new owner starts from a committed offset that does not yet count
//! the old owner's last jobs, and runs them a second time.
//!
//! [`Handover`] holds each newly assigned partition paused for `hold`, and beyond it
//! while another executor's fresh heartbeat still names the partition unsettled
//! ([`Peers`]: jobs of it running there, or finished and not committed yet) — up to
//! `settle_limit` more, the time an old owner has to finish its jobs after a revoke
//! and say so. Then the executor reads the partition's committed offset afresh,
//! seeks there and resumes. Whatever the old owner finished and committed meanwhile
//! is not run again; what it abandoned is. Messages of a held partition that arrive
//! anyway are dropped (never begun): the seek fetches them again. When no other
//! executor heartbeats at all, nobody can be working on the partition: it is
//! released at once (a lone executor's first job does not wait for the hold).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use rdkafka::consumer::Consumer;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::offsets::TopicPartition;
use crate::peers::Peers;
use crate::rebalance::WorkerContext;

struct Hold {
    /// Released from then on, once no peer claims the partition.
    from: Instant,
    /// Released then, claimed or not.
    until: Instant,
    /// A peer's claim was logged.
    waited: bool,
}

#[derive(Default)]
struct State {
    held: HashMap<TopicPartition, Hold>,
    /// True while the worker pauses every partition because all slots are busy.
    slots_full: bool,
}

pub struct Handover {
    hold: Duration,
    settle_limit: Duration,
    peers: Arc<Peers>,
    state: Mutex<State>,
}

impl Handover {
    pub fn new(hold: Duration, settle_limit: Duration, peers: Arc<Peers>) -> Self {
        Self { hold, settle_limit, peers, state: Mutex::default() }
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
            let from = Instant::now() + self.hold;
            let until = from + self.settle_limit;
            let mut state = self.lock();
            for e in list.elements() {
                state.held.insert((e.topic().to_owned(), e.partition()), Hold { from, until, waited: false });
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
        for tp in self.due(Instant::now()) {
            let mut list = TopicPartitionList::new();
            list.add_partition(&tp.0, tp.1);
            let committed = consumer
                .committed_offsets(list, Timeout::After(Duration::from_secs(5)))
                .ok()
                .and_then(|l| l.find_partition(&tp.0, tp.1).map(|e| e.offset()));
            let mut state = self.lock();
            if !state.held.contains_key(&tp) {
                continue; // revoked meanwhile
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

    /// Held partitions to release now: past their hold (or at once, when no other
    /// executor heartbeats) and claimed by no peer, or past the settle limit.
    fn due(&self, now: Instant) -> Vec<TopicPartition> {
        let wall_now = Utc::now();
        let alone = self.peers.alone(wall_now);
        let mut state = self.lock();
        let mut due = Vec::new();
        for (tp, hold) in state.held.iter_mut().filter(|(_, hold)| alone || hold.from <= now) {
            let claiming = self.peers.claiming(tp.1, wall_now);
            if claiming.is_empty() {
                due.push(tp.clone());
            } else if hold.until <= now {
                tracing::warn!(partition = tp.1, ?claiming, "previous owner did not settle in time; taking over");
                due.push(tp.clone());
            } else if !hold.waited {
                hold.waited = true;
                tracing::info!(partition = tp.1, ?claiming, "waiting for the previous owner's jobs to settle");
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use gitfaas_common::observer::{ExecutorHeartbeat, ExecutorState};
    use gitfaas_common::schema::SCHEMA_VERSION;

    fn handover(hold: Duration, settle_limit: Duration) -> (Handover, Arc<Peers>) {
        let peers = Arc::new(Peers::new("me", Duration::from_secs(6)));
        (Handover::new(hold, settle_limit, peers.clone()), peers)
    }

    fn hold(handover: &Handover, tp: &TopicPartition, from: Instant, until: Instant) {
        handover.lock().held.insert(tp.clone(), Hold { from, until, waited: false });
    }

    fn claim(peers: &Peers, id: &str, unsettled: &[i32]) {
        peers.observe(ExecutorHeartbeat {
            version: SCHEMA_VERSION,
            executor_id: id.into(),
            slots: 1,
            busy: 1,
            state: ExecutorState::Running,
            at: Utc::now(),
            unsettled: unsettled.to_vec(),
        });
    }

    #[test]
    fn a_partition_is_released_after_its_hold_once_no_peer_claims_it_or_at_the_settle_limit_or_at_once_when_alone() {
        let (handover, peers) = handover(Duration::from_secs(3), Duration::from_secs(10));
        let now = Instant::now();
        let (free, claimed, overdue) = (("jobs".to_owned(), 0), ("jobs".to_owned(), 1), ("jobs".to_owned(), 2));
        hold(&handover, &free, now, now + Duration::from_secs(10));
        hold(&handover, &claimed, now, now + Duration::from_secs(10));
        hold(&handover, &overdue, now - Duration::from_secs(10), now);
        let sorted = |mut due: Vec<TopicPartition>| {
            due.sort();
            due
        };
        assert_eq!(sorted(handover.due(now)).len(), 3, "no other executor: released at once");
        claim(&peers, "old-owner", &[1, 2]);
        assert_eq!(handover.due(now - Duration::from_secs(1)), Vec::<TopicPartition>::new(), "still in the hold");
        assert_eq!(sorted(handover.due(now)), vec![free.clone(), overdue.clone()]);
        claim(&peers, "old-owner", &[]);
        assert_eq!(sorted(handover.due(now)), vec![free, claimed, overdue], "settled");
    }

    #[test]
    fn a_revoked_partition_is_no_longer_held() {
        let (handover, _) = handover(Duration::from_secs(60), Duration::from_secs(60));
        let tp = ("jobs".to_owned(), 3);
        hold(&handover, &tp, Instant::now(), Instant::now());
        assert!(handover.is_held(&tp));
        handover.revoked(std::slice::from_ref(&tp));
        assert!(!handover.is_held(&tp));
    }
}

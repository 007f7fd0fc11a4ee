//! Which offsets may be committed: per partition, only the contiguous prefix of
//! messages whose results the broker acknowledged — or, for an at-most-once job,
//! whose start it acknowledged ([`OffsetTracker::settle`]). A job that finishes
//! early does not let the commit pass a slower job received before it.

use std::collections::{BTreeSet, HashMap};

pub type TopicPartition = (String, i32);

/// A message this consumer received, as the tracker knows it: its partition and
/// offset, and the assignment it came with. A partition revoked and assigned back
/// starts a new epoch, so a message fetched before is no longer this consumer's
/// to run or commit, even when the same offset is fetched again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub tp: TopicPartition,
    pub offset: i64,
    epoch: u64,
}

#[derive(Default, Debug)]
struct PartitionState {
    epoch: u64,
    in_flight: BTreeSet<i64>,
    /// At-most-once jobs still running whose offsets count as done.
    settled: BTreeSet<i64>,
    highest_done: Option<i64>,
    committable: Option<i64>,
}

#[derive(Default, Debug)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionState>,
    epochs: u64,
}

impl OffsetTracker {
    /// Records a received message; must be called in offset order per partition.
    pub fn begin(&mut self, tp: &TopicPartition, offset: i64) -> Received {
        let epochs = &mut self.epochs;
        let state = self.partitions.entry(tp.clone()).or_insert_with(|| {
            *epochs += 1;
            PartitionState { epoch: *epochs, ..Default::default() }
        });
        state.committable.get_or_insert(offset);
        state.in_flight.insert(offset);
        Received { tp: tp.clone(), offset, epoch: state.epoch }
    }

    /// The partition state `message` was received under, if the partition was not
    /// revoked since.
    fn state_of(&mut self, message: &Received) -> Option<&mut PartitionState> {
        self.partitions.get_mut(&message.tp).filter(|state| state.epoch == message.epoch)
    }

    /// Records a message as fully handled. Returns the next offset to consume when
    /// the committable position moved forward.
    pub fn finish(&mut self, message: &Received) -> Option<i64> {
        let offset = message.offset;
        let state = self.state_of(message)?;
        if state.settled.remove(&offset) {
            return None; // counted as done when it started
        }
        if !state.in_flight.remove(&offset) {
            return None; // forgotten by a rebalance
        }
        Self::advance(state, offset)
    }

    /// Counts a still running message as done for the commit (an at-most-once job
    /// whose start the broker has): whoever owns the partition next resumes after
    /// it. Returns the next offset to consume when the committable position moved.
    pub fn settle(&mut self, message: &Received) -> Option<i64> {
        let offset = message.offset;
        let state = self.state_of(message)?;
        if !state.in_flight.remove(&offset) {
            return None;
        }
        state.settled.insert(offset);
        Self::advance(state, offset)
    }

    /// The committable position of `tp` (the next offset to consume), if this
    /// consumer still owns the partition.
    pub fn committable(&self, tp: &TopicPartition) -> Option<i64> {
        self.partitions.get(tp).and_then(|p| p.committable)
    }

    fn advance(state: &mut PartitionState, offset: i64) -> Option<i64> {
        state.highest_done = Some(state.highest_done.map_or(offset, |h| h.max(offset)));
        let next = match state.in_flight.first() {
            Some(&lowest) => lowest,
            None => state.highest_done? + 1,
        };
        if state.committable.is_some_and(|c| c >= next) {
            return None;
        }
        state.committable = Some(next);
        Some(next)
    }

    /// Whether `message` is still this consumer's to finish (not forgotten by a
    /// rebalance, nor received under an earlier assignment of its partition).
    pub fn owns(&self, message: &Received) -> bool {
        let offset = message.offset;
        self.partitions
            .get(&message.tp)
            .is_some_and(|p| p.epoch == message.epoch && (p.in_flight.contains(&offset) || p.settled.contains(&offset)))
    }

    /// Drops what is known about a partition this consumer no longer owns.
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
    }

    /// Messages received and not yet finished (running, waiting or settled).
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len() + p.settled.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_waits_for_the_slowest_earlier_message() {
        let tp = ("jobs".to_owned(), 0);
        let mut t = OffsetTracker::default();
        let m: Vec<Received> = (10..13).map(|o| t.begin(&tp, o)).collect();
        assert_eq!(t.finish(&m[1]), None, "10 still running");
        assert_eq!(t.finish(&m[2]), None);
        assert_eq!(t.finish(&m[0]), Some(13));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn in_order_completion_advances_one_by_one_and_partitions_are_independent() {
        let (a, b) = (("jobs".to_owned(), 0), ("jobs".to_owned(), 1));
        let mut t = OffsetTracker::default();
        let (a0, a1, b7) = (t.begin(&a, 0), t.begin(&a, 1), t.begin(&b, 7));
        assert_eq!(t.finish(&a0), Some(1));
        assert_eq!(t.finish(&b7), Some(8));
        assert_eq!(t.finish(&a1), Some(2));
    }

    #[test]
    fn a_settled_message_commits_past_itself_while_running_but_not_past_an_earlier_one() {
        let tp = ("jobs".to_owned(), 0);
        let mut t = OffsetTracker::default();
        let m: Vec<Received> = (4..7).map(|o| t.begin(&tp, o)).collect();
        assert_eq!(t.settle(&m[1]), None, "4 still running");
        assert_eq!(t.committable(&tp), Some(4));
        assert_eq!(t.finish(&m[0]), Some(6), "past the settled 5");
        assert!(t.owns(&m[1]) && t.in_flight() == 2, "5 still runs and counts as busy");
        assert_eq!(t.finish(&m[1]), None, "finishing a settled message moves nothing");
        assert_eq!(t.settle(&m[2]), Some(7));
        assert_eq!((t.finish(&m[2]), t.in_flight()), (None, 0));
    }

    #[test]
    fn forgotten_partitions_commit_nothing() {
        let tp = ("jobs".to_owned(), 3);
        let mut t = OffsetTracker::default();
        let five = t.begin(&tp, 5);
        assert!(t.owns(&five) && !t.owns(&Received { offset: 6, ..five.clone() }));
        t.forget(&tp);
        assert!(!t.owns(&five));
        assert_eq!(t.finish(&five), None);
    }

    #[test]
    fn a_message_received_before_its_partition_came_back_is_no_longer_owned() {
        let tp = ("jobs".to_owned(), 1);
        let mut t = OffsetTracker::default();
        let before = t.begin(&tp, 5);
        t.forget(&tp); // revoked with 5 fetched, not started
        let again = t.begin(&tp, 5); // assigned back: the new fetch brings 5 again
        assert!(!t.owns(&before) && t.owns(&again), "only the new copy runs");
        assert_eq!((t.finish(&before), t.settle(&before)), (None, None), "the old copy moves nothing");
        assert_eq!(t.finish(&again), Some(6));
    }
}

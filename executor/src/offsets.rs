//! Which offsets may be committed: per partition, only the contiguous prefix of
//! messages whose results the broker acknowledged — or, for an at-most-once job,
//! whose start it acknowledged ([`OffsetTracker::settle`]). A job that finishes
//! early does not let the commit pass a slower job received before it.

use std::collections::{BTreeSet, HashMap};

pub type TopicPartition = (String, i32);

#[derive(Default, Debug)]
struct PartitionState {
    in_flight: BTreeSet<i64>,
    /// At-most-once jobs still running whose offsets count as done.
    settled: BTreeSet<i64>,
    highest_done: Option<i64>,
    committable: Option<i64>,
}

#[derive(Default, Debug)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionState>,
}

impl OffsetTracker {
    /// Records a received message; must be called in offset order per partition.
    pub fn begin(&mut self, tp: &TopicPartition, offset: i64) {
        let state = self.partitions.entry(tp.clone()).or_default();
        state.committable.get_or_insert(offset);
        state.in_flight.insert(offset);
    }

    /// Records a message as fully handled. Returns the next offset to consume when
    /// the committable position moved forward.
    pub fn finish(&mut self, tp: &TopicPartition, offset: i64) -> Option<i64> {
        let state = self.partitions.get_mut(tp)?;
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
    pub fn settle(&mut self, tp: &TopicPartition, offset: i64) -> Option<i64> {
        let state = self.partitions.get_mut(tp)?;
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

    /// Whether `offset` was received and is still this consumer's to finish (not
    /// forgotten by a rebalance).
    pub fn owns(&self, tp: &TopicPartition, offset: i64) -> bool {
        self.partitions.get(tp).is_some_and(|p| p.in_flight.contains(&offset) || p.settled.contains(&offset))
    }

    /// Drops what is known about a partition this consumer no longer owns.
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
    }

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
        for o in 10..13 {
            t.begin(&tp, o);
        }
        assert_eq!(t.finish(&tp, 11), None, "10 still running");
        assert_eq!(t.finish(&tp, 12), None);
        assert_eq!(t.finish(&tp, 10), Some(13));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn in_order_completion_advances_one_by_one_and_partitions_are_independent() {
        let (a, b) = (("jobs".to_owned(), 0), ("jobs".to_owned(), 1));
        let mut t = OffsetTracker::default();
        t.begin(&a, 0);
        t.begin(&a, 1);
        t.begin(&b, 7);
        assert_eq!(t.finish(&a, 0), Some(1));
        assert_eq!(t.finish(&b, 7), Some(8));
        assert_eq!(t.finish(&a, 1), Some(2));
    }

    #[test]
    fn a_settled_message_commits_past_itself_while_running_but_not_past_an_earlier_one() {
        let tp = ("jobs".to_owned(), 0);
        let mut t = OffsetTracker::default();
        for o in 4..7 {
            t.begin(&tp, o);
        }
        assert_eq!(t.settle(&tp, 5), None, "4 still running");
        assert_eq!(t.committable(&tp), Some(4));
        assert_eq!(t.finish(&tp, 4), Some(6), "past the settled 5");
        assert!(t.owns(&tp, 5) && t.in_flight() == 2, "5 still runs and counts as busy");
        assert_eq!(t.finish(&tp, 5), None, "finishing a settled message moves nothing");
        assert_eq!(t.settle(&tp, 6), Some(7));
        assert_eq!((t.finish(&tp, 6), t.in_flight()), (None, 0));
    }

    #[test]
    fn forgotten_partitions_commit_nothing() {
        let tp = ("jobs".to_owned(), 3);
        let mut t = OffsetTracker::default();
        t.begin(&tp, 5);
        assert!(t.owns(&tp, 5) && !t.owns(&tp, 6));
        t.forget(&tp);
        assert!(!t.owns(&tp, 5));
        assert_eq!(t.finish(&tp, 5), None);
    }
}

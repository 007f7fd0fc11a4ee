//! The other executors of the group, as their heartbeats describe them: which
//! partitions of the jobs topic each still has unsettled work on (see
//! [`crate::offsets::OffsetTracker::unsettled`]).
//!
//! A partition handed to this executor while another still works on it is held
//! until that work settled (see [`crate::handover::Handover`]). Only the latest
//! heartbeat of each peer counts, and only while it is fresh: a peer that stopped
//! heartbeating is gone, and its jobs are this executor's to run again.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use gitfaas_common::observer::{ExecutorHeartbeat, ExecutorState};

pub struct Peers {
    me: String,
    /// A heartbeat older than this says nothing any more.
    fresh_for: chrono::Duration,
    latest: Mutex<HashMap<String, ExecutorHeartbeat>>,
}

impl Peers {
    pub fn new(me: &str, fresh_for: std::time::Duration) -> Self {
        let fresh_for = chrono::Duration::from_std(fresh_for).unwrap_or(chrono::Duration::MAX);
        Self { me: me.to_owned(), fresh_for, latest: Mutex::default() }
    }

    /// Takes in a heartbeat read from the observer topic (this executor's own and
    /// out-of-order older ones are ignored).
    pub fn observe(&self, heartbeat: ExecutorHeartbeat) {
        if heartbeat.executor_id == self.me {
            return;
        }
        let mut latest = self.latest.lock().expect("peers lock");
        match latest.get(&heartbeat.executor_id) {
            Some(known) if known.at >= heartbeat.at => {}
            _ => {
                latest.insert(heartbeat.executor_id.clone(), heartbeat);
            }
        }
    }

    /// True when no other executor heartbeats (freshly): nobody can be working
    /// on a partition this one is handed.
    pub fn alone(&self, now: DateTime<Utc>) -> bool {
        let latest = self.latest.lock().expect("peers lock");
        !latest.values().any(|h| self.is_live(h, now))
    }

    /// Peers whose fresh, latest heartbeat says they have unsettled work on
    /// `partition` of the jobs topic.
    pub fn claiming(&self, partition: i32, now: DateTime<Utc>) -> Vec<String> {
        let latest = self.latest.lock().expect("peers lock");
        let mut claiming: Vec<String> = latest
            .values()
            .filter(|h| self.is_live(h, now) && h.unsettled.contains(&partition))
            .map(|h| h.executor_id.clone())
            .collect();
        claiming.sort();
        claiming
    }

    /// A fresh heartbeat of an executor that has not stopped.
    fn is_live(&self, heartbeat: &ExecutorHeartbeat, now: DateTime<Utc>) -> bool {
        heartbeat.state != ExecutorState::Stopped && now - heartbeat.at <= self.fresh_for
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfaas_common::schema::SCHEMA_VERSION;
    use std::time::Duration;

    fn heartbeat(id: &str, at: DateTime<Utc>, state: ExecutorState, unsettled: &[i32]) -> ExecutorHeartbeat {
        ExecutorHeartbeat {
            version: SCHEMA_VERSION,
            executor_id: id.into(),
            slots: 2,
            busy: unsettled.len() as u32,
            state,
            at,
            unsettled: unsettled.to_vec(),
        }
    }

    #[test]
    fn only_a_fresh_latest_heartbeat_of_another_live_executor_claims_a_partition() {
        let peers = Peers::new("me", Duration::from_secs(6));
        let t0 = Utc::now();
        let secs = chrono::Duration::seconds;
        peers.observe(heartbeat("me", t0, ExecutorState::Running, &[1]));
        assert!(peers.claiming(1, t0).is_empty(), "its own heartbeat");
        assert!(peers.alone(t0));

        peers.observe(heartbeat("a", t0, ExecutorState::Running, &[1, 2]));
        peers.observe(heartbeat("b", t0, ExecutorState::Draining, &[2]));
        assert_eq!(peers.claiming(1, t0), vec!["a"]);
        assert_eq!(peers.claiming(2, t0), vec!["a", "b"]);
        assert!(peers.claiming(3, t0).is_empty());

        peers.observe(heartbeat("a", t0 + secs(2), ExecutorState::Running, &[2]));
        peers.observe(heartbeat("a", t0 + secs(1), ExecutorState::Running, &[1, 2])); // late, older
        assert!(peers.claiming(1, t0 + secs(2)).is_empty(), "a settled partition 1");

        assert_eq!(peers.claiming(2, t0 + secs(6)), vec!["a", "b"]);
        assert_eq!(peers.claiming(2, t0 + secs(7)), vec!["a"], "b's heartbeat went stale");
        assert!(!peers.alone(t0 + secs(7)));
        assert!(peers.claiming(2, t0 + secs(9)).is_empty(), "a's too");
        assert!(peers.alone(t0 + secs(9)));

        peers.observe(heartbeat("a", t0 + secs(9), ExecutorState::Stopped, &[2]));
        assert!(peers.claiming(2, t0 + secs(9)).is_empty(), "a stopped executor works on nothing");
    }
}

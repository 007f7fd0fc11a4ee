//! Heartbeats on the observer topic: this executor's slots and how many are busy,
//! so the observer can count live workers and pick idle ones to remove.
//!
//! While running, busy is the number of jobs received and not finished (capped at
//! the slots): the worker loop holds a slot permit while it waits for the next
//! message, so taken permits would count an idle worker as busy. After `shutdown` the
//! executor drains: the loop has let go of its permit, so taken permits are the
//! jobs still running; heartbeats go on with state `draining` until none is left,
//! then one `stopped` heartbeat ends the task.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use gitfaas_common::kafka::Publisher;
use gitfaas_common::observer::{ExecutorHeartbeat, ExecutorState, ObserverMessage};
use gitfaas_common::schema::SCHEMA_VERSION;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::offsets::OffsetTracker;

/// What the heartbeats read of the worker at each beat: handles it shares.
pub struct Load {
    pub tracker: Arc<Mutex<OffsetTracker>>,
    pub slots: Arc<Semaphore>,
    pub total_slots: usize,
}

impl Load {
    /// Jobs busy now (see the module header for why running and draining differ).
    fn busy(&self, draining: bool) -> usize {
        if draining {
            self.total_slots.saturating_sub(self.slots.available_permits())
        } else {
            self.tracker.lock().expect("tracker lock").in_flight().min(self.total_slots)
        }
    }
}

/// Where and as whom heartbeats go out.
pub struct Beat {
    pub publisher: Publisher,
    pub topic: String,
    pub executor_id: String,
    pub interval: Duration,
}

pub async fn publish_heartbeats(beat: Beat, load: Load, shutdown: CancellationToken) {
    let Beat { publisher, topic, executor_id, interval } = beat;
    let since = Utc::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    loop {
        let draining = shutdown.is_cancelled();
        let busy = load.busy(draining);
        let state = match (draining, busy) {
            (false, _) => ExecutorState::Running,
            (true, 0) => ExecutorState::Stopped,
            (true, _) => ExecutorState::Draining,
        };
        let heartbeat = ExecutorHeartbeat {
            version: SCHEMA_VERSION,
            executor_id: executor_id.clone(),
            slots: load.total_slots as u32,
            busy: busy as u32,
            state,
            at: Utc::now(),
            unsettled: Vec::new(),
            since: Some(since),
        };
        let message = ObserverMessage::Heartbeat(heartbeat);
        // a heartbeat that cannot be delivered is worthless: the next one replaces it
        if let Err(error) = publisher.send(&topic, &message.key(), &message).await {
            tracing::debug!(%error, "heartbeat not published");
        }
        if state == ExecutorState::Stopped {
            return;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            // announce `draining` at once rather than up to one interval later
            () = shutdown.cancelled(), if !draining => {}
        }
    }
}

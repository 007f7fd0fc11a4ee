//! Heartbeats on the observer topic: this executor's slots and how many are busy,
//! so the observer can count live workers and pick idle ones to remove.
//!
//! Busy is the number of slot permits taken: a permit is held by a running job
//! only (jobs fetched and waiting for a slot are not busy — the observer counts
//! them as waiting). After `shutdown` the executor drains: heartbeats go on with
//! state `draining` until no job runs, then one `stopped` heartbeat ends the task.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gitfaas_common::kafka::Publisher;
use gitfaas_common::observer::{ExecutorHeartbeat, ExecutorState, ObserverMessage};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What the heartbeats read of the worker at each beat: handles it shares.
pub struct Load {
    pub slots: Arc<Semaphore>,
    pub total_slots: usize,
}

impl Load {
    /// Jobs running now.
    fn busy(&self) -> usize {
        self.total_slots.saturating_sub(self.slots.available_permits())
    }
}

/// Where and as whom heartbeats go out.
pub struct Beat {
    pub publisher: Publisher,
    pub executor_id: String,
    pub interval: Duration,
}

pub async fn publish_heartbeats(beat: Beat, load: Load, shutdown: CancellationToken) {
    let Beat { publisher, executor_id, interval } = beat;
    let since = Utc::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    loop {
        let draining = shutdown.is_cancelled();
        let busy = load.busy();
        let state = match (draining, busy) {
            (false, _) => ExecutorState::Running,
            (true, 0) => ExecutorState::Stopped,
            (true, _) => ExecutorState::Draining,
        };
        let heartbeat = ExecutorHeartbeat::new(&executor_id, load.total_slots as u32, busy as u32, state, since);
        let message = ObserverMessage::Heartbeat(heartbeat);
        // a heartbeat that cannot be delivered is worthless: the next one replaces it
        if let Err(error) = publisher.publish(&message).await {
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

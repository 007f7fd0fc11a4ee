//! Heartbeats on the observer topic: this executor's slots and how many are busy,
//! so the observer can count live workers and pick idle ones to remove.
//!
//! After `shutdown` the executor drains: heartbeats go on with state `draining`
//! until no job runs any more, then one `stopped` heartbeat ends the task.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gitfaas_common::observer::{ExecutorHeartbeat, ExecutorState, ObserverMessage};
use gitfaas_common::schema::SCHEMA_VERSION;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub async fn publish_heartbeats(
    producer: FutureProducer,
    topic: String,
    executor_id: String,
    slots: Arc<Semaphore>,
    total_slots: usize,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    loop {
        let draining = shutdown.is_cancelled();
        let busy = total_slots.saturating_sub(slots.available_permits());
        let state = match (draining, busy) {
            (false, _) => ExecutorState::Running,
            (true, 0) => ExecutorState::Stopped,
            (true, _) => ExecutorState::Draining,
        };
        let heartbeat = ExecutorHeartbeat {
            version: SCHEMA_VERSION,
            executor_id: executor_id.clone(),
            slots: total_slots as u32,
            busy: busy as u32,
            state,
            at: Utc::now(),
        };
        send(&producer, &topic, &ObserverMessage::Heartbeat(heartbeat)).await;
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

async fn send(producer: &FutureProducer, topic: &str, message: &ObserverMessage) {
    let payload = message.encode();
    let record = FutureRecord::to(topic).key(message.key()).payload(&payload);
    // a heartbeat that cannot be delivered soon is worthless: the next one replaces it
    if let Err((error, _)) = producer.send(record, Timeout::After(Duration::from_secs(5))).await {
        tracing::debug!(%error, "heartbeat not published");
    }
}

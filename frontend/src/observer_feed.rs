//! Keeps the latest observer report, read from the observer topic, for the admin
//! status endpoint, and the executors' heartbeats for [`crate::lost_runs`]. Each
//! frontend instance reads the topic itself (a group of its own, from the newest
//! messages on), so every instance can answer. Each also sends a beacon there, so
//! that it knows when the feed itself was out (see [`crate::lost_runs`]).

use std::sync::{Arc, RwLock};

use gitfaas_common::kafka::{decode, Inbox, Publisher};
use gitfaas_common::observer::{FeedBeacon, ObserverMessage, ObserverReport, HEARTBEAT_EVERY};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use crate::lost_runs::SharedLiveness;

pub type LatestReport = Arc<RwLock<Option<ObserverReport>>>;

pub async fn follow(inbox: Inbox, latest: LatestReport, liveness: SharedLiveness, shutdown: CancellationToken) {
    loop {
        let Some(message) = inbox.next(&shutdown).await else { break };
        liveness.lock().expect("liveness lock").listening(std::time::Instant::now());
        match decode::<ObserverMessage>(message.payload().unwrap_or_default()) {
            Ok(ObserverMessage::Report(report)) => {
                let mut latest = latest.write().expect("report lock");
                if latest.as_ref().is_none_or(|r| r.at <= report.at) {
                    *latest = Some(*report);
                }
            }
            Ok(ObserverMessage::Heartbeat(heartbeat)) => {
                liveness.lock().expect("liveness lock").heard(&heartbeat, std::time::Instant::now());
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "skipping unreadable observer message"),
        }
    }
}

/// Sends this frontend's beacon to the observer topic every [`HEARTBEAT_EVERY`],
/// with its topic triggers' lag and jobs in flight.
pub async fn beacon(
    publisher: Publisher,
    from: String,
    triggers: crate::triggers::TriggerLoads,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let loads = triggers.lock().expect("loads lock").values().cloned().collect();
        let message = ObserverMessage::Beacon(FeedBeacon::new(from.clone(), loads));
        // a send outlasting the interval is an outage the reader sees; the next goes on time
        let sent = tokio::time::timeout(HEARTBEAT_EVERY, publisher.publish(&message)).await;
        if let Ok(Err(error)) = sent {
            tracing::debug!(%error, "beacon not sent");
        }
    }
}

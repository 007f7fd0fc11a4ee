//! Keeps the latest observer report, read from the observer topic, for the admin
//! status endpoint, and the executors' heartbeats for [`crate::lost_runs`]. Each
//! frontend instance reads the topic itself (a group of its own, from the newest
//! messages on), so every instance can answer.

use std::sync::{Arc, RwLock};

use gitfaas_common::observer::{decode_observer_message, ObserverMessage, ObserverReport};
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

use crate::lost_runs::SharedLiveness;

pub type LatestReport = Arc<RwLock<Option<ObserverReport>>>;

pub async fn follow(
    consumer: StreamConsumer,
    latest: LatestReport,
    liveness: SharedLiveness,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "observer topic receive error");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        liveness.lock().expect("liveness lock").listening(std::time::Instant::now());
        match decode_observer_message(message.payload().unwrap_or_default()) {
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

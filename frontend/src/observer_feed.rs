//! Keeps the observer's reports, read from the observer topic — the latest for the
//! admin status endpoint, the last [`KEPT_REPORTS`] for the operator view's charts
//! — and the executors' heartbeats for [`crate::lost_runs`]. Each
//! frontend instance reads the topic itself (a group of its own, from the newest
//! messages on), so every instance can answer. Each also sends a beacon there, so
//! that it knows when the feed itself was out (see [`crate::lost_runs`]).

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use gitfaas_common::kafka::{decode, Inbox, Publisher};
use gitfaas_common::observer::{FeedBeacon, ObserverMessage, ObserverReport, HEARTBEAT_EVERY};
use rdkafka::message::Message;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::lost_runs::SharedLiveness;

/// Reports kept: a quarter of an hour at the observer's default interval (1 s).
pub const KEPT_REPORTS: usize = 900;

/// The observer's reports this frontend has read, oldest first, and a channel
/// each kept report goes out on as it arrives (the operator view's stream).
#[derive(Clone)]
pub struct Reports {
    kept: Arc<RwLock<VecDeque<ObserverReport>>>,
    arrivals: broadcast::Sender<ObserverReport>,
}

impl Default for Reports {
    fn default() -> Self {
        Self { kept: Default::default(), arrivals: broadcast::channel(64).0 }
    }
}

impl Reports {
    /// The newest report.
    pub fn latest(&self) -> Option<ObserverReport> {
        self.kept.read().expect("reports lock").back().cloned()
    }

    /// Keeps `report` unless it is older than the newest (one of the same time
    /// replaces it), dropping the oldest past [`KEPT_REPORTS`], and sends it to
    /// the streams following the reports.
    pub fn record(&self, report: ObserverReport) {
        let mut reports = self.kept.write().expect("reports lock");
        match reports.back() {
            Some(newest) if newest.at > report.at => return,
            Some(newest) if newest.at == report.at => {
                reports.pop_back();
            }
            _ => {}
        }
        reports.push_back(report.clone());
        while reports.len() > KEPT_REPORTS {
            reports.pop_front();
        }
        // under the lock, as `follow` reads: each stream gets a report once, kept or sent
        let _ = self.arrivals.send(report); // no stream open: nobody to tell
    }

    /// The kept reports made after `after` (all of them without it), oldest first.
    pub fn since(&self, after: Option<DateTime<Utc>>) -> Vec<ObserverReport> {
        let reports = self.kept.read().expect("reports lock");
        reports.iter().filter(|r| after.is_none_or(|after| r.at > after)).cloned().collect()
    }

    /// The reports kept after `after`, and every report recorded from now on.
    pub fn follow(&self, after: Option<DateTime<Utc>>) -> (Vec<ObserverReport>, broadcast::Receiver<ObserverReport>) {
        // subscribed under the lock: no report falls between the two
        let reports = self.kept.read().expect("reports lock");
        let arrivals = self.arrivals.subscribe();
        let kept = reports.iter().filter(|r| after.is_none_or(|after| r.at > after)).cloned().collect();
        (kept, arrivals)
    }
}

pub async fn follow(inbox: Inbox, reports: Reports, liveness: SharedLiveness, shutdown: CancellationToken) {
    loop {
        let Some(message) = inbox.next(&shutdown).await else { break };
        liveness.lock().expect("liveness lock").listening(std::time::Instant::now());
        match decode::<ObserverMessage>(message.payload().unwrap_or_default()) {
            Ok(ObserverMessage::Report(report)) => reports.record(*report),
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

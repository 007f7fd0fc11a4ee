//! Reads the results topic into the job store. Offsets are stored for commit only
//! after Redis has the event, so a crash replays events rather than losing them;
//! applying an event twice changes nothing. An event that cannot be read ends its
//! job `failed` with the reason ([`crate::ending::end_unreadable`]). Each event is
//! applied in a span whose parent is the executor's that published it, so the
//! job's trace ends here.

use std::time::Duration;

use gitfaas_common::kafka::set_parent_from_headers;
use gitfaas_common::kafka::{decode, Inbox};
use gitfaas_common::metrics::LagContext;
use gitfaas_common::schema::DecodeError;
use gitfaas_common::JobEvent;
use rdkafka::message::{BorrowedMessage, Message};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ending::{end_unreadable, ResultPublisher};
use crate::follow_up::FollowUp;
use crate::metrics::FrontendMetrics;
use crate::store::JobStore;

pub async fn consume(
    inbox: Inbox<LagContext>,
    store: JobStore,
    publisher: ResultPublisher,
    metrics: FrontendMetrics,
    follow_up: FollowUp,
    shutdown: CancellationToken,
) {
    loop {
        let Some(message) = inbox.next(&shutdown).await else { break };
        let decoded = decode::<JobEvent>(message.payload().unwrap_or_default());
        let event = match &decoded {
            Ok(JobEvent::Started(_)) => "started",
            Ok(JobEvent::Finished(_)) => "finished",
            Err(_) => "unreadable",
        };
        let span = tracing::info_span!("apply result", otel.kind = "consumer", event, offset = message.offset());
        set_parent_from_headers(&span, message.headers());
        if !store_until_done(&store, &publisher, &message, &decoded, &shutdown).instrument(span).await {
            return;
        }
        // only a named function's jobs come from triggers and pipelines
        if let Ok(JobEvent::Finished(result)) = decoded.as_ref() {
            if result.function.is_some() && !follow_up_until_done(&follow_up, result.job_id, &shutdown).await {
                return;
            }
        }
        metrics.applied(event);
        inbox.done(&message);
    }
    inbox.close();
}

/// Stores the event (or ends the job of an unreadable one), retrying with backoff;
/// false when shutdown came first.
async fn store_until_done(
    store: &JobStore,
    publisher: &ResultPublisher,
    message: &BorrowedMessage<'_>,
    decoded: &Result<JobEvent, DecodeError>,
    shutdown: &CancellationToken,
) -> bool {
    let payload = message.payload().unwrap_or_default();
    let mut backoff = Duration::from_millis(100);
    loop {
        let stored = match decoded {
            Ok(event) => store
                .apply(event)
                .await
                .map(|applied| tracing::debug!(job_id = %event.job_id(), applied, "event stored")),
            Err(error) => end_unreadable(store, Some(publisher), message.key(), payload, &error.to_string()).await,
        };
        match stored {
            Ok(()) => return true,
            Err(error) => tracing::warn!(%error, offset = message.offset(), "storing event failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Runs the follow-up of a job's end ([`crate::follow_up`]), retrying with
/// backoff; false when shutdown came first.
async fn follow_up_until_done(follow_up: &FollowUp, id: gitfaas_common::JobId, shutdown: &CancellationToken) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow_up.finished(id).await {
            Ok(()) => return true,
            Err(error) => tracing::warn!(%error, job_id = %id, "follow-up of a finished job failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

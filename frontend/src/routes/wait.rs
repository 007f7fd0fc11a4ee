//! Waiting for a job to end: the one wait behind the result route's `?wait` and the
//! synchronous submit (`Prefer: wait=N`, RFC 7240, or `?wait=N`). A wait is woken
//! by the job's transitions on the event hub's one Redis subscription; a slow safety
//! net only covers a lost or lagging subscription. Never a sleep-poll loop.

use std::time::Duration;

use actix_web::http::header::HeaderMap;
use gitfaas_common::{JobResult, JobStatus};

use super::owned::own_job;
use crate::event_hub::Subscription;
use crate::identity::Caller;
use crate::problem::ApiError;
use crate::AppState;

/// The longest wait a client may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// A `?wait=N` query value: more than [`MAX_WAIT_SECS`] is a 400 naming the field.
pub fn from_query(wait: Option<u64>) -> Result<u64, ApiError> {
    match wait {
        Some(wait) if wait > MAX_WAIT_SECS => {
            Err(ApiError::invalid("wait", format!("wait is at most {MAX_WAIT_SECS} seconds")))
        }
        wait => Ok(wait.unwrap_or(0)),
    }
}

/// The `wait` preference of the request's `Prefer` headers, clamped to
/// [`MAX_WAIT_SECS`] (see [`super::numbers::prefer_wait`]: malformed ones are
/// ignored, and a wait of any size, past `u64` too, is the longest one).
pub fn from_prefer(headers: &HeaderMap) -> Option<u64> {
    super::numbers::prefer_wait(headers, MAX_WAIT_SECS)
}

/// How a wait for a job ended.
pub enum Waited {
    /// The job ended: its result.
    Ended(Box<JobResult>),
    /// The deadline came first; the job's status then (queued or running).
    Pending(JobStatus),
}

/// Waits up to `wait` seconds for the caller's job `id` to end.
pub async fn for_result(state: &AppState, caller: &Caller, id: &str, wait: u64) -> Result<Waited, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut updates = subscribe(state, caller, wait).await;
    loop {
        let record = own_job(state, caller, id).await?;
        if let Some(result) = record.result {
            return Ok(Waited::Ended(Box::new(result)));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Waited::Pending(record.status));
        }
        next_update(&mut updates, deadline).await;
    }
}

/// The caller's updates, subscribed before a wait's first read: a transition
/// between the read and the wait still wakes it (none: no wait, or no subscription).
pub async fn subscribe(state: &AppState, caller: &Caller, wait: u64) -> Option<Subscription> {
    if wait > 0 {
        state.events.wait_updates(&caller.subject).await.ok()
    } else {
        None
    }
}

/// Waits for the next of the caller's transitions (or the slow safety net, or
/// `deadline`); a closed subscription is dropped for the safety net alone.
pub async fn next_update(updates: &mut Option<Subscription>, deadline: tokio::time::Instant) {
    let safety_net = Duration::from_millis(if updates.is_some() { 1000 } else { 100 });
    let next_check = deadline.min(tokio::time::Instant::now() + safety_net);
    match updates.as_mut() {
        Some(subscription) => tokio::select! {
            update = subscription.updates.recv() => {
                if matches!(update, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    *updates = None;
                }
            }
            () = tokio::time::sleep_until(next_check) => {}
        },
        None => tokio::time::sleep_until(next_check).await,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn prefer(values: &[&str]) -> Option<u64> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HeaderName::from_static("prefer"), HeaderValue::from_str(value).unwrap());
        }
        from_prefer(&headers)
    }

    #[test]
    fn the_wait_preference_is_read_as_rfc_7240_writes_it() {
        assert_eq!(prefer(&[]), None);
        assert_eq!(prefer(&["wait=10"]), Some(10));
        assert_eq!(prefer(&["respond-async, wait=5"]), Some(5));
        assert_eq!(prefer(&["return=minimal", "WAIT = 7 ; x=y"]), Some(7));
        assert_eq!(prefer(&["wait=\"3\""]), Some(3));
        assert_eq!(prefer(&["wait=600"]), Some(MAX_WAIT_SECS), "clamped");
        assert_eq!(prefer(&["wait=soon", "respond-async"]), None, "a malformed preference is ignored");
        assert_eq!(prefer(&["waiting=4"]), None);
        assert_eq!(prefer(&["wait=-1, wait=2"]), Some(2), "the first well-formed one counts");
    }

    #[test]
    fn a_query_wait_past_the_maximum_is_refused() {
        assert_eq!(from_query(None).unwrap(), 0);
        assert_eq!(from_query(Some(60)).unwrap(), 60);
        assert!(matches!(from_query(Some(61)), Err(ApiError::InvalidRequest { field: Some(f), .. }) if f == "wait"));
    }
}

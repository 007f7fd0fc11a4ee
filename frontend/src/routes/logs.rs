//! A job's live log: `GET /v1/jobs/{id}/logs` answers the whole log so far as plain
//! text; with `?follow=true` it is a Server-Sent Events stream — the chunks stored
//! so far, then each one as it is stored (event `log`, id = its place in the log,
//! data = the chunk as JSON), and an `end` event once the job is terminal and the
//! log of its last attempt closed (or a short grace passed: an executor that was
//! lost sends no last chunk). Owner only: anyone else's job is a 404, as everywhere.
//! A follow stream counts against the caller's cap on event streams; it is woken by
//! the event hub's one subscription, with a slow re-read as the safety net.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use gitfaas_common::{JobId, JobStatus};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use utoipa::IntoParams;

use super::numbers;
use super::owned::own_job;
use crate::event_hub::{HubError, Subscription};
use crate::identity::Caller;
use crate::job_logs::StoredChunk;
use crate::problem::{ApiError, Problem};
use crate::AppState;

/// How long after a job's end a follow stream waits for its last chunks.
const END_GRACE: Duration = Duration::from_secs(3);
/// The stream's re-read when no wake-up came, and its keep-alive comment.
const SAFETY_NET: Duration = Duration::from_secs(1);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Stream the log as Server-Sent Events until the job ends (`text/event-stream`).
    follow: Option<bool>,
}

/// The live log of one of the caller's jobs: plain text, or followed as events.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", tag = "jobs",
    params(("id" = String, Path, description = "job id"), LogsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "with `follow=true`: resume after this event id \
            (a whole number; the stream starts at the next one); anything else, or an id past 2^64 - 2, is a 400")),
    responses(
        (status = 200, description = "the log so far (plain text), or with `follow=true` a stream of \
            `log` events (id: the chunk's place in the log; data: `{attempt, seq, stream, text, truncated}`) \
            ending with an `end` event (data: `{status, attempt}`)",
            content((String = "text/plain"), (String = "text/event-stream"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn logs(
    caller: Caller,
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // the query is read after the caller is known: a request without a token is a 401
    // whatever its query says
    let query = web::Query::<LogsQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::InvalidRequest { detail: e.to_string(), field: Some("follow".into()) })?;
    let record = own_job(&state, &caller, &path).await?;
    if query.follow != Some(true) {
        let chunks = state.logs.chunks(record.id, 0).await?;
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            // how many chunks the text holds: a client adding live chunks starts there
            .insert_header(("x-log-chunks", chunks.len().to_string()))
            .body(render(&chunks)));
    }
    // a resumed stream starts one past the last id the client saw; an id past
    // `u64` or the last one there can be is a 400, before a stream is held for it
    let resume = numbers::resume_after(request.headers())?;
    let subscription = state.events.subscribe(&caller.subject).await.map_err(|error| match error {
        HubError::TooMany(open) => ApiError::TooManyStreams(open),
        HubError::NotReady => ApiError::Unavailable("the job store"),
    })?;
    let (events_tx, events_rx) = mpsc::channel::<web::Bytes>(16);
    actix_web::rt::spawn(follow(state.clone(), record.id, subscription, resume, events_tx));
    let body = futures::stream::unfold(events_rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body.boxed_local()))
}

/// The log as one text: the chunks in order, a line before each later attempt and
/// one where the cap cut it.
fn render(chunks: &[StoredChunk]) -> String {
    let mut text = String::new();
    let mut attempt = chunks.first().map_or(1, |c| c.attempt);
    for chunk in chunks {
        if chunk.attempt != attempt {
            attempt = chunk.attempt;
            line_break(&mut text);
            text.push_str(&format!("[gitfaas: attempt {attempt}]\n"));
        }
        text.push_str(&chunk.text);
        if chunk.truncated {
            line_break(&mut text);
            text.push_str("[gitfaas: the log reached its size limit; the rest was dropped]\n");
        }
    }
    text
}

fn line_break(text: &mut String) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
}

fn event(name: &str, id: Option<u64>, data: &serde_json::Value) -> web::Bytes {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    web::Bytes::from(format!("event: {name}\n{id}data: {data}\n\n"))
}

/// Feeds one follow stream until the job's log is complete or the client left.
async fn follow(
    state: web::Data<AppState>,
    id: JobId,
    mut subscription: Subscription,
    mut next: u64,
    events_tx: mpsc::Sender<web::Bytes>,
) {
    let (job, mut ended_at, mut last_sent) = (id.to_string(), None::<Instant>, Instant::now());
    let mut live = true;
    loop {
        let chunks = match state.logs.chunks(id, next).await {
            Ok(chunks) => chunks,
            Err(error) => {
                tracing::warn!(%error, job_id = %id, "reading a job's log failed");
                Vec::new()
            }
        };
        for chunk in chunks {
            let data = serde_json::to_value(&chunk).expect("chunks serialise");
            if events_tx.send(event("log", Some(next), &data)).await.is_err() {
                return; // the client left
            }
            next += 1;
            last_sent = Instant::now();
        }
        let Some((status, attempt, closed)) = end_of(&state, id).await else {
            // erased (or unreadable) while followed: nothing more will come
            let _ = events_tx.send(event("end", None, &json!({"status": null}))).await;
            return;
        };
        if status.is_terminal() {
            let waited = ended_at.get_or_insert_with(Instant::now).elapsed();
            if closed || waited >= END_GRACE {
                if !closed || state.logs.chunks(id, next).await.map_or(true, |c| c.is_empty()) {
                    let _ = events_tx.send(event("end", None, &json!({"status": status, "attempt": attempt}))).await;
                    return;
                }
                continue; // chunks came in between: send them first
            }
        }
        if last_sent.elapsed() >= KEEP_ALIVE {
            if events_tx.send(web::Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                return;
            }
            last_sent = Instant::now();
        }
        let pause = if ended_at.is_some() { Duration::from_millis(200) } else { SAFETY_NET };
        if !live {
            tokio::time::sleep(pause).await;
            continue;
        }
        tokio::select! {
            update = subscription.updates.recv() => match update {
                Ok(text) if !text.contains(&job) => {}
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => live = false,
            },
            () = tokio::time::sleep(pause) => {}
            () = events_tx.closed() => return,
        }
    }
}

/// The job's status, its attempt and whether that attempt's log closed; `None`
/// when the job is gone. A job that ended without running, or whose run wrote
/// nothing, has no log to wait for.
async fn end_of(state: &AppState, id: JobId) -> Option<(JobStatus, u32, bool)> {
    let record = state.store.get(id).await.ok()??;
    let attempt = record.attempt.or(record.result.as_ref().map(|r| r.attempt)).unwrap_or(1);
    if !record.status.is_terminal() {
        return Some((record.status, attempt, false));
    }
    let ran = record.result.as_ref().is_some_and(|r| r.started_at.is_some());
    // a run that wrote nothing sends no closing chunk: its result says so
    let silent = record.result.as_ref().is_some_and(|r| r.attempt == attempt && r.log_chunks == Some(0));
    let closed = !ran || silent || state.logs.attempt_closed(id, attempt).await.unwrap_or(false);
    Some((record.status, attempt, closed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(attempt: u32, seq: u64, text: &str, truncated: bool) -> StoredChunk {
        StoredChunk { attempt, seq, stream: "stderr".into(), text: text.into(), truncated }
    }

    #[test]
    fn the_plain_log_names_later_attempts_and_where_the_cap_cut_it() {
        let chunks = [chunk(1, 0, "one\n", false), chunk(1, 1, "two", false), chunk(2, 0, "again\n", true)];
        assert_eq!(
            render(&chunks),
            "one\ntwo\n[gitfaas: attempt 2]\nagain\n[gitfaas: the log reached its size limit; the rest was dropped]\n"
        );
        assert_eq!(render(&[]), "");
        let sse = event("log", Some(3), &json!({"text": "a\nb"}));
        assert_eq!(&sse[..], b"event: log\nid: 3\ndata: {\"text\":\"a\\nb\"}\n\n");
    }
}

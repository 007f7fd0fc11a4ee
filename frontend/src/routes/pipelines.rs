//! Pipeline runs: start one (its first step queued at once), read it (with an
//! optional wait for its end), list them, cancel one. Runs are their owner's:
//! anyone else's run is 404, exactly like a missing one. How a run goes on and
//! how it is told from its steps' jobs: [`crate::pipelines`].

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use gitfaas_common::schema::{is_valid_function_name, JobOrigin, JobResult, MAX_PIPELINE_STEPS};
use gitfaas_common::JobId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::cancel::cancel_record;
use super::functions::strict;
use super::jobs::{admit_json, queue, WaitQuery};
use super::page;
use super::wait;
use crate::identity::Caller;
use crate::pipelines::{self, RunView, Unmade};
use crate::problem::{ApiError, Problem};
use crate::AppState;

/// A run to start: the caller's functions in order, and the first one's input.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineRequest {
    /// Function names, 1 to 16; each step's output is the next one's input.
    #[schema(min_items = 1, max_items = 16)]
    pub steps: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Value)]
    pub input: Value,
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunView>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Only runs older than this run id (the `next` of the previous page).
    before: Option<String>,
}

/// Start a pipeline run: its first step is queued at once with `input`.
#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines",
    params(("Idempotency-Key" = Option<String>, Header, description = "a retried start with the same key returns the same run")),
    request_body(content = PipelineRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "started", body = RunView, headers(("Location" = String))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "a step's `publish` topic is not allowed or is another owner's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "a step names no function of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "the run of this Idempotency-Key was erased", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[tracing::instrument(name = "start pipeline", skip_all, fields(run = tracing::field::Empty, owner = %caller.subject))]
pub async fn start(
    http: HttpRequest,
    payload: web::Payload,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (body, backlog) = admit_json(&http, payload, &caller, &state).await?;
    let request = strict::<PipelineRequest>(&body, "pipeline")?;
    if !(1..=MAX_PIPELINE_STEPS).contains(&request.steps.len()) {
        return Err(ApiError::invalid("steps", format!("a pipeline has 1 to {MAX_PIPELINE_STEPS} steps")));
    }
    // each step runs the version of its function that is current now
    let mut versions = Vec::with_capacity(request.steps.len());
    for (i, name) in request.steps.iter().enumerate() {
        let missing = || ApiError::StepFunctionNotFound { step: i + 1, name: name.clone() };
        if !is_valid_function_name(name) {
            return Err(ApiError::invalid("steps", format!("step {}: {name:?} is not a function name", i + 1)));
        }
        let function = state.store.function(&caller.subject, name).await?.ok_or_else(missing)?;
        versions.push(function.current);
    }
    let run = JobId::new().to_string();
    tracing::Span::current().record("run", run.as_str());
    let origin = JobOrigin::Pipeline { run: run.clone(), step: 0, steps: request.steps.clone(), versions };
    let spec = pipelines::step_spec(&state.store, &caller.owner(), origin, request.input).await?;
    // listed first: a run listed whose first step never came is skipped by the list
    state.store.index_pipeline_run(&caller.subject, &run).await?;
    let key = http.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let fingerprinted = [b"pipeline\0".as_slice(), &body].concat();
    let queued = queue(spec, Some((&fingerprinted, key)), backlog, &caller, &state).await;
    // a retried Idempotency-Key finds the first step of the run it started then
    let made = match &queued {
        Ok((id, _, _)) => state.store.get(*id).await?.and_then(|r| r.job?.spec.origin),
        Err(_) => None,
    };
    let made = match made {
        Some(JobOrigin::Pipeline { run, .. }) => Some(run),
        _ => None,
    };
    if made.as_deref() != Some(run.as_str()) {
        state.store.unindex_pipeline_run(&caller.subject, &run).await?;
    }
    queued?;
    let run = made.ok_or(ApiError::PipelineNotFound)?;
    let view = pipelines::read(&state.store, &caller.subject, &run).await?.ok_or(ApiError::PipelineNotFound)?;
    tracing::info!(run = %run, steps = view.steps.len(), "pipeline run started");
    Ok(HttpResponse::Accepted().insert_header((header::LOCATION, view.links.self_.clone())).json(view))
}

/// A run of the caller's, with each step's job, status and timing.
#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "pipelines",
    params(("id" = String, Path, description = "run id"), WaitQuery),
    responses((status = 200, description = "the run (at the end of the wait, if one was asked for)", body = RunView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get(
    path: web::Path<String>,
    query: web::Query<WaitQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wait = wait::from_query(query.wait)?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    let mut updates = wait::subscribe(&state, &caller, wait).await;
    loop {
        let view = own_run(&state, &caller, &path).await?;
        if view.status.is_terminal() || tokio::time::Instant::now() >= deadline {
            return Ok(HttpResponse::Ok().json(view));
        }
        wait::next_update(&mut updates, deadline).await;
    }
}

/// The caller's runs, newest first.
#[utoipa::path(get, path = "/v1/pipelines", tag = "pipelines", params(RunListQuery),
    responses((status = 200, body = RunList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(
    query: web::Query<RunListQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = page::size(query.limit)?;
    let (ids, more) = state.store.pipeline_runs(&caller.subject, query.before.as_deref(), limit).await?;
    let next = page::next(&ids, more, String::clone);
    let mut runs = Vec::with_capacity(ids.len());
    for id in &ids {
        runs.extend(pipelines::read(&state.store, &caller.subject, id).await?);
    }
    Ok(HttpResponse::Ok().json(RunList { runs, next }))
}

/// Cancel a run: its running (or queued) step's job is cancelled, and no later
/// step starts.
#[utoipa::path(post, path = "/v1/pipelines/{id}/cancel", tag = "pipelines",
    params(("id" = String, Path, description = "run id")),
    responses(
        (status = 200, description = "the run is cancelled", body = RunView),
        (status = 202, description = "its step is running: its executor kills it; no later step starts", body = RunView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the run has already finished", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
#[tracing::instrument(name = "cancel pipeline", skip_all, fields(run = %path, owner = %caller.subject))]
pub async fn cancel(
    path: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = own_run(&state, &caller, &path).await?;
    let Some(current) = view.current_step().filter(|_| !view.status.is_terminal()) else {
        return Err(ApiError::PipelineFinished(view.status.as_str()));
    };
    // the step after too: should the current one succeed before its kill, the
    // next one is never made
    for step in [current, current + 1].into_iter().filter(|&s| s < view.steps.len()) {
        stop_step(&state, &caller, &view.id, step as u32).await?;
    }
    tracing::info!(step = current + 1, "pipeline run cancelled");
    let view = own_run(&state, &caller, &path).await?;
    let mut response = if view.status.is_terminal() { HttpResponse::Ok() } else { HttpResponse::Accepted() };
    Ok(response.json(view))
}

/// Cancels the job of step `step` (from 0), or, when it has none yet, ends the
/// step cancelled so that none is ever made.
async fn stop_step(state: &AppState, caller: &Caller, run: &str, step: u32) -> Result<(), ApiError> {
    let id = JobOrigin::pipeline_step_id(&caller.subject, run, step);
    if state.store.get(id).await?.is_none() {
        let ended = pipelines::end_unmade_step(
            &state.submit,
            &state.results,
            id,
            &caller.owner(),
            JobResult::cancelled_before_start,
        )
        .await?;
        if ended == Unmade::Ended {
            return Ok(());
        }
    }
    match state.store.get(id).await? {
        Some(record) if !record.status.is_terminal() => cancel_record(state, &caller.subject, &record).await,
        _ => Ok(()),
    }
}

/// A run of the caller's; anyone else's is indistinguishable from a missing one.
async fn own_run(state: &AppState, caller: &Caller, id: &str) -> Result<RunView, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::PipelineNotFound)?;
    pipelines::read(&state.store, &caller.subject, &id.to_string()).await?.ok_or(ApiError::PipelineNotFound)
}

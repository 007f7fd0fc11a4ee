//! Pipelines: an ordered list of named functions, each step's output the next
//! one's input. Every step is an ordinary job of its function's current version
//! ([`crate::submit`]), so retries, limits, delivery guarantees and logs apply
//! (each step counts against its owner's rate limit, though it is never refused for it);
//! its origin names the run, the step and all the run's functions.
//!
//! A run has no state of its own: step `k`'s job id is derived from the owner,
//! the run and `k` ([`JobOrigin::pipeline_step_id`]), so a run is read from its
//! steps' jobs ([`run::RunView`]) and comes back with them when the view is
//! rebuilt from Kafka. The next step is queued by the follow-up of the one
//! before ([`step_done`]); a replay finds it made. A step that cannot be queued
//! (its function gone, its input too large), or that the run's cancel stops
//! before it is made, gets a terminal result of its own under its id
//! ([`end_unmade_step`]) — published like any other, so it lasts as long as jobs
//! do, and a later attempt to queue it finds it ended.

mod run;

pub use run::RunView;

use chrono::Utc;
use gitfaas_common::kafka::PublishError;
use gitfaas_common::schema::{Attempt, JobOrigin};
use gitfaas_common::{JobEvent, JobId, JobResult, JobSpec, JobStatus, Owner};
use serde_json::Value;

use crate::ending::{ResultPublisher, FRONTEND_EXECUTOR_ID};
use crate::store::{JobRecord, JobStore, OriginClaim};
use crate::submit::{SubmitError, Submitter};

/// Why a step has no job to make: its message is the reason its unmade step
/// ends with (or, at a run's start, the 404 names its function).
#[derive(Debug, thiserror::Error)]
pub enum StepSpecError {
    #[error("not a pipeline step")]
    NotAStep,
    #[error("the run has no step {0}")]
    NoSuchStep(u32),
    #[error("function {name} not found")]
    FunctionNotFound { step: u32, name: String },
    #[error("version {version} of function {name}, which the run started with, is no longer kept")]
    VersionGone { step: u32, name: String, version: u32 },
    #[error("function {name} has no version")]
    NoVersion { step: u32, name: String },
    #[error("the job store failed: {0}")]
    Store(#[from] redis::RedisError),
}

/// Why an unmade step was not ended ([`end_unmade_step`]): each may pass later.
#[derive(Debug, thiserror::Error)]
pub enum UnmadeError {
    /// Another attempt to make or end the step holds its origin.
    #[error("the step is being made; retry after 1s")]
    Busy,
    #[error("the step's result was not published: {0}")]
    Broker(#[from] PublishError),
    #[error("the job store failed: {0}")]
    Store(#[from] redis::RedisError),
}

/// Why the next step of a run was neither queued nor ended: the results
/// reader tries its follow-up again.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("the next step was not queued: {0}")]
    Submit(#[source] SubmitError),
    #[error(transparent)]
    Unmade(#[from] UnmadeError),
    #[error("the job store failed: {0}")]
    Store(#[from] redis::RedisError),
}

/// The run `run` of `subject`, or none when `subject` has no such run.
pub async fn read(store: &JobStore, subject: &str, run: &str) -> redis::RedisResult<Option<RunView>> {
    let Some(first) = store.get(JobOrigin::pipeline_step_id(subject, run, 0)).await? else { return Ok(None) };
    let steps = match first.job.as_ref().and_then(|j| j.spec.origin.as_ref()) {
        Some(JobOrigin::Pipeline { steps, .. }) if first.owner == subject => steps.clone(),
        _ => return Ok(None),
    };
    let mut records = vec![Some(first)];
    for step in 1..steps.len() as u32 {
        let record = store.get(JobOrigin::pipeline_step_id(subject, run, step)).await?;
        records.push(record.filter(|r| r.owner == subject));
    }
    Ok(Some(RunView::of(run, &steps, &records, Utc::now())))
}

/// The job of the step `origin` names (a pipeline's) for `owner`: the version of
/// the step's function the run pinned when it started (else its current one),
/// with `input`; an error naming why when there is no such function or version.
pub async fn step_spec(
    store: &JobStore,
    owner: &Owner,
    origin: JobOrigin,
    input: Value,
) -> Result<JobSpec, StepSpecError> {
    let JobOrigin::Pipeline { step, steps, versions, .. } = &origin else {
        return Err(StepSpecError::NotAStep);
    };
    let step = *step;
    let Some(name) = steps.get(step as usize) else { return Err(StepSpecError::NoSuchStep(step)) };
    let Some(function) = store.function(&owner.subject, name).await? else {
        return Err(StepSpecError::FunctionNotFound { step, name: name.clone() });
    };
    let spec = match versions.get(step as usize) {
        Some(&version) => function.invocation_of(version, input).ok_or_else(|| StepSpecError::VersionGone {
            step,
            name: name.clone(),
            version,
        })?,
        None => function.invocation(input).ok_or_else(|| StepSpecError::NoVersion { step, name: name.clone() })?,
    };
    Ok(JobSpec { origin: Some(origin.clone()), ..spec })
}

/// The follow-up of a step's job `record` (of `origin`, a pipeline's): after a
/// success, the next step is queued with this one's output as its input. Any
/// other end ends the run, which its steps' jobs already tell. A step that cannot
/// be queued is ended with the reason, through `results`.
pub async fn step_done(
    submit: &Submitter,
    results: &ResultPublisher,
    record: &JobRecord,
    origin: &JobOrigin,
) -> Result<(), StepError> {
    let JobOrigin::Pipeline { run, step, steps, versions } = origin else { return Ok(()) };
    let Some(job) = record.job.as_ref() else { return Ok(()) };
    if record.status != JobStatus::Succeeded {
        tracing::info!(run = %run, step, status = %record.status, "pipeline run ended by its step");
        return Ok(());
    }
    let next = step + 1;
    let Some(name) = steps.get(next as usize) else {
        tracing::info!(run = %run, steps = steps.len(), "pipeline run succeeded");
        return Ok(());
    };
    let store = &submit.store;
    let owner = &job.owner;
    let next_id = JobOrigin::pipeline_step_id(&owner.subject, run, next);
    if store.get(next_id).await?.is_some() {
        return Ok(()); // queued before (this is a replay), or the run was cancelled
    }
    let input = record.result.as_ref().and_then(|r| r.output.clone()).unwrap_or(Value::Null);
    let next_origin =
        JobOrigin::Pipeline { run: run.clone(), step: next, steps: steps.clone(), versions: versions.clone() };
    let spec = match step_spec(store, owner, next_origin, input).await {
        Ok(spec) => spec,
        Err(StepSpecError::Store(error)) => return Err(error.into()),
        Err(why) => {
            let why = why.to_string();
            end_unmade_step(submit, results, next_id, owner, |a| JobResult::not_queued(a, &why)).await?;
            return Ok(());
        }
    };
    // an admitted run's steps are not refused for the backlog or the owner's rate:
    // that would hold up the results reader, which runs this and every owner
    // shares. A step still counts against its owner's rate, so a pipeline makes no
    // more jobs than its owner could submit: the owner's next requests wait instead
    let rate = &submit.settings.rate_limit;
    store.admission(&owner.subject, rate.requests, rate.window_secs).await?;
    match submit.queue(spec, None, 0, owner.clone()).await {
        Ok((id, _, _)) => {
            tracing::info!(run = %run, step = next, job_id = %id, function = %name, "pipeline step queued");
            Ok(())
        }
        Err(error) if error.is_transient() => Err(StepError::Submit(error)),
        Err(error) => {
            let why = error.to_string();
            end_unmade_step(submit, results, next_id, owner, |a| JobResult::not_queued(a, &why)).await?;
            Ok(())
        }
    }
}

/// What [`end_unmade_step`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unmade {
    /// The step has its terminal result now, and never a job.
    Ended,
    /// The step's job is made already: it is left as it is.
    Exists,
}

/// Ends step `id` of `owner`'s run, which has no job, with the result `end`
/// makes: its origin is claimed first, so no job of it is made meanwhile, and a
/// later attempt to make one finds it ended.
pub async fn end_unmade_step(
    submit: &Submitter,
    results: &ResultPublisher,
    id: JobId,
    owner: &Owner,
    end: impl FnOnce(&Attempt) -> JobResult,
) -> Result<Unmade, UnmadeError> {
    let store = &submit.store;
    match store.claim_origin(id, submit.settings.idempotency_ttl_secs).await? {
        OriginClaim::Claimed => {}
        OriginClaim::Exists => return Ok(Unmade::Exists),
        OriginClaim::Busy => return Err(UnmadeError::Busy),
    }
    let attempt = Attempt {
        job_id: id,
        owner: owner.clone(),
        submitted_at: Utc::now(),
        executor_id: FRONTEND_EXECUTOR_ID.to_owned(),
        number: 1,
        started_at: None,
        delivery: Default::default(),
        function: None,
    };
    let result = end(&attempt);
    if let Err(error) = results.publish(&result).await {
        tracing::warn!(%error, job_id = %id, "the result of an unmade pipeline step was not published");
        store.release_origin(id).await?;
        return Err(error.into());
    }
    store.apply(&JobEvent::Finished(result.clone())).await?;
    tracing::info!(job_id = %id, status = %result.status, reason = result.reason.as_deref().unwrap_or(""), "pipeline step ended before it was made");
    Ok(Unmade::Ended)
}

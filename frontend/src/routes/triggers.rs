//! Triggers of the caller's functions: schedules and topic bindings, owned,
//! listed, paused, resumed and deleted here (invoke by name is the HTTP
//! trigger). Each change goes to the compacted triggers topic first, then to the
//! view. Anyone else's trigger is 404, exactly like a missing one.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use gitfaas_common::schema::{
    is_valid_function_name, Schedule, TopicBinding, TriggerSource, TriggerState, MAX_TOPIC_CONCURRENCY,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::jobs::admit_json;
use super::topics::check_topic;
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::store::change_definition;
use crate::triggers::{parse_schedule, tick_input};
use crate::AppState;

/// A trigger: exactly one of `schedule` and `topic`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The caller's function each firing invokes (its current version then).
    pub function: String,
    pub schedule: Option<Schedule>,
    pub topic: Option<TopicBinding>,
    /// Whether it fires from the start (default true).
    pub enabled: Option<bool>,
}

/// A trigger as its owner sees it.
#[derive(Serialize, ToSchema)]
pub struct TriggerView {
    pub name: String,
    pub function: String,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<TopicBinding>,
    /// The last tick the scheduler fired (schedules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tick: Option<DateTime<Utc>>,
    /// The next tick due (enabled schedules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_tick: Option<DateTime<Utc>>,
    /// Ticks skipped because the owner was over their rate limit (schedules):
    /// a trigger's jobs count against its owner's rate like the owner's requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_ticks: Option<u64>,
    /// The last time the owner's rate limit held a firing back: a tick skipped,
    /// or a record left waiting for the owner's next window (topics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TriggerList {
    pub triggers: Vec<TriggerView>,
}

async fn view(state: &AppState, trigger: TriggerState) -> Result<TriggerView, ApiError> {
    let (schedule, topic) = match trigger.source {
        TriggerSource::Schedule(schedule) => (Some(schedule), None),
        TriggerSource::Topic(topic) => (None, Some(topic)),
    };
    let mut last_tick = None;
    let mut next_tick = None;
    let key = TriggerState::key_of(&trigger.owner.subject, &trigger.name);
    let (skipped, throttled_ms) = state.store.throttled(&key).await?;
    let skipped_ticks = schedule.is_some().then_some(skipped);
    if let Some(schedule) = &schedule {
        last_tick = state.store.last_tick(&key).await?;
        if trigger.enabled {
            if let Ok((cron, zone)) = parse_schedule(schedule) {
                let since = Utc::now().max(trigger.updated_at);
                next_tick = cron.after(&since.with_timezone(&zone)).next().map(|t| t.with_timezone(&Utc));
            }
        }
    }
    Ok(TriggerView {
        name: trigger.name,
        function: trigger.function,
        enabled: trigger.enabled,
        schedule,
        topic,
        last_tick: last_tick.and_then(DateTime::<Utc>::from_timestamp_millis),
        next_tick,
        skipped_ticks,
        throttled_at: throttled_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
        created_at: trigger.created_at,
        updated_at: trigger.updated_at,
    })
}

/// The source a request names, checked: a valid schedule whose ticks' jobs
/// would be accepted, or topics the operator allows (and never gitfaas's own).
fn checked_source(state: &AppState, name: &str, request: TriggerRequest) -> Result<TriggerSource, ApiError> {
    match (request.schedule, request.topic) {
        (Some(schedule), None) => {
            let (cron, zone) = parse_schedule(&schedule).map_err(|e| ApiError::invalid("schedule", e))?;
            let Some(next) = cron.after(&Utc::now().with_timezone(&zone)).next() else {
                return Err(ApiError::invalid("schedule.cron", "the schedule never fires"));
            };
            check_tick_input(state, name, next.with_timezone(&Utc), &schedule)?;
            Ok(TriggerSource::Schedule(schedule))
        }
        (None, Some(topic)) => {
            if !(1..=MAX_TOPIC_CONCURRENCY).contains(&topic.concurrency) {
                let detail = format!("concurrency is 1 to {MAX_TOPIC_CONCURRENCY}");
                return Err(ApiError::invalid("topic.concurrency", detail));
            }
            for name in std::iter::once(&topic.input).chain(topic.output.as_ref()) {
                check_topic(state, "topic", name)?;
            }
            if topic.output.as_ref() == Some(&topic.input) {
                return Err(ApiError::invalid("topic.output", "the output topic must not be the input topic"));
            }
            Ok(TriggerSource::Topic(topic))
        }
        _ => Err(ApiError::invalid("schedule", "a trigger has exactly one of schedule and topic")),
    }
}

/// Claims the binding's topics for `subject`, refusing one another owner holds:
/// a trigger reads and writes only its owner's topics (and shared ones), so no
/// owner reads another's results or feeds records to another's function.
async fn claim_topics(state: &AppState, subject: &str, binding: &TopicBinding) -> Result<(), ApiError> {
    for topic in std::iter::once(&binding.input).chain(binding.output.as_ref()) {
        if !state.settings.triggers.is_shared(topic) && state.store.claim_topic(topic, subject).await? != subject {
            return Err(ApiError::TopicOfAnotherOwner(topic.clone()));
        }
    }
    Ok(())
}

/// Refuses a schedule whose ticks' jobs the job checks would refuse: a tick's
/// input nests the schedule's one level deeper and is a little larger.
fn check_tick_input(state: &AppState, name: &str, tick: DateTime<Utc>, schedule: &Schedule) -> Result<(), ApiError> {
    let input = tick_input(name, tick, &schedule.input);
    if let Err(error) = gitfaas_common::limits::check_depth(&input) {
        let detail = format!("each tick's job input (the schedule's input inside it) would be {error}");
        return Err(ApiError::invalid("schedule.input", detail));
    }
    let bytes = serde_json::to_vec(&input).map_or(usize::MAX, |v| v.len());
    let most = state.settings.max_input_bytes;
    if bytes > most {
        let detail = format!("each tick's job input would be {bytes} bytes; the limit is {most}");
        return Err(ApiError::invalid("schedule.input", detail));
    }
    Ok(())
}

fn strict<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        ApiError::InvalidRequest { detail: format!("invalid {what}: {}", error.inner()), field: Some(path) }
    })
}

async fn own_trigger(state: &AppState, caller: &Caller, name: &str) -> Result<TriggerState, ApiError> {
    if !is_valid_function_name(name) {
        return Err(ApiError::TriggerNotFound);
    }
    state.store.trigger(&caller.subject, name).await?.ok_or(ApiError::TriggerNotFound)
}

/// Applies `edit` to the trigger's latest state under its lock, through the
/// definitions' one write path ([`crate::store::change_definition`]).
async fn change(
    state: &AppState,
    subject: &str,
    name: &str,
    edit: impl FnOnce(Option<TriggerState>) -> Result<Option<TriggerState>, ApiError>,
) -> Result<Option<TriggerState>, ApiError> {
    Ok(change_definition(&state.store, &state.publisher, subject, name, edit).await?)
}

/// Create or replace a trigger of one of the caller's functions.
#[utoipa::path(put, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path, description = "1 to 63 of a-z, 0-9, '-', '_', '.'")),
    request_body(content = TriggerRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "a new trigger", body = TriggerView),
        (status = 200, description = "the trigger, replaced", body = TriggerView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "a topic the operator does not allow, or another owner's", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such function", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another change of the trigger is under way", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn put(
    http: HttpRequest,
    payload: web::Payload,
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !is_valid_function_name(&name) {
        return Err(ApiError::invalid("name", "invalid trigger name; names are as function names"));
    }
    let (body, _) = admit_json(&http, payload, &caller, &state).await?;
    let request = strict::<TriggerRequest>(&body, "trigger")?;
    if state.store.function(&caller.subject, &request.function).await?.is_none() {
        return Err(ApiError::FunctionNotFound);
    }
    let (function, enabled) = (request.function.clone(), request.enabled.unwrap_or(true));
    let source = checked_source(&state, &name, request)?;
    if let TriggerSource::Topic(binding) = &source {
        for topic in std::iter::once(&binding.input).chain(binding.output.as_ref()) {
            if state.publisher.partitions(topic, std::time::Duration::from_secs(5)).await? == 0 {
                return Err(ApiError::invalid("topic", format!("topic {topic:?} does not exist")));
            }
        }
    }
    let previous = state.store.trigger(&caller.subject, &name).await?;
    let most = state.settings.triggers.max_per_owner;
    if previous.is_none() && state.store.trigger_count(&caller.subject).await? >= most {
        return Err(ApiError::invalid("name", format!("an owner has at most {most} triggers; delete one first")));
    }
    if let TriggerSource::Topic(binding) = &source {
        claim_topics(&state, &caller.subject, binding).await?;
    }
    let mut created = false;
    let saved = change(&state, &caller.subject, &name, |latest| {
        created = latest.is_none();
        let mut trigger = TriggerState::new(caller.owner(), &name, &function, source, latest.as_ref());
        trigger.enabled = enabled;
        Ok(Some(trigger))
    })
    .await?;
    let trigger = saved.ok_or(ApiError::TriggerNotFound)?;
    tracing::info!(trigger = %name, %function, enabled, "trigger saved");
    let view = view(&state, trigger).await?;
    Ok(if created { HttpResponse::Created() } else { HttpResponse::Ok() }.json(view))
}

/// The caller's triggers.
#[utoipa::path(get, path = "/v1/triggers", tag = "triggers",
    responses((status = 200, body = TriggerList),
        (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut triggers = Vec::new();
    for trigger in state.store.triggers(&caller.subject).await? {
        triggers.push(view(&state, trigger).await?);
    }
    Ok(HttpResponse::Ok().json(TriggerList { triggers }))
}

/// A trigger.
#[utoipa::path(get, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path)),
    responses((status = 200, body = TriggerView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get(
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let trigger = own_trigger(&state, &caller, &name).await?;
    Ok(HttpResponse::Ok().json(view(&state, trigger).await?))
}

async fn set_enabled(state: &AppState, caller: &Caller, name: &str, enabled: bool) -> Result<HttpResponse, ApiError> {
    let mut trigger = own_trigger(state, caller, name).await?;
    if trigger.enabled != enabled {
        let saved = change(state, &caller.subject, name, |latest| {
            let mut trigger = latest.ok_or(ApiError::TriggerNotFound)?;
            trigger.enabled = enabled;
            // a resumed schedule goes on from now: the ticks of its pause are not caught up
            trigger.updated_at = Utc::now();
            Ok(Some(trigger))
        })
        .await?;
        trigger = saved.ok_or(ApiError::TriggerNotFound)?;
        tracing::info!(trigger = %name, enabled, "trigger paused or resumed");
    }
    Ok(HttpResponse::Ok().json(view(state, trigger).await?))
}

/// Pause a trigger: it makes no jobs until resumed.
#[utoipa::path(post, path = "/v1/triggers/{name}/pause", tag = "triggers",
    params(("name" = String, Path)),
    responses((status = 200, body = TriggerView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another change of the trigger is under way", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn pause(
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&state, &caller, &name, false).await
}

/// Resume a paused trigger (a schedule from its next tick on).
#[utoipa::path(post, path = "/v1/triggers/{name}/resume", tag = "triggers",
    params(("name" = String, Path)),
    responses((status = 200, body = TriggerView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another change of the trigger is under way", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn resume(
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&state, &caller, &name, true).await
}

/// Delete a trigger (the jobs it made stay).
#[utoipa::path(delete, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another change of the trigger is under way", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete(
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    own_trigger(&state, &caller, &name).await?;
    change(&state, &caller.subject, &name, |latest| latest.map(|_| None).ok_or(ApiError::TriggerNotFound)).await?;
    tracing::info!(trigger = %name, "trigger deleted");
    Ok(HttpResponse::NoContent().finish())
}

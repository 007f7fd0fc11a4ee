//! Named functions: deployed once — a name bound to a repository and a ref, each
//! deployment a version pinned to the commit the ref named then — and invoked by
//! name (the HTTP trigger). Names are the owner's: anyone else's function is 404,
//! exactly like a missing one.
//!
//! A deployment resolves its ref through the executors (a job that only resolves
//! the ref: the frontend never reaches a repository itself), then publishes the
//! function's new state to the compacted functions topic, its source of truth,
//! and stores it in the view. Changes of one function are made one at a time.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use gitfaas_common::schema::{is_valid_function_name, FunctionState, FunctionVersion, Mode};
use gitfaas_common::{JobSpec, JobStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::jobs::{admit_json, answer, queue, WaitQuery};
use super::wait::{self, Waited};
use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::request;
use crate::store::change_definition;
use crate::AppState;

/// How long a deployment waits for its ref to be resolved.
const RESOLVE_WAIT_SECS: u64 = wait::MAX_WAIT_SECS;

/// One version of a function as its owner sees it.
#[derive(Serialize, ToSchema)]
pub struct VersionView {
    pub version: u32,
    pub commit_sha: String,
    pub repo: String,
    /// The ref as deployed; the version runs `commit_sha`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub runtime: Option<String>,
    /// The entry the deployment named, over the manifest's.
    pub entry: Option<String>,
    /// The directory the function runs in; none: the repository's root.
    pub workdir: Option<String>,
    /// The `command` runtime's or a script's arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `function` or `script` as deployed; none: the manifest's, else `function`.
    #[schema(value_type = Option<String>)]
    pub mode: Option<Mode>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<&FunctionVersion> for VersionView {
    fn from(v: &FunctionVersion) -> Self {
        Self {
            version: v.version,
            commit_sha: v.commit_sha.clone(),
            repo: v.spec.repo.to_string(),
            git_ref: v.spec.git_ref.to_string(),
            runtime: v.spec.runtime.as_deref().map(str::to_owned),
            entry: v.spec.entry.as_deref().map(str::to_owned),
            workdir: v.spec.workdir.as_deref().map(str::to_owned),
            args: v.spec.args.clone(),
            mode: v.spec.mode,
            created_by: v.created_by.clone(),
            created_at: v.created_at,
        }
    }
}

/// A function: its current version, and how many it keeps.
#[derive(Serialize, ToSchema)]
pub struct FunctionView {
    pub name: String,
    pub current: VersionView,
    pub versions: usize,
    pub updated_at: DateTime<Utc>,
    pub invoke: String,
}

impl FunctionView {
    fn of(state: &FunctionState) -> Option<Self> {
        Some(Self {
            name: state.name.clone(),
            current: state.current_version()?.into(),
            versions: state.versions.len(),
            updated_at: state.updated_at,
            invoke: format!("/v1/functions/{}/invoke", state.name),
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct FunctionList {
    pub functions: Vec<FunctionView>,
}

#[derive(Serialize, ToSchema)]
pub struct VersionList {
    pub current: u32,
    pub versions: Vec<VersionView>,
}

/// An invocation: the input handed to the function. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    #[serde(default)]
    #[schema(value_type = Value)]
    pub input: Value,
}

/// Which kept version becomes current again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub version: u32,
}

fn checked_name(name: &str) -> Result<&str, ApiError> {
    if is_valid_function_name(name) {
        Ok(name)
    } else {
        let rule = "1 to 63 of a-z, 0-9, '-', '_' and '.', starting with a letter or digit";
        Err(ApiError::invalid("name", format!("invalid function name; names are {rule}")))
    }
}

async fn own_function(state: &AppState, caller: &Caller, name: &str) -> Result<FunctionState, ApiError> {
    if !is_valid_function_name(name) {
        return Err(ApiError::FunctionNotFound);
    }
    state.store.function(&caller.subject, name).await?.ok_or(ApiError::FunctionNotFound)
}

pub(super) fn strict<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer)
        .map_err(|error| ApiError::InvalidRequest { detail: format!("invalid {what}: {}", error.inner()), field: None })
}

/// Deploy a function: a new version of it, pinned to the commit its ref names now.
#[utoipa::path(put, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "1 to 63 of a-z, 0-9, '-', '_', '.'")),
    request_body(content = request::SubmitRequest, content_type = "application/json",
        description = "as a job, without `input` (it comes with each invocation)"),
    responses(
        (status = 201, description = "a new function, at version 1", body = FunctionView),
        (status = 200, description = "a new version of the function", body = FunctionView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "a `publish` topic is not allowed or is another owner's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another change of the function is under way", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the ref could not be resolved", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "the ref was not resolved in time", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn deploy(
    http: HttpRequest,
    payload: web::Payload,
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = checked_name(&name)?.to_owned();
    let (body, backlog) = admit_json(&http, payload, &caller, &state).await?;
    let submitted = request::parse(&body)?;
    if !submitted.input.is_null() {
        return Err(ApiError::invalid("input", "a function's input comes with each invocation"));
    }
    let spec = submitted.into_spec(&state.settings)?;
    let commit = resolve(&state, &caller, &spec, backlog).await?;
    let changed = change(&state, &caller, &name, |previous| {
        Ok(Some(FunctionState::deployed(previous, caller.owner(), &name, commit, spec)))
    })
    .await?;
    let view = changed.as_ref().and_then(FunctionView::of).ok_or(ApiError::FunctionNotFound)?;
    tracing::info!(function = %name, version = view.current.version, commit = %view.current.commit_sha, "function deployed");
    let created = view.current.version == 1 && view.versions == 1;
    Ok(if created { HttpResponse::Created() } else { HttpResponse::Ok() }.json(view))
}

/// The commit `spec`'s ref names now, asked of an executor by a job that only
/// resolves it.
async fn resolve(state: &AppState, caller: &Caller, spec: &JobSpec, backlog: u64) -> Result<String, ApiError> {
    let resolving = JobSpec { resolve_only: true, input: Value::Null, ..spec.clone() };
    let (id, _, _) = queue(resolving, None, backlog, caller, state).await?;
    match wait::for_result(state, caller, &id.to_string(), RESOLVE_WAIT_SECS).await? {
        Waited::Ended(result) if result.status == JobStatus::Succeeded => {
            result.commit_sha.ok_or_else(|| ApiError::DeployFailed("the executor named no commit".into()))
        }
        Waited::Ended(result) => {
            Err(ApiError::DeployFailed(result.reason.unwrap_or_else(|| result.status.to_string())))
        }
        Waited::Pending(status) => Err(ApiError::DeployTimeout(RESOLVE_WAIT_SECS, status.to_string())),
    }
}

/// Applies `edit` to the function's latest state under its lock, through the
/// definitions' one write path ([`crate::store::change_definition`]).
async fn change(
    state: &AppState,
    caller: &Caller,
    name: &str,
    edit: impl FnOnce(Option<FunctionState>) -> Result<Option<FunctionState>, ApiError>,
) -> Result<Option<FunctionState>, ApiError> {
    Ok(change_definition(&state.store, &state.publisher, &caller.subject, name, edit).await?)
}

/// The caller's functions.
#[utoipa::path(get, path = "/v1/functions", tag = "functions",
    responses((status = 200, body = FunctionList),
        (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let functions = state.store.functions(&caller.subject).await?;
    Ok(HttpResponse::Ok().json(FunctionList { functions: functions.iter().filter_map(FunctionView::of).collect() }))
}

/// A function.
#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path)),
    responses((status = 200, body = FunctionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get(
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let function = own_function(&state, &caller, &name).await?;
    Ok(HttpResponse::Ok().json(FunctionView::of(&function).ok_or(ApiError::FunctionNotFound)?))
}

/// A function's kept versions, oldest first.
#[utoipa::path(get, path = "/v1/functions/{name}/versions", tag = "functions",
    params(("name" = String, Path)),
    responses((status = 200, body = VersionList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn versions(
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let function = own_function(&state, &caller, &name).await?;
    let versions = function.versions.iter().map(VersionView::from).collect();
    Ok(HttpResponse::Ok().json(VersionList { current: function.current, versions }))
}

/// Make an earlier (kept) version current again.
#[utoipa::path(post, path = "/v1/functions/{name}/rollback", tag = "functions",
    params(("name" = String, Path)),
    request_body(content = RollbackRequest, content_type = "application/json"),
    responses((status = 200, body = FunctionView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn rollback(
    http: HttpRequest,
    payload: web::Payload,
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    own_function(&state, &caller, &name).await?;
    let (body, _) = admit_json(&http, payload, &caller, &state).await?;
    let to = strict::<RollbackRequest>(&body, "rollback request")?.version;
    let changed = change(&state, &caller, &name, |previous| {
        let previous = previous.ok_or(ApiError::FunctionNotFound)?;
        previous.rolled_back(to).map(Some).map_err(|e| ApiError::invalid("version", e.to_string()))
    })
    .await?;
    tracing::info!(function = %name, version = to, "function rolled back");
    Ok(HttpResponse::Ok().json(changed.as_ref().and_then(FunctionView::of).ok_or(ApiError::FunctionNotFound)?))
}

/// Delete a function and its versions (jobs it ran stay).
#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete(
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    own_function(&state, &caller, &name).await?;
    change(&state, &caller, &name, |previous| previous.map(|_| None).ok_or(ApiError::FunctionNotFound)).await?;
    tracing::info!(function = %name, "function deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Invoke a function by name (its HTTP trigger): a job of its current version.
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions",
    params(("name" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "a retried invocation with the same key returns the same job"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` (RFC 7240): answer with the result if the job ends within N seconds (at most 60)"),
        WaitQuery),
    request_body(content = InvokeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "the job ended within the requested wait: its result", body = gitfaas_common::JobResult),
        (status = 202, description = "accepted", body = super::jobs::SubmitResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "a `publish` topic is not allowed or is another owner's", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn invoke(
    http: HttpRequest,
    payload: web::Payload,
    name: web::Path<String>,
    query: web::Query<WaitQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    wait::from_query(query.wait)?;
    let function = own_function(&state, &caller, &name).await?;
    let (body, backlog) = admit_json(&http, payload, &caller, &state).await?;
    let input = if body.is_empty() { Value::Null } else { strict::<InvokeRequest>(&body, "invocation")?.input };
    let spec = function.invocation(input).ok_or(ApiError::FunctionNotFound)?;
    let key = http.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    // a key names one invocation of one function
    let fingerprinted = [function.name.as_bytes(), b"\0", &body].concat();
    let queued = queue(spec, Some((&fingerprinted, key)), backlog, &caller, &state).await?;
    answer(&http, &query, &caller, &state, queued).await
}

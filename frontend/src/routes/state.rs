//! A named function's state, as its owner reads and deletes it. The state is
//! the owner's own: every route reads the caller's scope (owner + function), so
//! no one reaches another's. Reads come from this frontend's view of the state
//! topic (folded in memory from the topic's beginning at start, read committed);
//! a deletion is a commit on the topic, answered once this frontend's view has
//! applied it.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use gitfaas_common::schema::is_valid_function_name;
use gitfaas_common::state::{Scope, StateCommit, StateOp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::identity::Caller;
use crate::problem::{ApiError, Problem};
use crate::AppState;

/// How long a request waits for the view to have read the state topic.
const READY_WAIT: Duration = Duration::from_secs(10);
/// How long a deletion waits to see its own commit applied.
const APPLIED_WAIT: Duration = Duration::from_secs(10);

/// A function's keys and their values.
#[derive(Serialize, ToSchema)]
pub struct StateView {
    pub function: String,
    /// Key → value, in key order.
    #[schema(value_type = Object)]
    pub keys: BTreeMap<String, Value>,
    pub count: usize,
}

/// One key's value.
#[derive(Serialize, ToSchema)]
pub struct StateEntry {
    pub key: String,
    #[schema(value_type = Value)]
    pub value: Value,
}

/// What a deletion removed.
#[derive(Serialize, ToSchema)]
pub struct StateDeleted {
    pub function: String,
    /// The key deleted; none: every key.
    pub key: Option<String>,
    /// Keys there were before the deletion.
    pub deleted: usize,
}

#[derive(Deserialize, IntoParams)]
pub struct PrefixQuery {
    /// Only the keys starting with this.
    #[serde(default)]
    pub prefix: String,
}

async fn scope_of(state: &AppState, caller: &Caller, name: &str) -> Result<Scope, ApiError> {
    if !is_valid_function_name(name) {
        return Err(ApiError::FunctionNotFound);
    }
    if !state.functions_state.ready(READY_WAIT).await {
        return Err(ApiError::Unavailable("the state view"));
    }
    let scope = Scope::new(caller.subject.clone(), name);
    let held = state.functions_state.read(|view| view.scope(&scope).is_some_and(|s| !s.values.is_empty()));
    if !held && state.store.function(&caller.subject, name).await?.is_none() {
        return Err(ApiError::FunctionNotFound);
    }
    Ok(scope)
}

/// A function's state: its keys (those starting with `prefix`) and their values.
#[utoipa::path(get, path = "/v1/functions/{name}/state", tag = "functions",
    params(("name" = String, Path), PrefixQuery),
    responses((status = 200, body = StateView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list(
    name: web::Path<String>,
    query: web::Query<PrefixQuery>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope_of(&state, &caller, &name).await?;
    let keys: BTreeMap<String, Value> = state.functions_state.read(|view| {
        let held = view.scope(&scope);
        held.map(|s| s.with_prefix(&query.prefix).map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    });
    Ok(HttpResponse::Ok().json(StateView { function: name.into_inner(), count: keys.len(), keys }))
}

/// One key of a function's state.
#[utoipa::path(get, path = "/v1/functions/{name}/state/{key}", tag = "functions",
    params(("name" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = StateEntry),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get(
    path: web::Path<(String, String)>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, key) = path.into_inner();
    let scope = scope_of(&state, &caller, &name).await?;
    let value = state.functions_state.read(|view| view.scope(&scope).and_then(|s| s.values.get(&key).cloned()));
    let value = value.ok_or_else(|| ApiError::StateKeyNotFound(key.clone()))?;
    Ok(HttpResponse::Ok().json(StateEntry { key, value }))
}

/// Delete every key of a function's state.
#[utoipa::path(delete, path = "/v1/functions/{name}/state", tag = "functions",
    params(("name" = String, Path)),
    responses((status = 200, body = StateDeleted),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn clear(
    name: web::Path<String>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope_of(&state, &caller, &name).await?;
    let deleted = state.functions_state.read(|view| view.scope(&scope).map_or(0, |s| s.values.len()));
    commit(&state, scope, StateOp::Clear).await?;
    Ok(HttpResponse::Ok().json(StateDeleted { function: name.into_inner(), key: None, deleted }))
}

/// Delete one key of a function's state.
#[utoipa::path(delete, path = "/v1/functions/{name}/state/{key}", tag = "functions",
    params(("name" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = StateDeleted),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn delete(
    path: web::Path<(String, String)>,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, key) = path.into_inner();
    let scope = scope_of(&state, &caller, &name).await?;
    let held = state.functions_state.read(|view| view.scope(&scope).is_some_and(|s| s.values.contains_key(&key)));
    if !held {
        return Err(ApiError::StateKeyNotFound(key));
    }
    commit(&state, scope, StateOp::Delete { key: key.clone() }).await?;
    Ok(HttpResponse::Ok().json(StateDeleted { function: name, key: Some(key), deleted: 1 }))
}

/// Publishes `op` as a commit of its own and waits until this frontend's view
/// applied it (so the owner's next read here sees it).
async fn commit(state: &AppState, scope: Scope, op: StateOp) -> Result<(), ApiError> {
    let id = format!("api:{}", gitfaas_common::JobId::new());
    let commit = StateCommit::new(scope.clone(), id.clone(), vec![op]);
    state.publisher.publish(&commit).await?;
    let applied = || state.functions_state.read(|view| view.has_applied(&scope, &id));
    let deadline = tokio::time::Instant::now() + APPLIED_WAIT;
    while !applied() {
        if tokio::time::Instant::now() > deadline {
            return Err(ApiError::Unavailable("the state view"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

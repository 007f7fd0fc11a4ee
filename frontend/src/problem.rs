//! Errors as RFC 7807 `application/problem+json`, each with a stable `type`.
//!
//! [`ApiError`] is the routes' error alone. The work they call raises its own
//! errors (submitting a job, a pipeline's steps, a definition's change, the
//! store, the broker…), and this is the one place each becomes an HTTP answer,
//! by the `From` impls at the end.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use gitfaas_common::kafka::PublishError;
use rdkafka::error::KafkaError;
use serde::Serialize;

use crate::identity::AuthError;
use crate::pipelines::{StepSpecError, UnmadeError};
use crate::request::Invalid;
use crate::store::{ChangeError, Kind};
use crate::submit::SubmitError;

pub const PROBLEM_BASE: &str = "https://gitfaas.dev/problems/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    InvalidRequest { detail: String, field: Option<String> },
    #[error("the request body must be json (content-type application/json)")]
    UnsupportedMediaType,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Unauthorized(String),
    #[error("this operation needs the admin role")]
    Forbidden,
    #[error("job not found")]
    NotFound,
    #[error("no such route")]
    NoRoute,
    #[error("pipeline run not found")]
    PipelineNotFound,
    #[error("step {step}: function {name} not found")]
    StepFunctionNotFound { step: usize, name: String },
    #[error("the pipeline run has already finished; its status is {0}")]
    PipelineFinished(&'static str),
    #[error("method not allowed; allowed: {0}")]
    MethodNotAllowed(&'static str),
    #[error("no observer report has been seen yet")]
    NoReport,
    #[error("job has not finished; its status is {status}")]
    NotFinished { status: String },
    #[error("job has already finished; its status is {status}")]
    AlreadyFinished { status: String },
    #[error("{0} is unavailable; try again later")]
    Unavailable(&'static str),
    #[error("too many requests; retry after {0}s")]
    RateLimited(u64),
    #[error("{0} of your jobs are queued or running, the most allowed; retry when some have finished")]
    TooManyUnfinished(u64),
    #[error("too many jobs are waiting; retry after {0}s")]
    Overloaded(u64),
    #[error("this idempotency key was used for a different request")]
    IdempotencyMismatch,
    #[error("the job of this idempotency key was erased; submit with a new key to run it again")]
    IdempotentJobErased,
    #[error("another request with this idempotency key is being submitted; retry after 1s")]
    IdempotencyInFlight,
    #[error("{0} event streams are open for this caller already; close one first")]
    TooManyStreams(usize),
    #[error("function not found")]
    FunctionNotFound,
    #[error("the function's state has no key {0:?}")]
    StateKeyNotFound(String),
    #[error("another change of this function is under way; try again")]
    FunctionBusy,
    #[error("another change of this trigger is under way; try again")]
    TriggerBusy,
    #[error("the function could not be deployed: {0}")]
    DeployFailed(String),
    #[error("the function's ref was not resolved within {0}s; its deployment job is {1}")]
    DeployTimeout(u64, String),
    #[error("trigger not found")]
    TriggerNotFound,
    #[error("topic {0:?} is not one the operator lets triggers read or write")]
    TopicNotAllowed(String),
    #[error("topic {0:?} belongs to another owner (the first to bind it); bind topics of your own")]
    TopicOfAnotherOwner(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// RFC 7807 problem details.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    /// The request field at fault, for invalid requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// The job's current status, for operations that need a finished job.
    #[serde(skip_serializing_if = "Option::is_none")]
    job_status: Option<&'a str>,
}

impl ApiError {
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        ApiError::InvalidRequest { detail: detail.into(), field: Some(field.to_owned()) }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::InvalidRequest { .. } => ("invalid-request", "The request is invalid"),
            ApiError::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            ApiError::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            ApiError::Unauthorized(_) => ("unauthorized", "Authentication required"),
            ApiError::Forbidden => ("forbidden", "Forbidden"),
            ApiError::NotFound | ApiError::NoRoute | ApiError::NoReport => ("not-found", "Not found"),
            ApiError::PipelineNotFound | ApiError::StepFunctionNotFound { .. } => ("not-found", "Not found"),
            ApiError::PipelineFinished(_) => ("pipeline-finished", "The pipeline run has already finished"),
            ApiError::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            ApiError::NotFinished { .. } => ("job-not-finished", "The job has not finished"),
            ApiError::AlreadyFinished { .. } => ("job-finished", "The job has already finished"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
            ApiError::RateLimited(_) => ("rate-limited", "Too many requests"),
            ApiError::TooManyUnfinished(_) => ("too-many-unfinished-jobs", "Too many unfinished jobs"),
            ApiError::Overloaded(_) => ("overloaded", "Backlog full"),
            ApiError::IdempotencyMismatch => ("idempotency-key-reused", "Idempotency key reused"),
            ApiError::IdempotentJobErased => ("idempotency-key-job-erased", "The key's job was erased"),
            ApiError::IdempotencyInFlight => ("idempotency-key-in-flight", "The key's job is being submitted"),
            ApiError::TooManyStreams(_) => ("too-many-event-streams", "Too many event streams"),
            ApiError::FunctionNotFound => ("not-found", "Not found"),
            ApiError::StateKeyNotFound(_) => ("state-key-not-found", "No such key"),
            ApiError::FunctionBusy => ("function-busy", "The function is being changed"),
            ApiError::TriggerBusy => ("trigger-busy", "The trigger is being changed"),
            ApiError::DeployFailed(_) => ("deploy-failed", "The function could not be deployed"),
            ApiError::DeployTimeout(..) => ("deploy-timeout", "The deployment did not finish in time"),
            ApiError::TriggerNotFound => ("not-found", "Not found"),
            ApiError::TopicNotAllowed(_) => ("topic-not-allowed", "The topic is not allowed"),
            ApiError::TopicOfAnotherOwner(_) => ("topic-of-another-owner", "The topic belongs to another owner"),
            ApiError::Internal(_) => ("internal", "Internal error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NoRoute | ApiError::NoReport => StatusCode::NOT_FOUND,
            ApiError::PipelineNotFound | ApiError::StepFunctionNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::PipelineFinished(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFinished { .. } | ApiError::AlreadyFinished { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable(_) | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited(_) | ApiError::TooManyUnfinished(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::IdempotentJobErased => StatusCode::GONE,
            ApiError::IdempotencyInFlight => StatusCode::CONFLICT,
            ApiError::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::FunctionNotFound | ApiError::StateKeyNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::FunctionBusy | ApiError::TriggerBusy => StatusCode::CONFLICT,
            ApiError::DeployFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::DeployTimeout(..) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::TriggerNotFound => StatusCode::NOT_FOUND,
            ApiError::TopicNotAllowed(_) | ApiError::TopicOfAnotherOwner(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(error) = self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let (slug, title) = self.slug_and_title();
        let body = Problem {
            kind: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            field: match self {
                ApiError::InvalidRequest { field, .. } => field.as_deref(),
                ApiError::StepFunctionNotFound { .. } => Some("steps"),
                _ => None,
            },
            job_status: match self {
                ApiError::NotFinished { status } | ApiError::AlreadyFinished { status } => Some(status),
                _ => None,
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            ApiError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::MethodNotAllowed(allow) => {
                response.insert_header((header::ALLOW, *allow));
            }
            ApiError::RateLimited(secs) | ApiError::Overloaded(secs) => {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            ApiError::TooManyUnfinished(_) | ApiError::IdempotencyInFlight => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
        }
        response.json(body)
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        tracing::warn!(%error, "redis error");
        ApiError::Unavailable("the job store")
    }
}

impl From<PublishError> for ApiError {
    fn from(error: PublishError) -> Self {
        tracing::warn!(%error, "broker unavailable");
        ApiError::Unavailable("the message broker")
    }
}

/// The broker not answering a metadata request is the broker unavailable, as a
/// failed publish is.
impl From<KafkaError> for ApiError {
    fn from(error: KafkaError) -> Self {
        PublishError::Broker(error).into()
    }
}

impl From<Invalid> for ApiError {
    fn from(Invalid { detail, field }: Invalid) -> Self {
        ApiError::InvalidRequest { detail, field }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        ApiError::Unauthorized(error.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Invalid(invalid) => invalid.into(),
            SubmitError::Overloaded(secs) => ApiError::Overloaded(secs),
            SubmitError::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            SubmitError::IdempotentJobErased => ApiError::IdempotentJobErased,
            SubmitError::IdempotencyInFlight => ApiError::IdempotencyInFlight,
            SubmitError::Vanished => ApiError::NotFound,
            SubmitError::Broker(error) => error.into(),
            SubmitError::Store(error) => error.into(),
        }
    }
}

/// At a run's start (its step 1): the step's function is missing.
impl From<StepSpecError> for ApiError {
    fn from(error: StepSpecError) -> Self {
        match error {
            StepSpecError::Store(error) => error.into(),
            StepSpecError::FunctionNotFound { step, name }
            | StepSpecError::VersionGone { step, name, .. }
            | StepSpecError::NoVersion { step, name } => {
                ApiError::StepFunctionNotFound { step: step as usize + 1, name }
            }
            StepSpecError::NotAStep | StepSpecError::NoSuchStep(_) => ApiError::Internal(error.into()),
        }
    }
}

impl From<UnmadeError> for ApiError {
    fn from(error: UnmadeError) -> Self {
        match error {
            UnmadeError::Busy => ApiError::Overloaded(1),
            UnmadeError::Broker(error) => error.into(),
            UnmadeError::Store(error) => error.into(),
        }
    }
}

/// A change of a function or trigger definition; the edit's own refusal is
/// already the routes'.
impl<E: Into<ApiError>> From<ChangeError<E>> for ApiError {
    fn from(error: ChangeError<E>) -> Self {
        match error {
            ChangeError::Busy(Kind::Function) => ApiError::FunctionBusy,
            ChangeError::Busy(Kind::Trigger) => ApiError::TriggerBusy,
            ChangeError::Edit(error) => error.into(),
            ChangeError::TooLarge { field, detail } => ApiError::invalid(field, detail),
            ChangeError::Broker(error) => error.into(),
            ChangeError::Store(error) => error.into(),
        }
    }
}

//! Errors as RFC 7807 `application/problem+json`, each with a stable `type`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub const PROBLEM_BASE: &str = "https://gitfaas.dev/problems/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    InvalidRequest { detail: String, field: Option<String> },
    #[error("the request body must be json (content-type application/json)")]
    UnsupportedMediaType,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("job not found")]
    NotFound,
    #[error("no such route")]
    NoRoute,
    #[error("job has not finished; its status is {status}")]
    NotFinished { status: String },
    #[error("{0} is unavailable; try again later")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
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
            ApiError::NotFound | ApiError::NoRoute => ("not-found", "Not found"),
            ApiError::NotFinished { .. } => ("job-not-finished", "The job has not finished"),
            ApiError::Unavailable(_) => ("unavailable", "Service unavailable"),
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
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::NotFinished { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
                _ => None,
            },
            job_status: match self {
                ApiError::NotFinished { status } => Some(status),
                _ => None,
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if matches!(self, ApiError::Unavailable(_)) {
            response.insert_header((header::RETRY_AFTER, "5"));
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

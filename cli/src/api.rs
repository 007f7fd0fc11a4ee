//! The frontend's REST API, as the CLI calls it: one method per route, bodies as
//! JSON values (the CLI shows what the server sends, including fields it does not
//! know yet), refusals as [`Problem`]s.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::error::{CliError, Problem};

/// What `POST /v1/jobs` answered.
pub enum Submitted {
    /// 200: the job ended within the wait; its result.
    Finished(Value),
    /// 202: the job's id; it is still queued or running.
    Accepted { id: String },
}

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(base: &str, token: String) -> Self {
        // no overall timeout: a long-poll holds the request up to its wait
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build().expect("http client");
        Self { http, base: base.to_owned(), token }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response =
            request.send().await.map_err(|e| CliError::Unreachable { url: self.base.clone(), reason: chain(&e) })?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(problem_of(response).await.into())
        }
    }

    async fn json(&self, request: RequestBuilder) -> Result<Value, CliError> {
        let response = self.send(request).await?;
        read_json(&self.base, response).await
    }

    /// Submits `body`; with `wait` > 0 (`Prefer: wait`) the answer may be the result.
    pub async fn submit(&self, body: &Value, wait: u64) -> Result<Submitted, CliError> {
        let mut request = self.request(Method::POST, "/v1/jobs").json(body);
        if wait > 0 {
            request = request.header("prefer", format!("wait={wait}"));
        }
        let response = self.send(request).await?;
        let status = response.status();
        let json = read_json(&self.base, response).await?;
        match (status, json["id"].as_str()) {
            (StatusCode::OK, _) => Ok(Submitted::Finished(json)),
            (_, Some(id)) => Ok(Submitted::Accepted { id: id.to_owned() }),
            _ => Err(CliError::Protocol {
                url: self.base.clone(),
                reason: format!("a submit answer without id: {json}"),
            }),
        }
    }

    /// Any route: its status and JSON body (none for 204); with `wait` > 0, `Prefer: wait`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        wait: u64,
    ) -> Result<(StatusCode, Value), CliError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        if wait > 0 {
            request = request.header("prefer", format!("wait={wait}"));
        }
        let response = self.send(request).await?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok((status, Value::Null));
        }
        Ok((status, read_json(&self.base, response).await?))
    }

    pub async fn status(&self, id: &str) -> Result<Value, CliError> {
        self.json(self.request(Method::GET, &format!("/v1/jobs/{}", segment(id)))).await
    }

    /// The result, waiting up to `wait` seconds: `None` while the job is unfinished.
    pub async fn result(&self, id: &str, wait: u64) -> Result<Option<Value>, CliError> {
        let path = format!("/v1/jobs/{}/result?wait={wait}", segment(id));
        match self.json(self.request(Method::GET, &path)).await {
            Ok(result) => Ok(Some(result)),
            Err(CliError::Api(problem)) if problem.status == 409 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The job's log so far, as text.
    pub async fn logs(&self, id: &str) -> Result<String, CliError> {
        let response = self.send(self.request(Method::GET, &format!("/v1/jobs/{}/logs", segment(id)))).await?;
        response.text().await.map_err(|e| CliError::Protocol { url: self.base.clone(), reason: e.to_string() })
    }

    /// The job's log followed as Server-Sent Events, the response open.
    pub async fn follow_logs(&self, id: &str) -> Result<Response, CliError> {
        let path = format!("/v1/jobs/{}/logs?follow=true", segment(id));
        self.send(self.request(Method::GET, &path).header("accept", "text/event-stream")).await
    }

    pub async fn list(&self, status: Option<&str>, limit: usize, before: Option<&str>) -> Result<Value, CliError> {
        let mut query = vec![("limit", limit.to_string())];
        query.extend(status.map(|s| ("status", s.to_owned())));
        query.extend(before.map(|b| ("before", b.to_owned())));
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        self.json(self.request(Method::GET, &format!("/v1/jobs?{query}"))).await
    }

    pub async fn cancel(&self, id: &str) -> Result<Value, CliError> {
        self.json(self.request(Method::POST, &format!("/v1/jobs/{}/cancel", segment(id)))).await
    }

    pub async fn erase(&self, id: &str) -> Result<(), CliError> {
        self.send(self.request(Method::DELETE, &format!("/v1/jobs/{}", segment(id)))).await.map(drop)
    }
}

/// A job id as one path segment (an id never needs escaping; anything else is a 404).
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

async fn read_json(base: &str, response: Response) -> Result<Value, CliError> {
    response.json().await.map_err(|e| CliError::Protocol { url: base.to_owned(), reason: e.to_string() })
}

/// The problem+json of a refusal, or a problem made of its status and text.
async fn problem_of(response: Response) -> Problem {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let field = |name: &str| body[name].as_str().map(str::to_owned);
    let fallback = status.canonical_reason().unwrap_or("request refused").to_owned();
    let detail = field("detail").or_else(|| Some(text.trim().to_owned()).filter(|t| !t.is_empty() && body.is_null()));
    Problem { status: status.as_u16(), title: field("title").unwrap_or(fallback), detail, field: field("field") }
}

/// The frontend's `GET /app/config.json`: its issuer, to log in without configuring it.
pub async fn advertised_issuer(base: &str) -> Result<Option<String>, CliError> {
    let url = format!("{base}/app/config.json");
    let unreachable = |e: reqwest::Error| CliError::Unreachable { url: base.to_owned(), reason: chain(&e) };
    let response = reqwest::get(&url).await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Ok(None);
    }
    let config: Value = read_json(base, response).await?;
    Ok(config["issuer"].as_str().map(str::to_owned))
}

/// An error with its causes ("error sending request: connection refused").
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

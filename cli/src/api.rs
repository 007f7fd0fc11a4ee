//! The frontend's REST API, as the CLI calls it: one method per route, bodies as
//! JSON values (the CLI shows what the server sends, including fields it does not
//! know yet), refusals as [`Problem`]s.
//!
//! A server is not trusted to be quick or small: every request has a connect
//! timeout and an overall one ([`Timeouts`]; a long-poll gets its wait on top, a
//! followed stream instead may not stay silent longer than the overall timeout),
//! and an answer is read as it streams in, refused past [`MAX_BODY_BYTES`] — never
//! buffered whole first.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::error::{CliError, Problem};

/// The most the CLI reads of one answer (or of one event of a stream): far above
/// any the API gives (a result fits a 1 MB Kafka message, a log 1 MiB by default).
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// How long the CLI waits on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For a TCP (and TLS) connection to be made.
    pub connect: Duration,
    /// For a request and its whole answer; for a stream, the longest silence.
    pub overall: Duration,
}

impl Timeouts {
    pub const DEFAULT: Timeouts = Timeouts { connect: Duration::from_secs(10), overall: Duration::from_secs(30) };

    /// The longest silence of a followed stream: the overall timeout, but never
    /// less than two of the server's 15 s keep-alives.
    fn idle(&self) -> Duration {
        self.overall.max(Duration::from_secs(30))
    }

    /// An HTTP client with the connect timeout; each request sets its overall one
    /// ([`Api::request`]).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder().connect_timeout(self.connect).build().expect("http client")
    }

    /// A client of requests no server holds (the identity provider's): the
    /// overall timeout on each.
    pub fn plain_client(&self) -> reqwest::Client {
        reqwest::Client::builder().connect_timeout(self.connect).timeout(self.overall).build().expect("http client")
    }

    /// The client of followed streams: no overall timeout, but one between two
    /// reads (its head included). Not for long-polls: they are silent for their wait.
    fn stream_client(&self) -> reqwest::Client {
        reqwest::Client::builder().connect_timeout(self.connect).read_timeout(self.idle()).build().expect("http client")
    }
}

/// What `POST /v1/jobs` answered.
pub enum Submitted {
    /// 200: the job ended within the wait; its result.
    Finished(Value),
    /// 202: the job's id; it is still queued or running.
    Accepted { id: String },
}

pub struct Api {
    http: reqwest::Client,
    stream: reqwest::Client,
    base: String,
    token: String,
    timeouts: Timeouts,
}

impl Api {
    pub fn new(base: &str, token: String, timeouts: Timeouts) -> Self {
        Self { http: timeouts.client(), stream: timeouts.stream_client(), base: base.to_owned(), token, timeouts }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request that, answer included, must end within the overall timeout plus
    /// `hold` seconds (what the server may hold it for: a long-poll's wait).
    fn request(&self, method: Method, path: &str, hold: u64) -> RequestBuilder {
        let limit = self.timeouts.overall.saturating_add(Duration::from_secs(hold));
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token).timeout(limit)
    }

    async fn send(&self, request: RequestBuilder) -> Result<Response, CliError> {
        let response = request.send().await.map_err(|e| transport(&self.base, &e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            // a refusal too large to read is that error, not the refusal
            Err(match problem_of(&self.base, response).await {
                Ok(problem) => problem.into(),
                Err(error) => error,
            })
        }
    }

    async fn json(&self, request: RequestBuilder) -> Result<Value, CliError> {
        let response = self.send(request).await?;
        read_json(&self.base, response).await
    }

    /// Submits `body`; with `wait` > 0 (`Prefer: wait`) the answer may be the result.
    pub async fn submit(&self, body: &Value, wait: u64) -> Result<Submitted, CliError> {
        let mut request = self.request(Method::POST, "/v1/jobs", wait).json(body);
        if wait > 0 {
            request = request.header("prefer", format!("wait={wait}"));
        }
        let response = self.send(request).await?;
        let status = response.status();
        let json: Value = read_json(&self.base, response).await?;
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
        self.call_held(method, path, body, wait, wait).await
    }

    /// [`Api::call`] of a route the server may hold up to `hold` seconds on its own
    /// (a `?wait=` long-poll, a deployment resolving its ref).
    pub async fn call_held(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        wait: u64,
        hold: u64,
    ) -> Result<(StatusCode, Value), CliError> {
        let mut request = self.request(method, path, hold.max(wait));
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
        self.json(self.request(Method::GET, &format!("/v1/jobs/{}", segment(id)), 0)).await
    }

    /// The result, waiting up to `wait` seconds: `None` while the job is unfinished.
    pub async fn result(&self, id: &str, wait: u64) -> Result<Option<Value>, CliError> {
        let path = format!("/v1/jobs/{}/result?wait={wait}", segment(id));
        match self.json(self.request(Method::GET, &path, wait)).await {
            Ok(result) => Ok(Some(result)),
            Err(CliError::Api(problem)) if problem.status == 409 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The job's log so far, as text.
    pub async fn logs(&self, id: &str) -> Result<String, CliError> {
        let response = self.send(self.request(Method::GET, &format!("/v1/jobs/{}/logs", segment(id)), 0)).await?;
        let body = read_body(&self.base, response).await?;
        String::from_utf8(body).map_err(|e| CliError::Protocol { url: self.base.clone(), reason: e.to_string() })
    }

    /// The job's log followed as Server-Sent Events, the response open: no overall
    /// timeout (it lasts as long as the job), but a stream silent for longer than
    /// it (at least 30 s: the server sends a keep-alive every 15 s) is ended.
    pub async fn follow_logs(&self, id: &str) -> Result<Response, CliError> {
        let url = format!("{}/v1/jobs/{}/logs?follow=true", self.base, segment(id));
        self.send(self.stream.get(url).bearer_auth(&self.token).header("accept", "text/event-stream")).await
    }

    /// The caller's events websocket, opened within the overall timeout, its
    /// messages bounded like answers.
    pub async fn open_events(&self) -> Result<EventStream, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
        let url = format!("{}/v1/jobs/events", self.base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        let bearer = format!("Bearer {}", self.token).parse().map_err(|_| "a token that is no header value")?;
        request.headers_mut().insert("authorization", bearer);
        let config =
            WebSocketConfig::default().max_message_size(Some(MAX_BODY_BYTES)).max_frame_size(Some(MAX_BODY_BYTES));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
        let within = self.timeouts.connect.min(self.timeouts.overall);
        match tokio::time::timeout(within, connect).await {
            Ok(Ok((stream, _))) => Ok(stream),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("it did not open in {} s", within.as_secs())),
        }
    }

    pub async fn list(&self, status: Option<&str>, limit: usize, before: Option<&str>) -> Result<Value, CliError> {
        let mut query = vec![("limit", limit.to_string())];
        query.extend(status.map(|s| ("status", s.to_owned())));
        query.extend(before.map(|b| ("before", b.to_owned())));
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        self.json(self.request(Method::GET, &format!("/v1/jobs?{query}"), 0)).await
    }

    pub async fn cancel(&self, id: &str) -> Result<Value, CliError> {
        self.json(self.request(Method::POST, &format!("/v1/jobs/{}/cancel", segment(id)), 0)).await
    }

    pub async fn erase(&self, id: &str) -> Result<(), CliError> {
        self.send(self.request(Method::DELETE, &format!("/v1/jobs/{}", segment(id)), 0)).await.map(drop)
    }
}

/// A job id as one path segment (an id never needs escaping; anything else is a 404).
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// The events websocket of [`Api::open_events`].
pub type EventStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A failed exchange with the server at `url`: a timeout, or no connection.
pub fn transport(url: &str, error: &reqwest::Error) -> CliError {
    if error.is_timeout() {
        return CliError::TimedOut { url: url.to_owned() };
    }
    CliError::Unreachable { url: url.to_owned(), reason: chain(error) }
}

/// The answer's body, read as it arrives and refused once past [`MAX_BODY_BYTES`]
/// (at once when its `Content-Length` says so).
pub async fn read_body(url: &str, mut response: Response) -> Result<Vec<u8>, CliError> {
    let too_large = || CliError::TooLarge { url: url.to_owned(), limit: MAX_BODY_BYTES };
    if response.content_length().is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, &e))? {
        if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The answer's body as JSON, bounded as [`read_body`].
pub async fn read_json<T: serde::de::DeserializeOwned>(url: &str, response: Response) -> Result<T, CliError> {
    let body = read_body(url, response).await?;
    serde_json::from_slice(&body).map_err(|e| CliError::Protocol { url: url.to_owned(), reason: e.to_string() })
}

/// The problem+json of a refusal, or a problem made of its status and text.
async fn problem_of(url: &str, response: Response) -> Result<Problem, CliError> {
    let status = response.status();
    let text = String::from_utf8_lossy(&read_body(url, response).await?).into_owned();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let field = |name: &str| body[name].as_str().map(str::to_owned);
    let fallback = status.canonical_reason().unwrap_or("request refused").to_owned();
    let detail = field("detail").or_else(|| Some(text.trim().to_owned()).filter(|t| !t.is_empty() && body.is_null()));
    Ok(Problem { status: status.as_u16(), title: field("title").unwrap_or(fallback), detail, field: field("field") })
}

/// The frontend's `GET /app/config.json`: its issuer, to log in without configuring it.
pub async fn advertised_issuer(base: &str, timeouts: Timeouts) -> Result<Option<String>, CliError> {
    let url = format!("{base}/app/config.json");
    let response = timeouts.plain_client().get(&url).send().await.map_err(|e| transport(base, &e))?;
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

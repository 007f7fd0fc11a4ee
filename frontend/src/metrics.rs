//! The frontend's Prometheus metrics, served at `GET /metrics`, and the
//! middleware that gives every request its span (the root of a job's trace) and
//! counts and times it by route template and status.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, HttpResponse};
use gitfaas_common::metrics::{seconds_family, ConsumerLag, Registry, SecondsFamily, CONTENT_TYPE};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tracing::Instrument;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: &'static str,
}

/// Every metric of one frontend, and the registry they are served from.
#[derive(Clone)]
pub struct FrontendMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: SecondsFamily<RouteLabels>,
    pub jobs_submitted: Counter,
    pub results_applied: Family<EventLabels, Counter>,
    pub rebuilds: Counter,
    pub lag: ConsumerLag,
    /// 1 while this frontend is the active scheduler.
    pub scheduler_leader: Gauge,
    registry: Arc<Registry>,
}

impl FrontendMetrics {
    pub fn new() -> Self {
        let mut r = gitfaas_common::metrics::registry();
        let requests = Family::<RequestLabels, Counter>::default();
        r.register("http_requests", "HTTP requests by route template and status", requests.clone());
        let request_seconds = seconds_family();
        r.register("http_request_duration_seconds", "HTTP request latency by route template", request_seconds.clone());
        let jobs_submitted = Counter::default();
        r.register("jobs_submitted", "Jobs accepted and published to the jobs topic", jobs_submitted.clone());
        let results_applied = Family::<EventLabels, Counter>::default();
        r.register("results_applied", "Job events from the results topic stored", results_applied.clone());
        let rebuilds = Counter::default();
        r.register("store_rebuilds", "Rebuilds of the job store from the topics", rebuilds.clone());
        let lag = ConsumerLag::register(&mut r);
        let scheduler_leader = Gauge::default();
        r.register("scheduler_leader", "1 while this frontend fires the schedules' ticks", scheduler_leader.clone());
        Self {
            requests,
            request_seconds,
            jobs_submitted,
            results_applied,
            rebuilds,
            lag,
            scheduler_leader,
            registry: Arc::new(r),
        }
    }

    pub fn applied(&self, event: &'static str) {
        self.results_applied.get_or_create(&EventLabels { event }).inc();
    }

    fn observe(&self, method: String, route: String, status: u16, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        self.request_seconds
            .get_or_create(&RouteLabels { method: method.clone(), route: route.clone() })
            .observe(seconds);
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    }
}

/// `GET /metrics`: the registry in the Prometheus text format.
pub async fn serve(metrics: web::Data<FrontendMetrics>) -> HttpResponse {
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(gitfaas_common::metrics::encode(&metrics.registry))
}

/// Runs a request inside its `http request` span and records it by its route
/// template (`/v1/jobs/{id}`; `unmatched` for no route), never its path, which
/// would make a series per job id.
pub async fn middleware<B: MessageBody>(
    request: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let metrics = request.app_data::<web::Data<FrontendMetrics>>().cloned();
    let method = request.method().to_string();
    let span = tracing::info_span!(
        "http request",
        otel.kind = "server",
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = next.call(request).instrument(span.clone()).await;
    let (route, status) = match &response {
        Ok(response) => (response.request().match_pattern(), response.status().as_u16()),
        Err(error) => (None, error.as_response_error().status_code().as_u16()),
    };
    let route = route.unwrap_or_else(|| "unmatched".into());
    span.record("http.route", route.as_str());
    span.record("http.response.status_code", status);
    if let Some(metrics) = metrics {
        metrics.observe(method, route, status, started);
    }
    response
}

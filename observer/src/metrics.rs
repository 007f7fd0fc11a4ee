//! The observer's figures as Prometheus gauges, set from each report it makes:
//! λ, μ, ρ, W and the response time, the backlog, the worker count and the one
//! the model recommends, and the decisions by action; also the parameters an alert
//! compares them with (the target response time, the most workers allowed).

use gitfaas_common::metrics::Registry;
use gitfaas_common::observer::{LatencyStats, ObserverReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::AtomicU64;

type Real = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatisticLabels {
    statistic: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Clone, Default)]
pub struct ObserverMetrics {
    arrival_rate: Real,
    completion_rate: Real,
    service_rate: Real,
    utilisation: Real,
    wait: Family<StatisticLabels, Real>,
    response: Family<StatisticLabels, Real>,
    backlog: Gauge,
    running: Gauge,
    workers: Gauge,
    recommended: Gauge,
    max_workers: Gauge,
    target_response: Real,
    decisions: Family<ActionLabels, Counter>,
    trigger_lag: Family<TriggerLabels, Gauge>,
    trigger_in_flight: Family<TriggerLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: String,
}

impl ObserverMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "observer_arrival_rate",
            "λ: jobs submitted per second over the rate window",
            m.arrival_rate.clone(),
        );
        r.register("observer_completion_rate", "Results per second over the rate window", m.completion_rate.clone());
        r.register("observer_service_rate", "μ: jobs one worker completes per second", m.service_rate.clone());
        r.register("observer_utilisation", "ρ = λ / (c·μ)", m.utilisation.clone());
        r.register("observer_wait_seconds", "W: time from submission to start, by statistic", m.wait.clone());
        r.register("observer_response_seconds", "Time from submission to result, by statistic", m.response.clone());
        r.register("observer_backlog", "Jobs submitted and not started", m.backlog.clone());
        r.register("observer_running", "Jobs started and not finished", m.running.clone());
        r.register("observer_workers", "c: executors taking jobs", m.workers.clone());
        r.register("observer_recommended_workers", "Workers the model says meet the target", m.recommended.clone());
        r.register("observer_max_workers", "The most workers the parameters allow", m.max_workers.clone());
        r.register(
            "observer_target_response_seconds",
            "The response time (of the target statistic) the model aims at",
            m.target_response.clone(),
        );
        r.register("observer_decisions", "Reports by the action they ask for", m.decisions.clone());
        r.register("observer_trigger_lag", "Records of a topic trigger's input not yet read", m.trigger_lag.clone());
        r.register(
            "observer_trigger_in_flight",
            "A topic trigger's jobs made and not finished",
            m.trigger_in_flight.clone(),
        );
        for action in ["add", "remove", "none"] {
            let _ = m.decisions.get_or_create(&ActionLabels { action }); // exported at zero from the start
        }
        m
    }

    /// Sets the gauges from `report`; an unknown figure reads NaN.
    pub fn record(&self, report: &ObserverReport) {
        let m = &report.metrics;
        self.arrival_rate.set(m.arrival_rate);
        self.completion_rate.set(m.completion_rate);
        self.service_rate.set(m.service_rate_per_worker.unwrap_or(f64::NAN));
        self.utilisation.set(m.utilisation.unwrap_or(f64::NAN));
        set_latency(&self.wait, m.waiting.as_ref());
        set_latency(&self.response, m.response.as_ref());
        self.backlog.set(m.backlog as i64);
        self.running.set(m.running as i64);
        self.workers.set(i64::from(m.workers));
        self.recommended.set(i64::from(report.desired_workers));
        self.max_workers.set(i64::from(report.params.max_workers));
        self.target_response.set(report.params.target_response_ms as f64 / 1e3);
        self.decisions.get_or_create(&ActionLabels { action: report.action.as_str() }).inc();
        self.trigger_lag.clear();
        self.trigger_in_flight.clear();
        for load in &m.triggers {
            let labels = TriggerLabels { trigger: load.trigger.clone() };
            self.trigger_lag.get_or_create(&labels).set(load.lag);
            self.trigger_in_flight.get_or_create(&labels).set(i64::from(load.in_flight));
        }
    }
}

fn set_latency(family: &Family<StatisticLabels, Real>, stats: Option<&LatencyStats>) {
    let seconds = |ms: f64| ms / 1e3;
    let (mean, p50, p95) = stats.map_or((f64::NAN, f64::NAN, f64::NAN), |s| (s.mean_ms, s.p50_ms, s.p95_ms));
    family.get_or_create(&StatisticLabels { statistic: "mean" }).set(seconds(mean));
    family.get_or_create(&StatisticLabels { statistic: "p50" }).set(seconds(p50));
    family.get_or_create(&StatisticLabels { statistic: "p95" }).set(seconds(p95));
}

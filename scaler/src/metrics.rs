//! The scaler's Prometheus metrics: the reports it acted on, what it did to its
//! executors, and how many it runs.

use gitfaas_common::metrics::Registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Default)]
pub struct ScalerMetrics {
    reports: Family<ActionLabels, Counter>,
    events: Family<EventLabels, Counter>,
    pub executors: Gauge,
}

impl ScalerMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register("scaler_reports", "Observer reports read, by the action they ask for", m.reports.clone());
        r.register("scaler_executor_events", "Executors started, drained and stopped", m.events.clone());
        r.register("scaler_executors", "Executor processes this scaler runs", m.executors.clone());
        // every series exported from the start, at zero: rates need a first sample
        for action in ["add", "remove", "none"] {
            let _ = m.reports.get_or_create(&ActionLabels { action });
        }
        for event in ["started", "draining", "stopped"] {
            let _ = m.events.get_or_create(&EventLabels { event });
        }
        m
    }

    pub fn report(&self, action: &'static str) {
        self.reports.get_or_create(&ActionLabels { action }).inc();
    }

    pub fn event(&self, event: &'static str) {
        self.events.get_or_create(&EventLabels { event }).inc();
    }
}

//! What the sandbox counts: container calls timed by kind, and the warm pool's
//! containers, hits, misses and evictions. The types live here so the sandbox
//! records into them without knowing who serves them; the executor registers them
//! in its registry, and a part made with `Default` and never registered (`gitfaas
//! local run`, unit tests) counts for nobody.

use gitfaas_common::metrics::{seconds_family, SecondsFamily};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Which kind of container a sandbox call was for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone)]
pub struct SandboxMetrics {
    pub create: SecondsFamily<KindLabels>,
    pub start: SecondsFamily<KindLabels>,
}

impl Default for SandboxMetrics {
    fn default() -> Self {
        Self { create: seconds_family(), start: seconds_family() }
    }
}

impl SandboxMetrics {
    pub fn created(&self, kind: &'static str, took: std::time::Duration) {
        self.create.get_or_create(&KindLabels { kind }).observe(took.as_secs_f64());
    }

    pub fn started(&self, kind: &'static str, took: std::time::Duration) {
        self.start.get_or_create(&KindLabels { kind }).observe(took.as_secs_f64());
    }
}

#[derive(Clone, Default)]
pub struct WarmMetrics {
    pub containers: Gauge,
    pub hits: Counter,
    pub misses: Counter,
    /// Runs whose new warm sandbox was a ready one, started before they asked.
    pub ready_claims: Counter,
    pub evictions: Counter,
}

//! What the sandbox counts: container calls timed by kind, the warm pool's
//! containers, hits, misses and evictions, and the wasm runtime's runs. The types live here so the sandbox
//! records into them without knowing who serves them; the executor registers them
//! in its registry, and a part made with `Default` and never registered (`gitfaas
//! local run`, unit tests) counts for nobody.

use gitfaas_common::metrics::{seconds_family, SecondsFamily};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

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

/// The wasm runtime's runs: instantiation and run of a prepared module, on
/// buckets fine enough for sub-millisecond runs, and modules prepared (compiled,
/// or loaded from the disk cache) by a run.
#[derive(Clone)]
pub struct WasmMetrics {
    pub runs: Histogram,
    pub prepared: Counter,
}

/// 50 µs to about 3 s, doubling.
const WASM_RUN_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
    3.0,
];

impl Default for WasmMetrics {
    fn default() -> Self {
        Self { runs: Histogram::new(WASM_RUN_BUCKETS), prepared: Counter::default() }
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

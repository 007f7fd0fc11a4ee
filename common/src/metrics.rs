//! Prometheus metrics every service shares the shape of: one registry per service
//! instance (several run in one test process), names under `gitfaas_`, durations
//! in seconds on one set of buckets, the text format served at `/metrics`, and the
//! Kafka consumer lag each consumer reports through librdkafka's statistics.
//!
//! Each service declares its own metrics (`frontend::metrics`, `executor::metrics`,
//! …) and registers them in the [`Registry`] made by [`registry`].

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
pub use prometheus_client::registry::Registry;
use rdkafka::consumer::ConsumerContext;
use rdkafka::{ClientContext, Statistics};

/// `Content-Type` of [`encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often librdkafka reports statistics to a consumer with a [`ConsumerLag`]
/// (`statistics.interval.ms`).
pub const STATISTICS_INTERVAL_MS: &str = "5000";

/// A service's registry: every metric named `gitfaas_…`.
pub fn registry() -> Registry {
    Registry::with_prefix("gitfaas")
}

/// The registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // writing to a String cannot fail
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, registry);
    text
}

/// A duration histogram: 1 ms to about 65 s, doubling.
pub fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Duration histograms by label set `L`, on [`seconds_histogram`]'s buckets.
pub type SecondsFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub fn seconds_family<L: Clone + std::hash::Hash + Eq>() -> SecondsFamily<L> {
    Family::new_with_constructor(seconds_histogram)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    consumer: String,
    topic: String,
    partition: i32,
}

/// `gitfaas_kafka_consumer_lag{consumer, topic, partition}`: messages between a
/// consumer's position and the partition's end, as librdkafka last reported it.
#[derive(Clone, Default)]
pub struct ConsumerLag {
    lag: Family<PartitionLabels, Gauge>,
}

impl ConsumerLag {
    pub fn register(registry: &mut Registry) -> Self {
        let lag = Self::default();
        registry.register(
            "kafka_consumer_lag",
            "Messages between a consumer's position and the end of the partition",
            lag.lag.clone(),
        );
        lag
    }

    /// Records the lag of each partition `statistics` knows it for: librdkafka's
    /// `consumer_lag` (from the committed offset), or for a consumer that commits
    /// nothing (the observer) the distance from its position to the end. A
    /// partition neither is known for (not assigned, nothing read yet) is dropped.
    /// Returns the lag summed over the partitions it is known for.
    pub fn record(&self, consumer: &str, statistics: &Statistics) -> i64 {
        let mut total = 0;
        for (topic, topic_statistics) in &statistics.topics {
            for partition in topic_statistics.partitions.values().filter(|p| p.partition >= 0) {
                let labels = PartitionLabels {
                    consumer: consumer.to_owned(),
                    topic: topic.clone(),
                    partition: partition.partition,
                };
                match lag_of(partition) {
                    Some(lag) => {
                        total += lag;
                        self.lag.get_or_create(&labels).set(lag);
                    }
                    None => {
                        self.lag.remove(&labels);
                    }
                }
            }
        }
        total
    }
}

fn lag_of(partition: &rdkafka::statistics::Partition) -> Option<i64> {
    let from_position = (partition.fetch_state == "active" && partition.app_offset >= 0 && partition.hi_offset >= 0)
        .then(|| (partition.hi_offset - partition.app_offset).max(0));
    Some(partition.consumer_lag).filter(|lag| *lag >= 0).or(from_position)
}

/// The context of a consumer that needs nothing but its lag measured; create it
/// with `statistics.interval.ms` set ([`STATISTICS_INTERVAL_MS`]).
pub struct LagContext {
    pub consumer: Arc<str>,
    pub lag: ConsumerLag,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        self.lag.record(&self.consumer, &statistics);
    }
}

impl ConsumerContext for LagContext {}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn registered_metrics_are_encoded_with_the_prefix_and_units() {
        let mut registry = registry();
        let jobs = Counter::<u64>::default();
        registry.register("jobs_finished", "Jobs finished", jobs.clone());
        let run = seconds_histogram();
        registry.register("job_run_seconds", "Run time", run.clone());
        jobs.inc();
        run.observe(0.25);
        let text = encode(&registry);
        assert!(text.contains("gitfaas_jobs_finished_total 1\n"), "{text}");
        assert!(text.contains("gitfaas_job_run_seconds_count 1\n"), "{text}");
        assert!(text.contains("gitfaas_job_run_seconds_bucket{le=\"0.256\"} 1\n"), "{text}");
    }
}

//! Samples kept in event-time order for a sliding window.
//!
//! Messages from different partitions interleave, so samples arrive roughly but
//! not exactly in time order: an insert walks back from the newest end to its
//! place, which is one step in the common case.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use gitfaas_common::observer::LatencyStats;

#[derive(Clone, Debug)]
pub struct TimeWindow<T> {
    samples: VecDeque<(DateTime<Utc>, T)>,
}

impl<T> Default for TimeWindow<T> {
    fn default() -> Self {
        Self { samples: VecDeque::new() }
    }
}

impl<T> TimeWindow<T> {
    pub fn insert(&mut self, at: DateTime<Utc>, value: T) {
        let position = self.samples.iter().rposition(|(t, _)| *t <= at).map_or(0, |i| i + 1);
        self.samples.insert(position, (at, value));
    }

    /// Forgets every sample older than `before`.
    pub fn prune(&mut self, before: DateTime<Utc>) {
        while self.samples.front().is_some_and(|(t, _)| *t < before) {
            self.samples.pop_front();
        }
    }

    /// Samples in `(now − span, now]`.
    pub fn within(&self, now: DateTime<Utc>, span: Duration) -> impl Iterator<Item = &T> {
        let from = now - span;
        self.samples.iter().rev().skip_while(move |(t, _)| *t > now).take_while(move |(t, _)| *t > from).map(|(_, v)| v)
    }

    /// Samples per second in `(now − span, now]`.
    pub fn rate(&self, now: DateTime<Utc>, span: Duration) -> f64 {
        let seconds = span.num_milliseconds() as f64 / 1000.0;
        if seconds <= 0.0 {
            return 0.0;
        }
        self.within(now, span).count() as f64 / seconds
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.samples.len()
    }
}

/// Mean and nearest-rank percentiles; none for an empty sample.
pub fn latency_stats(values: impl IntoIterator<Item = f64>) -> Option<LatencyStats> {
    let mut sorted: Vec<f64> = values.into_iter().collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let rank = |q: f64| sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(LatencyStats {
        mean_ms: sorted.iter().sum::<f64>() / n as f64,
        p50_ms: rank(0.50),
        p95_ms: rank(0.95),
        samples: n as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn out_of_order_samples_are_kept_in_time_order() {
        let mut w = TimeWindow::default();
        for s in [1, 3, 2, 5, 4, 0] {
            w.insert(t(s), s);
        }
        let newest_first: Vec<i64> = w.within(t(10), Duration::seconds(100)).copied().collect();
        assert_eq!(newest_first, vec![5, 4, 3, 2, 1, 0]);
    }

    #[test]
    fn rate_counts_only_the_half_open_window_ending_now() {
        let mut w = TimeWindow::default();
        for s in 0..=20 {
            w.insert(t(s), ());
        }
        // (10, 20]: 11..=20 is ten samples over ten seconds; samples after `now` do not count
        assert_eq!(w.rate(t(20), Duration::seconds(10)), 1.0);
        assert_eq!(w.rate(t(5), Duration::seconds(10)), 0.6);
        w.prune(t(15));
        assert_eq!(w.len(), 6);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let stats = latency_stats((1..=100).map(f64::from)).unwrap();
        assert_eq!((stats.p50_ms, stats.p95_ms, stats.mean_ms, stats.samples), (50.0, 95.0, 50.5, 100));
        let one = latency_stats([7.0]).unwrap();
        assert_eq!((one.p50_ms, one.p95_ms), (7.0, 7.0));
        assert!(latency_stats(std::iter::empty()).is_none());
    }
}

//! The executors' job-slot gauges, read from their Prometheus text (`/metrics` on
//! `executor.metrics_listen`) every ~50 ms while a sweep point runs: how busy the
//! slots were on average, and how many fetched jobs waited for one. Gauges an
//! executor does not export yet (`gitfaas_executor_slots`,
//! `gitfaas_executor_jobs_prefetched`) come out as `None`.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;

const SLOTS_BUSY: &str = "gitfaas_executor_slots_busy";
const SLOTS: &str = "gitfaas_executor_slots";
const PREFETCHED: &str = "gitfaas_executor_jobs_prefetched";
const INTERVAL: Duration = Duration::from_millis(50);

/// Sum of the samples of metric `name` (every label set) in Prometheus text,
/// `None` when it has none.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue; // a longer name with this one as its prefix
        }
        let value = rest.rsplit('}').next().unwrap_or(rest).split_whitespace().next();
        if let Some(value) = value.and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// One reading of every executor: summed over them, `None` where any lacks it.
#[derive(Clone, Copy, Debug, Default)]
struct Reading {
    busy: Option<f64>,
    slots: Option<f64>,
    prefetched: Option<f64>,
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? + b?)
}

/// What the sampler saw during one point.
#[derive(Debug, Default, Serialize)]
pub struct GaugeFigures {
    pub samples: usize,
    /// Mean of `slots_busy / slots` over the samples (slots from the gauge, else
    /// the configured ones).
    pub slot_utilisation: Option<f64>,
    /// Total slots the gauge reported (all executors), if it exists.
    pub slots_gauge: Option<f64>,
    /// Mean of `jobs_prefetched`, if the gauge exists.
    pub prefetched_mean: Option<f64>,
    pub prefetched_max: Option<f64>,
}

/// Samples the gauges of `urls` until stopped (or dropped).
pub struct Sampler {
    stop_tx: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<GaugeFigures>,
}

impl Sampler {
    /// `configured_slots`: all executors' slots, for executors without the gauge.
    pub fn start(client: reqwest::Client, urls: Vec<String>, configured_slots: usize) -> Sampler {
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(sample(client, urls, configured_slots as f64, stop_rx));
        Sampler { stop_tx, task }
    }

    pub async fn stop(self) -> GaugeFigures {
        let _ = self.stop_tx.send(());
        self.task.await.unwrap_or_default()
    }
}

async fn read(client: &reqwest::Client, urls: &[String]) -> Option<Reading> {
    let mut total = Reading { busy: Some(0.0), slots: Some(0.0), prefetched: Some(0.0) };
    for url in urls {
        let response = client.get(url).timeout(Duration::from_secs(1)).send().await.ok()?;
        let text = response.text().await.ok()?;
        total.busy = add(total.busy, metric(&text, SLOTS_BUSY));
        total.slots = add(total.slots, metric(&text, SLOTS));
        total.prefetched = add(total.prefetched, metric(&text, PREFETCHED));
    }
    total.busy.is_some().then_some(total)
}

async fn sample(
    client: reqwest::Client,
    urls: Vec<String>,
    configured_slots: f64,
    mut stop_rx: oneshot::Receiver<()>,
) -> GaugeFigures {
    let mut readings = Vec::new();
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop_rx => break,
            _ = interval.tick() => {
                if let Some(reading) = read(&client, &urls).await {
                    readings.push(reading);
                }
            }
        }
    }
    summarise(&readings, configured_slots)
}

fn summarise(readings: &[Reading], configured_slots: f64) -> GaugeFigures {
    let mean = |values: Vec<f64>| (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
    let all = |f: fn(&Reading) -> Option<f64>| readings.iter().map(f).collect::<Option<Vec<f64>>>();
    let utilisation = readings
        .iter()
        .filter_map(|r| {
            let slots = r.slots.filter(|s| *s > 0.0).unwrap_or(configured_slots);
            Some(r.busy? / slots)
        })
        .collect();
    let prefetched = all(|r| r.prefetched).filter(|v| !v.is_empty());
    GaugeFigures {
        samples: readings.len(),
        slot_utilisation: mean(utilisation),
        slots_gauge: all(|r| r.slots).and_then(|v| v.last().copied()),
        prefetched_max: prefetched.as_ref().and_then(|v| v.iter().copied().reduce(f64::max)),
        prefetched_mean: prefetched.and_then(mean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP gitfaas_executor_slots_busy Job slots in use\n\
        # TYPE gitfaas_executor_slots_busy gauge\n\
        gitfaas_executor_slots_busy 2\n\
        gitfaas_executor_slots_busy_total 9\n\
        gitfaas_executor_slots{executor=\"a\"} 4\n\
        gitfaas_executor_slots{executor=\"b\"} 4\n";

    #[test]
    fn a_metric_is_summed_over_its_label_sets_and_not_confused_with_longer_names() {
        assert_eq!(metric(TEXT, SLOTS_BUSY), Some(2.0));
        assert_eq!(metric(TEXT, SLOTS), Some(8.0));
        assert_eq!(metric(TEXT, PREFETCHED), None);
    }

    #[test]
    fn utilisation_falls_back_to_the_configured_slots_without_the_gauge() {
        let readings = [
            Reading { busy: Some(1.0), slots: None, prefetched: None },
            Reading { busy: Some(2.0), slots: None, prefetched: None },
        ];
        let figures = summarise(&readings, 2.0);
        assert_eq!(figures.slot_utilisation, Some(0.75));
        assert_eq!((figures.slots_gauge, figures.prefetched_mean), (None, None));
    }
}

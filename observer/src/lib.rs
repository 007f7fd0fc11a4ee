//! gitfaas observer: measures the traffic on the jobs and results topics, decides
//! how many executors there should be, and says so on the observer topic. The
//! scaler (its own crate, `gitfaas-scaler`) acts on what it says.
//!
//! - `feed`: reads the three topics (all partitions, replaying recent history on
//!   start) into `engine::Input`s;
//! - `engine`: the observer proper, Kafka-free — ingests inputs, evaluates, builds
//!   reports; `measure` keeps the windows and job states it reads from, and
//!   `decision` turns them into a worker count using `queueing` (M/M/c).
//!
//! - `metrics`: the figures of each report as Prometheus gauges, served with the
//!   observer's health on `observer.metrics_listen`.
//!
//! Those modules are private: [`run`] and its [`Settings`] are the crate's surface.
//! Message types live in `gitfaas_common::observer`; the model and its limits are
//! described in `paper/observer.md`.

mod decision;
mod engine;
mod feed;
mod measure;
mod metrics;
mod queueing;
mod settings;
mod window;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use gitfaas_common::kafka::{ensure_topics, Publisher, Topic};
use gitfaas_common::observer::{ObserverMessage, ObserverReport};
use gitfaas_common::tasks::Tasks;
use tokio::sync::mpsc;

use crate::engine::{Input, Observer, ObserverOptions};
use crate::feed::Feed;
pub use crate::settings::{ObserverSettings, Settings};

/// Runs the observer until `shutdown` completes.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let o = &settings.observer;
    let observer_id = settings.observer_id();
    ensure_topics(&settings.kafka).await.context("creating kafka topics")?;
    let publisher = Publisher::new(&settings.kafka).context("creating the kafka producer")?;
    let lookback = chrono::Duration::seconds(o.lookback_secs as i64);
    let replay_from = Utc::now() - lookback;
    let mut registry = gitfaas_common::metrics::registry();
    let metrics = metrics::ObserverMetrics::register(&mut registry);
    let lag = gitfaas_common::metrics::ConsumerLag::register(&mut registry);
    let feed = Feed::connect(&settings.kafka, &o.group_id, replay_from, lag).await?;

    let tasks = Tasks::new();
    let token = tasks.stopping();
    tasks.stop_on(shutdown);
    if let Some(address) = &o.metrics_listen {
        let ready = gitfaas_common::ops::broker_ready(publisher.clone(), Topic::Observer);
        let listener = gitfaas_common::ops::serve(address, std::sync::Arc::new(registry), ready, &tasks)
            .await
            .with_context(|| format!("binding the metrics listener {address}"))?;
        tracing::info!(port = listener.port, "metrics and health listening");
    }
    let (input_tx, mut input_rx) = mpsc::channel::<Input>(4096);
    let options = ObserverOptions {
        partitions: Some(feed.jobs_partitions),
        lookback,
        worker_timeout: chrono::Duration::seconds(o.worker_timeout_secs as i64),
        default_slots: o.default_slots,
    };
    let mut observer = Observer::new(observer_id.clone(), o.params.clone(), options, replay_from);
    tasks.spawn("observer feed", feed.run(input_tx, token.clone()));
    let replay_deadline = tokio::time::Instant::now() + Duration::from_secs(o.replay_timeout_secs);
    let mut ticks = tokio::time::interval(Duration::from_millis(o.evaluate_every_ms));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(%observer_id, topic = %settings.kafka.topics.observer, "observer started");
    let mut outcome = Ok(());
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            input = input_rx.recv() => match input {
                Some(input) => observer.ingest(input),
                None => {
                    outcome = Err(anyhow::anyhow!("the observer feed stopped"));
                    break;
                }
            },
            _ = ticks.tick() => {
                if !observer.is_caught_up() && tokio::time::Instant::now() >= replay_deadline {
                    tracing::warn!("replay not finished in time; deciding on what was read");
                    observer.ingest(Input::CaughtUp);
                }
                if let Some(report) = observer.evaluate(Utc::now()) {
                    metrics.record(&report);
                    publish_report(&publisher, report).await;
                }
            }
        }
    }
    tasks.shutdown(Duration::from_secs(10)).await;
    publisher.flush(Duration::from_secs(5)).await;
    tracing::info!("observer stopped");
    outcome
}

async fn publish_report(publisher: &Publisher, report: ObserverReport) {
    let m = &report.metrics;
    let fields = (report.action.as_str(), report.current_workers, report.desired_workers);
    if report.action == gitfaas_common::observer::ScaleAction::None {
        tracing::debug!(action = fields.0, current = fields.1, desired = fields.2, reason = %report.reason, "report");
    } else {
        tracing::info!(
            action = fields.0,
            current = fields.1,
            desired = fields.2,
            remove = ?report.remove,
            arrival_rate = m.arrival_rate,
            backlog = m.backlog,
            service_time_ms = m.service_time_ms,
            reason = %report.reason,
            "scaling decision"
        );
    }
    let message = ObserverMessage::Report(Box::new(report));
    if let Err(error) = publisher.publish(&message).await {
        tracing::warn!(%error, "report not published");
    }
}

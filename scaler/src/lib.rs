//! gitfaas scaler: closes the loop on one machine. It reads the observer's reports
//! and starts or drains executor processes so that their number follows
//! `desired_workers`.
//!
//! - an `add` report: start executors until those live or starting reach
//!   `desired_workers` (a missed `add` is made up by the observer's next one, after
//!   its cooldown);
//! - a `remove` report: drain the named executors this scaler started (SIGTERM:
//!   they finish their running jobs and exit 0). Nothing is ever killed to scale in;
//! - on shutdown every executor it started is drained.
//!
//! [`run`] is the service: the reports consumer and the decisions above, which
//! [`ExecutorPool`] (the processes) carries out; [`Settings`] is its configuration.
//! What it did is published on the observer topic as [`ScalerEvent`]s, and counted
//! in `metrics`, served with its health on `scaler.metrics_listen`. On Kumori
//! the same reports would be applied by changing the executor role's `hsize`
//! instead (see `paper/observer.md`).

mod metrics;
mod pool;
mod settings;

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use gitfaas_common::kafka::{client_config, ensure_topics, reliable_producer_config, Publisher};
use gitfaas_common::observer::{
    decode_observer_message, ExecutorState, ObserverMessage, ObserverReport, ScaleAction, ScalerAction, ScalerEvent,
};
use gitfaas_common::schema::SCHEMA_VERSION;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

pub use crate::pool::{ExecutorPool, Exit};
pub use crate::settings::{ScalerSettings, Settings};

struct Scaler {
    id: String,
    pool: ExecutorPool,
    producer: FutureProducer,
    topic: String,
    metrics: metrics::ScalerMetrics,
}

/// Runs the scaler until `shutdown` completes, then drains its executors.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let id = settings.scaler_id();
    let scaler_settings = settings.scaler.clone();
    anyhow::ensure!(
        scaler_settings.executor_bin.is_file(),
        "executor binary {} not found (cargo build -p gitfaas-executor)",
        scaler_settings.executor_bin.display()
    );
    ensure_topics(&settings.kafka).await.context("creating kafka topics")?;
    let consumer = reports_consumer(&settings).await?;
    let producer: FutureProducer =
        reliable_producer_config(&settings.kafka).create().context("creating the kafka producer")?;
    let mut registry = gitfaas_common::metrics::registry();
    let metrics = metrics::ScalerMetrics::register(&mut registry);
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    if let Some(address) = &scaler_settings.metrics_listen {
        let probe = Publisher::from(producer.clone());
        let ready = gitfaas_common::ops::broker_ready(probe, settings.kafka.topics.observer.clone());
        let listener =
            gitfaas_common::ops::serve(address, std::sync::Arc::new(registry), ready, token.clone().cancelled_owned())
                .await
                .with_context(|| format!("binding the metrics listener {address}"))?;
        tracing::info!(port = listener.port, "metrics and health listening");
    }
    let mut scaler = Scaler {
        id,
        pool: ExecutorPool::new(scaler_settings),
        producer,
        topic: settings.kafka.topics.observer.clone(),
        metrics,
    };

    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    tracing::info!(scaler_id = %scaler.id, "scaler started");
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    let decoded = decode_observer_message(message.payload().unwrap_or_default());
                    if let Ok(ObserverMessage::Report(report)) = decoded {
                        scaler.metrics.report(report.action.as_str());
                        scaler.apply(&report).await;
                    }
                }
                Err(error) => tracing::warn!(%error, "kafka receive error"),
            },
            _ = ticks.tick() => {
                for exit in scaler.pool.reap() {
                    scaler.exited(exit).await;
                }
            }
        }
    }
    tracing::info!(executors = scaler.pool.len(), "scaler stopping; draining its executors");
    for exit in scaler.pool.drain_all().await {
        scaler.exited(exit).await;
    }
    Ok(())
}

/// Reads only reports published from now on: an order missed while the scaler
/// was away is given again by the observer after its cooldown, if still needed.
async fn reports_consumer(settings: &Settings) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = client_config(&settings.kafka)
        .set("group.id", &settings.scaler.group_id)
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the scaler consumer")?;
    let topic = settings.kafka.topics.observer.clone();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            assignment.add_partition_offset(&topic, partition.id(), Offset::End)?;
        }
        consumer.assign(&assignment)?;
        anyhow::Ok(consumer)
    })
    .await?
}

impl Scaler {
    async fn apply(&mut self, report: &ObserverReport) {
        match report.action {
            ScaleAction::Add => self.add(report).await,
            ScaleAction::Remove => self.remove(report).await,
            // `desired` may differ from `current` during a cooldown: not an order
            ScaleAction::None => {}
        }
    }

    /// Starts executors until the live and starting ones reach `desired`; those
    /// already coming since an earlier `add` count, so a repeated report adds nothing.
    async fn add(&mut self, report: &ObserverReport) {
        let live: HashSet<&str> = report
            .metrics
            .executors
            .iter()
            .filter(|w| w.state == ExecutorState::Running)
            .map(|w| w.executor_id.as_str())
            .collect();
        let coming = report.current_workers as usize + self.pool.num_starting(&live);
        for _ in coming..report.desired_workers as usize {
            match self.pool.start() {
                Ok((executor_id, pid)) => self.publish(&executor_id, ScalerAction::Started { pid }).await,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "could not start an executor");
                    break;
                }
            }
        }
    }

    async fn remove(&mut self, report: &ObserverReport) {
        for executor_id in &report.remove {
            if !self.pool.manages(executor_id) {
                tracing::warn!(%executor_id, "asked to remove an executor this scaler did not start");
                continue;
            }
            match self.pool.drain(executor_id).await {
                Ok(true) => self.publish(executor_id, ScalerAction::Draining).await,
                Ok(false) => {}
                Err(error) => tracing::error!(%executor_id, error = format!("{error:#}"), "could not drain"),
            }
        }
    }

    async fn exited(&self, exit: Exit) {
        if !exit.drained || exit.exit_code != Some(0) {
            tracing::warn!(executor_id = %exit.executor_id, exit_code = ?exit.exit_code, "executor ended abnormally");
        }
        let action = ScalerAction::Stopped { exit_code: exit.exit_code, drained: exit.drained };
        self.publish(&exit.executor_id, action).await;
    }

    async fn publish(&self, executor_id: &str, action: ScalerAction) {
        self.metrics.event(match action {
            ScalerAction::Started { .. } => "started",
            ScalerAction::Draining => "draining",
            ScalerAction::Stopped { .. } => "stopped",
        });
        self.metrics.executors.set(self.pool.len() as i64);
        let event = ScalerEvent {
            version: SCHEMA_VERSION,
            scaler_id: self.id.clone(),
            executor_id: executor_id.to_owned(),
            at: Utc::now(),
            action,
        };
        let message = ObserverMessage::Scaler(event);
        let (key, payload) = (message.key(), message.encode());
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        if let Err((error, _)) = self.producer.send(record, Timeout::After(Duration::from_secs(30))).await {
            tracing::warn!(%error, "scaler event not published");
        }
    }
}

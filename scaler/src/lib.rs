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
use gitfaas_common::kafka::{assign_all, decode, ensure_topics, ConsumerBuilder, Inbox, Publisher, Role, Start, Topic};
use gitfaas_common::observer::{
    ExecutorState, ObserverMessage, ObserverReport, ScaleAction, ScalerAction, ScalerEvent,
};
use gitfaas_common::tasks::Tasks;
use rdkafka::message::Message;

pub use crate::pool::{ExecutorPool, Exit};
pub use crate::settings::{ScalerSettings, Settings};

struct Scaler {
    id: String,
    pool: ExecutorPool,
    publisher: Publisher,
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
    let reports = reports_inbox(&settings).await?;
    let publisher = Publisher::new(&settings.kafka).context("creating the kafka producer")?;
    let mut registry = gitfaas_common::metrics::registry();
    let metrics = metrics::ScalerMetrics::register(&mut registry);
    let tasks = Tasks::new();
    let token = tasks.stopping();
    tasks.stop_on(shutdown);
    if let Some(address) = &scaler_settings.metrics_listen {
        let ready = gitfaas_common::ops::broker_ready(publisher.clone(), Topic::Observer);
        let listener = gitfaas_common::ops::serve(address, std::sync::Arc::new(registry), ready, &tasks)
            .await
            .with_context(|| format!("binding the metrics listener {address}"))?;
        tracing::info!(port = listener.port, "metrics and health listening");
    }
    let mut scaler = Scaler { id, pool: ExecutorPool::new(scaler_settings), publisher, metrics };

    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    tracing::info!(scaler_id = %scaler.id, "scaler started");
    loop {
        tokio::select! {
            received = reports.next(&token) => {
                let Some(message) = received else { break };
                let decoded = decode::<ObserverMessage>(message.payload().unwrap_or_default());
                if let Ok(ObserverMessage::Report(report)) = decoded {
                    scaler.metrics.report(report.action.as_str());
                    scaler.apply(&report).await;
                }
            }
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
    tasks.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Reads only reports published from now on: an order missed while the scaler
/// was away is given again by the observer after its cooldown, if still needed.
async fn reports_inbox(settings: &Settings) -> anyhow::Result<Inbox> {
    let consumer = ConsumerBuilder::new(&settings.kafka, Role::Broadcast, &settings.scaler.group_id)
        .create()
        .context("creating the scaler consumer")?;
    let topic = settings.kafka.topics.observer.clone();
    let consumer = tokio::task::spawn_blocking(move || {
        assign_all(&consumer, &[(&topic, Start::End)])?;
        anyhow::Ok(consumer)
    })
    .await??;
    Ok(Inbox::new(consumer, "observer reports"))
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
        let message = ObserverMessage::Scaler(ScalerEvent::new(&self.id, executor_id, action));
        if let Err(error) = self.publisher.publish(&message).await {
            tracing::warn!(%error, "scaler event not published");
        }
    }
}

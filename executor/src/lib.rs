//! gitfaas executor: takes jobs from the jobs topic, runs each one from its git
//! repository inside a locked-down container, and publishes one result per attempt.
//! Running a function in a container — runtimes, the container policy, warm
//! sandboxes, dependency layers, live logs — is the `gitfaas-sandbox` crate's,
//! shared with `gitfaas local run`; this crate brings it jobs from Kafka and code
//! from git, and takes its results back to Kafka.
//!
//! - [`worker`]: the consumer loop — slots, pause/resume, offset commits after acks;
//! - [`processing`]: a job's attempts and its one result; [`delivery`] decides
//!   (pure) what each ending comes to;
//! - [`job`]: one attempt — checkout, plan, sandbox, result;
//! - [`git`]: the bare-mirror cache and per-job checkouts (fetched through the
//!   sandbox's egress proxy); `refs`: ref resolutions shared by the jobs submitted
//!   before they started;
//! - [`tree`]: bounds on a checkout, checked on the tree before anything is written;
//! - [`credentials`]: a job's sealed credentials, opened; [`data`]: its data links;
//! - [`offsets`]: which offsets may be committed;
//! - [`cancel`]: cancel requests and abandoned runs;
//! - [`metrics`]: what the executor counts and times (the sandbox's parts
//!   included), served with its health on `executor.metrics_listen`
//!   (`gitfaas_common::ops`).

mod cancel;
mod credentials;
mod data;
mod delivery;
mod durable;
mod flow;
mod git;
mod heartbeat;
mod job;
mod metrics;
mod offsets;
mod processing;
mod rebalance;
mod refs;
mod settings;
mod tree;
mod worker;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use gitfaas_common::kafka::{client_config, ensure_topics, job_path_consumer_config, Publisher};
use rdkafka::consumer::Consumer;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use gitfaas_sandbox::{Dependencies, Sandbox, WarmPool};

pub use crate::git::GitCache;
use crate::job::JobRunner;
use crate::processing::Processing;
pub use crate::settings::Settings;
pub use crate::tree::CheckoutLimits;
pub use crate::worker::Worker;
use crate::worker::{JobConsumer, WorkerContext};

/// Builds the executor from its settings: connects to Docker and Kafka, removes
/// containers a crashed predecessor left, and joins the consumer group.
pub async fn build(settings: &Settings) -> anyhow::Result<Arc<Worker>> {
    let executor_id = settings.executor_id();
    let e = &settings.executor;
    let sandbox = Sandbox::connect(e.sandbox().policy()).await?;
    let orphans = sandbox.remove_orphans(Some(&executor_id)).await.context("removing orphan containers")?;
    if orphans > 0 {
        tracing::warn!(orphans, "removed containers left by a previous run");
    }
    for (runtime, image) in &e.images {
        if !sandbox.image_exists(image).await {
            tracing::warn!(%runtime, %image, "runtime image missing; its jobs will fail until it is built");
        }
    }
    let mut registry = gitfaas_common::metrics::registry();
    let metrics = metrics::ExecutorMetrics::register(&mut registry);
    let sandbox = sandbox.with_metrics(metrics.sandbox.clone());
    metrics.jobs.slots.set(i64::try_from(e.slots).unwrap_or(i64::MAX));
    let git = GitCache::new(&e.cache_dir, e.max_repo_mb).context("creating the git cache")?;
    let git = Arc::new(git.with_limits(e.checkout).with_metrics(metrics.git.clone()));

    ensure_topics(&settings.kafka).await.context("creating kafka topics")?;
    let tracker = Arc::new(Mutex::new(Default::default()));
    let lookback = Duration::from_secs(e.cancel_lookback_secs);
    let controls = cancel::Controls::new(lookback);
    let (cancels_ready, stop_following) = follow_cancels(settings, &executor_id, controls.clone(), lookback).await?;
    let revoke_grace = Duration::from_secs(e.revoke_grace_secs);
    let mut config = job_path_consumer_config(&settings.kafka, &e.group_id);
    config
        .set("client.id", &executor_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", gitfaas_common::metrics::STATISTICS_INTERVAL_MS);
    // the classic group protocol (the default); with KIP-848's `group.protocol:
    // consumer` in kafka.client the broker assigns and sets the heartbeat itself
    if settings.kafka.client.get("group.protocol").is_none_or(|p| p.as_str() == "classic") {
        config
            .set("partition.assignment.strategy", "cooperative-sticky")
            // learn of a rebalance within a second, so that a revoked partition's jobs
            // start finishing (and the new owner gets the partition) without delay
            .set("heartbeat.interval.ms", "1000");
    }
    let consumer: JobConsumer = config
        .create_with_context(WorkerContext {
            tracker: tracker.clone(),
            controls: controls.clone(),
            revoke_grace,
            lag: metrics.lag.clone(),
        })
        .context("creating the kafka consumer")?;
    consumer.subscribe(&[&settings.kafka.topics.jobs]).context("subscribing to the jobs topic")?;
    let publisher = Publisher::new(&settings.kafka).context("creating the kafka producer")?;

    let warm = e.warm.enabled.then(|| WarmPool::new(sandbox.clone(), &e.warm, metrics.warm.clone()));
    let consumer = Arc::new(consumer);
    let ops_port = match &e.metrics_listen {
        Some(address) => {
            let ready = ready_check(consumer.clone(), publisher.clone(), settings.kafka.topics.jobs.clone());
            let listener = gitfaas_common::ops::serve(
                address,
                Arc::new(registry),
                ready,
                stop_following.clone().cancelled_owned(),
            )
            .await
            .with_context(|| format!("binding the metrics listener {address}"))?;
            tracing::info!(port = listener.port, "metrics and health listening");
            Some(listener.port)
        }
        None => None,
    };
    let deps = Dependencies::new(&e.dependencies, sandbox.clone(), &executor_id)
        .context("creating the dependency layer cache")?;
    tracing::info!(%executor_id, slots = e.slots, runtime = %e.oci_runtime, warm = e.warm.enabled, "executor ready");
    Ok(Arc::new(Worker {
        consumer,
        ops_port,
        processing: Processing {
            publisher: publisher.clone(),
            runner: Arc::new(JobRunner {
                executor_id,
                settings: e.clone(),
                git,
                sandbox,
                warm,
                deps: Arc::new(deps),
                refs: refs::SharedResolutions::new(Duration::from_millis(e.ref_freshness_ms)),
                logs: job::LogTopic { publisher, topic: settings.kafka.topics.logs.clone() },
            }),
            topics: settings.kafka.topics.clone(),
            metrics: metrics.jobs,
        },
        tracker,
        slots: Arc::new(Semaphore::new(e.slots)),
        prefetch: e.prefetch,
        waking: Default::default(),
        grace: Duration::from_secs(e.shutdown_grace_secs),
        controls,
        cancels_ready,
        stop_following,
    }))
}

/// Ready once the jobs consumer has partitions, or (an executor the group has no
/// partition for) while the broker serves the jobs topic.
fn ready_check(consumer: Arc<JobConsumer>, publisher: Publisher, jobs: String) -> gitfaas_common::ops::ReadyCheck {
    Arc::new(move || {
        let assigned = consumer.assignment().map(|list| list.count() > 0).unwrap_or(false);
        let (publisher, jobs) = (publisher.clone(), jobs.clone());
        Box::pin(async move {
            if assigned {
                return Ok(());
            }
            gitfaas_common::ops::broker_reachable(&publisher, &jobs).await
        })
    })
}

/// Starts reading cancel requests from the control topic, `lookback` back in time.
async fn follow_cancels(
    settings: &Settings,
    executor_id: &str,
    controls: Arc<cancel::Controls>,
    lookback: Duration,
) -> anyhow::Result<(tokio::sync::watch::Receiver<bool>, CancellationToken)> {
    let consumer: rdkafka::consumer::StreamConsumer = client_config(&settings.kafka)
        .set("group.id", format!("{}-cancels-{executor_id}", settings.executor.group_id))
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the cancel request consumer")?;
    let topic = settings.kafka.topics.control.clone();
    let (consumer, ends) = tokio::task::spawn_blocking(move || {
        let ends = cancel::assign_recent(&consumer, &topic, lookback);
        (consumer, ends)
    })
    .await
    .context("cancel request consumer setup")?;
    let ends = ends.context("assigning the control topic")?;
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let stop = CancellationToken::new();
    tokio::spawn(cancel::follow(consumer, controls, ends, ready_tx, stop.clone()));
    Ok((ready, stop))
}

/// Runs the executor until `shutdown` completes, then drains gracefully.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let worker = build(&settings).await?;
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    worker.run(token).await;
    tracing::info!("executor stopped");
    Ok(())
}

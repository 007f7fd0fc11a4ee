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
//! - [`handover`]: jobs of a runtime this executor lacks, handed to the executors that have it;
//! - [`cancel`]: cancel requests and abandoned runs;
//! - [`metrics`]: what the executor counts and times (the sandbox's parts
//!   included), served with its health on `executor.metrics_listen`
//!   (`gitfaas_common::ops`).

mod cancel;
mod context;
mod credentials;
mod data;
mod delivery;
mod durable;
mod flow;
mod git;
mod handover;
mod heartbeat;
mod job;
mod metrics;
mod offsets;
mod processing;
mod rebalance;
mod refs;
mod settings;
mod submodules;
mod tree;
mod worker;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use gitfaas_common::kafka::{
    assign_all, ensure_topics, ConsumerBuilder, Inbox, Publisher, Role, Start, Topic, Transactor,
};
use gitfaas_common::state::FollowedState;
use gitfaas_common::tasks::Tasks;
use rdkafka::consumer::Consumer;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use gitfaas_sandbox::{Dependencies, Sandbox, Template, WarmPool, WasmRuntime};

use crate::context::FunctionState;
pub use crate::git::GitCache;
use crate::job::JobRunner;
use crate::processing::Processing;
pub use crate::settings::Settings;
pub use crate::tree::CheckoutLimits;
pub use crate::worker::Worker;
use crate::worker::{JobConsumer, WorkerContext};

/// Builds the executor from its settings: connects to Docker and Kafka, removes
/// containers a crashed predecessor left, follows cancel requests and joins the
/// consumer group. Its background tasks stop when the worker's run ends.
pub async fn build(settings: &Settings) -> anyhow::Result<Arc<Worker>> {
    let executor_id = settings.executor_id();
    let e = &settings.executor;
    let mut registry = gitfaas_common::metrics::registry();
    let metrics = metrics::ExecutorMetrics::register(&mut registry);
    metrics.jobs.slots.set(i64::try_from(e.slots).unwrap_or(i64::MAX));
    // with no container runtime (only `wasm`), no Docker engine is asked for
    let sandbox = match e.images.is_empty() {
        true => Sandbox::unconnected(e.sandbox().policy())?,
        false => prepare_sandbox(e, &executor_id).await?,
    };
    let sandbox = sandbox.with_metrics(metrics.sandbox.clone());
    let wasm = match e.wasm.enabled {
        true => Some(Arc::new(WasmRuntime::new(&e.wasm).context("starting the wasm runtime")?)),
        false => None,
    };
    let git = GitCache::new(&e.cache_dir, e.max_repo_mb).context("creating the git cache")?;
    let git = Arc::new(git.with_limits(e.checkout).with_metrics(metrics.git.clone()));

    ensure_topics(&settings.kafka).await.context("creating kafka topics")?;
    let tasks = Tasks::new();
    let lookback = Duration::from_secs(e.cancel_lookback_secs);
    let controls = cancel::Controls::new(lookback);
    let cancels_ready = follow_cancels(settings, &executor_id, controls.clone(), lookback, &tasks).await?;
    let tracker = Arc::new(Mutex::new(Default::default()));
    let context = || WorkerContext {
        tracker: tracker.clone(),
        controls: controls.clone(),
        revoke_grace: Duration::from_secs(e.revoke_grace_secs),
        lag: metrics.lag.clone(),
    };
    let consumer = Arc::new(jobs_consumer(settings, &executor_id, context())?);
    let handover = handover_consumer(settings, &executor_id, context())?.map(Arc::new);
    let publisher = Publisher::new(&settings.kafka).context("creating the kafka producer")?;
    let ops_port = serve_ops(e, registry, ready_check(consumer.clone(), publisher.clone()), &tasks).await?;
    let template = Template {
        executor_id: executor_id.clone(),
        work_dir: e.work_dir.clone(),
        code_mount: job::CODE_MOUNT.to_owned(),
        images: e.images.iter().map(|(runtime, image)| (runtime.clone(), image.clone())).collect(),
        job_network: e.job_network,
    };
    let warm = (e.warm.enabled && !e.images.is_empty())
        .then(|| WarmPool::new(sandbox.clone(), &e.warm, metrics.warm.clone(), template));
    let deps = Dependencies::new(&e.dependencies, sandbox.clone(), &executor_id)
        .context("creating the dependency layer cache")?;
    let runtimes = e.images.keys().map(String::as_str).chain(e.wasm.enabled.then_some("wasm")).collect::<Vec<_>>();
    tracing::info!(%executor_id, slots = e.slots, runtime = %e.oci_runtime, warm = e.warm.enabled, runtimes = ?runtimes, "executor ready");
    let followed =
        FollowedState::start(&settings.kafka, &executor_id, &tasks).await.context("following the state topic")?;
    let state = FunctionState { followed, limits: e.state.clone() };
    let transactor = Transactor::new(&settings.kafka, &format!("gitfaas-executor-{executor_id}"));
    let runner = JobRunner {
        executor_id,
        settings: e.clone(),
        git,
        sandbox,
        warm,
        deps: Arc::new(deps),
        refs: refs::SharedResolutions::new(Duration::from_millis(e.ref_freshness_ms)),
        logs: job::LogTopic { publisher: publisher.clone() },
        wasm,
        wasm_metrics: metrics.wasm.clone(),
        state,
    };
    Ok(Arc::new(Worker {
        consumer,
        handover,
        ops_port,
        processing: Processing {
            publisher,
            transactor,
            runner: Arc::new(runner),
            metrics: metrics.jobs,
            known_topics: Default::default(),
        },
        tracker,
        slots: Arc::new(Semaphore::new(e.slots)),
        prefetch: e.prefetch,
        waking: Default::default(),
        grace: Duration::from_secs(e.shutdown_grace_secs),
        controls,
        cancels_ready,
        tasks,
    }))
}

/// The sandbox, with what a crashed predecessor left removed and the runtime
/// images checked.
async fn prepare_sandbox(e: &settings::ExecutorSettings, executor_id: &str) -> anyhow::Result<Sandbox> {
    let sandbox = Sandbox::connect(e.sandbox().policy()).await?;
    let orphans = sandbox.remove_orphans(Some(executor_id)).await.context("removing orphan containers")?;
    if orphans > 0 {
        tracing::warn!(orphans, "removed containers left by a previous run");
    }
    for (runtime, image) in &e.images {
        if !sandbox.image_exists(image).await {
            tracing::warn!(%runtime, %image, "runtime image missing; its jobs will fail until it is built");
        }
    }
    Ok(sandbox)
}

/// The jobs topic's consumer in the executors' group.
fn jobs_consumer(settings: &Settings, executor_id: &str, context: WorkerContext) -> anyhow::Result<JobConsumer> {
    let consumer = ConsumerBuilder::new(&settings.kafka, Role::Worker, &settings.executor.group_id)
        .client_id(executor_id)
        .with_lag_statistics()
        .rebalancing_promptly()
        .create_with(context)
        .context("creating the kafka consumer")?;
    consumer.subscribe(&[settings.kafka.topics.name(Topic::Jobs)]).context("subscribing to the jobs topic")?;
    Ok(consumer)
}

/// The consumer of the hand-over topics of the kinds this executor has, in their
/// own group (see [`handover`]); none when it has no kind at all.
fn handover_consumer(
    settings: &Settings,
    executor_id: &str,
    context: WorkerContext,
) -> anyhow::Result<Option<JobConsumer>> {
    let e = &settings.executor;
    let sources = handover::sources(!e.images.is_empty(), e.wasm.enabled);
    if sources.is_empty() {
        return Ok(None);
    }
    let consumer = ConsumerBuilder::new(&settings.kafka, Role::Worker, &handover::group(&e.group_id))
        .client_id(executor_id)
        .rebalancing_promptly()
        .create_with(context)
        .context("creating the hand-over consumer")?;
    let names: Vec<&str> = sources.iter().map(|&topic| settings.kafka.topics.name(topic)).collect();
    consumer.subscribe(&names).context("subscribing to the hand-over topics")?;
    Ok(Some(consumer))
}

/// Serves metrics and health on `executor.metrics_listen`, if set; its port.
async fn serve_ops(
    e: &settings::ExecutorSettings,
    registry: gitfaas_common::metrics::Registry,
    ready: gitfaas_common::ops::ReadyCheck,
    tasks: &Tasks,
) -> anyhow::Result<Option<u16>> {
    let Some(address) = &e.metrics_listen else { return Ok(None) };
    let listener = gitfaas_common::ops::serve(address, Arc::new(registry), ready, tasks)
        .await
        .with_context(|| format!("binding the metrics listener {address}"))?;
    tracing::info!(port = listener.port, "metrics and health listening");
    Ok(Some(listener.port))
}

/// Ready once the jobs consumer has partitions, or (an executor the group has no
/// partition for) while the broker serves the jobs topic.
fn ready_check(consumer: Arc<JobConsumer>, publisher: Publisher) -> gitfaas_common::ops::ReadyCheck {
    Arc::new(move || {
        let assigned = consumer.assignment().map(|list| list.count() > 0).unwrap_or(false);
        let publisher = publisher.clone();
        Box::pin(async move {
            if assigned {
                return Ok(());
            }
            gitfaas_common::ops::broker_reachable(&publisher, Topic::Jobs).await
        })
    })
}

/// Starts reading cancel requests from the control topic, `lookback` back in
/// time, as one of `tasks`; true in the receiver once they are read.
async fn follow_cancels(
    settings: &Settings,
    executor_id: &str,
    controls: Arc<cancel::Controls>,
    lookback: Duration,
    tasks: &Tasks,
) -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    let group = format!("{}-cancels-{executor_id}", settings.executor.group_id);
    let consumer = ConsumerBuilder::new(&settings.kafka, Role::Broadcast, &group)
        .create()
        .context("creating the cancel request consumer")?;
    let topic = settings.kafka.topics.control.clone();
    let since = chrono::Utc::now() - chrono::Duration::from_std(lookback).unwrap_or(chrono::Duration::MAX);
    let (consumer, catch_up) = tokio::task::spawn_blocking(move || {
        let catch_up = assign_all(&consumer, &[(&topic, Start::Since(since))]);
        (consumer, catch_up)
    })
    .await
    .context("cancel request consumer setup")?;
    let catch_up = catch_up.context("assigning the control topic")?;
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let inbox = Inbox::new(consumer, "control");
    tasks.spawn("cancel requests", cancel::follow(inbox, controls, catch_up, ready_tx, tasks.stopping()));
    Ok(ready)
}

/// Runs the executor until `shutdown` completes, then drains gracefully.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let worker = build(&settings).await?;
    let token = CancellationToken::new();
    let running = worker.run(token.clone());
    tokio::pin!(running);
    tokio::select! {
        () = &mut running => {}
        () = shutdown => {
            token.cancel();
            running.await;
        }
    }
    tracing::info!("executor stopped");
    Ok(())
}

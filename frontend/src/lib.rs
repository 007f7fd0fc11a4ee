//! gitfaas frontend: the REST API.
//!
//! A submitted job is validated ([`request`]), stamped with the caller's identity
//! ([`identity`]), recorded as queued in Redis ([`store`]) and published to the jobs
//! topic. [`results`] reads the results topic back into Redis, where the status and
//! result routes ([`routes`]) find it; a message it cannot read still ends its job
//! ([`ending`]), and so does an at-most-once job whose executor was lost
//! ([`lost_runs`], on the heartbeats [`observer_feed`] reads). One Redis
//! subscription feeds every event websocket ([`event_hub`]). [`job_logs`] reads the
//! logs topic's chunks into Redis for the logs route. [`metrics`] counts and times
//! it, served at `/metrics`, and opens each request's span. [`pipelines`] chains
//! named functions, each step queued by the follow-up ([`follow_up`]) of the one
//! before.

mod affinity;
mod ending;
mod event_hub;
mod follow_up;
mod identity;
mod job_logs;
mod lost_runs;
mod metrics;
mod observer_feed;
mod oidc;
mod pipelines;
mod problem;
mod rebuild;
mod request;
mod results;
mod routes;
mod settings;
mod store;
mod submit;
mod triggers;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use gitfaas_common::kafka::{ensure_topics, ConsumerBuilder, Inbox, Publisher, Role};
use gitfaas_common::metrics::LagContext;
use gitfaas_common::settings::TopicSettings;
use gitfaas_common::state::FollowedState;
use gitfaas_common::tasks::Tasks;
use gitfaas_common::JobId;
use rdkafka::consumer::Consumer;

use crate::identity::Authenticator;
use crate::settings::FrontendSettings;
pub use crate::settings::{AuthMode, Settings};
use crate::store::JobStore;

/// Shared by every request handler.
pub struct AppState {
    pub settings: FrontendSettings,
    pub topics: TopicSettings,
    pub store: JobStore,
    /// The jobs' live logs (in the same Redis).
    pub logs: job_logs::LogStore,
    /// Every message the frontend publishes goes out through this.
    pub publisher: Publisher,
    /// Terminal results the frontend makes itself go out through this.
    pub results: ending::ResultPublisher,
    /// The shared subscription behind the event websockets.
    pub events: event_hub::EventHub,
    pub reports: observer_feed::Reports,
    pub metrics: metrics::FrontendMetrics,
    /// Every job gets in through this.
    pub submit: submit::Submitter,
    /// Named functions' state, folded from the state topic.
    pub functions_state: FollowedState,
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    tasks: Tasks,
    publisher: Publisher,
}

/// What the background tasks share, built before they start.
struct Parts {
    store: JobStore,
    publisher: Publisher,
    results: ending::ResultPublisher,
    submit: submit::Submitter,
    metrics: metrics::FrontendMetrics,
    liveness: lost_runs::SharedLiveness,
    reports: observer_feed::Reports,
    trigger_loads: triggers::TriggerLoads,
}

impl Application {
    /// Connects to Redis and Kafka, rebuilds the store from the topics if Redis
    /// lost it, starts the background tasks and binds the listener (port 0 picks
    /// one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let f = &settings.frontend;
        let store = JobStore::connect(&f.redis_url, &f.key_prefix).await.context("connecting to redis")?;
        ensure_topics(&settings.kafka).await.context("creating kafka topics")?;
        let publisher = Publisher::new(&settings.kafka).context("creating the kafka producer")?;
        let metrics = metrics::FrontendMetrics::new();
        // in the group before the rebuild: what is published meanwhile is read after it
        let results = results_inbox(&settings, &metrics)?;
        if rebuild::rebuild_if_empty(&settings.kafka, &store).await.context("rebuilding the job store from kafka")? {
            metrics.rebuilds.inc();
        }
        let affinity = affinity::Affinity::new(f.affinity_spread);
        // known before the first request (the topics exist: ensure_topics above)
        affinity.read_partitions(&publisher, &settings.kafka.topics.jobs).await;
        let submit = submit::Submitter {
            settings: Arc::new(f.clone()),
            store: store.clone(),
            publisher: publisher.clone(),
            affinity: affinity.clone(),
            metrics: metrics.clone(),
        };
        let parts = Parts {
            results: ending::ResultPublisher { publisher: publisher.clone() },
            store,
            publisher,
            submit,
            metrics,
            liveness: Arc::new(std::sync::Mutex::new(lost_runs::Liveness::new())),
            reports: observer_feed::Reports::default(),
            trigger_loads: triggers::TriggerLoads::default(),
        };
        let tasks = Tasks::new();
        start_readers(&settings, &parts, results, &tasks)?;
        start_triggers(&settings, &parts, &tasks)?;
        start_watchers(&settings, &parts, affinity, &tasks);
        let client = format!("{}-{}", f.group_id, JobId::new());
        let functions_state =
            FollowedState::start(&settings.kafka, &client, &tasks).await.context("following the state topic")?;
        let state = AppState {
            settings: f.clone(),
            topics: settings.kafka.topics.clone(),
            logs: parts.store.logs(f.logs.max_bytes_per_job),
            events: event_hub::EventHub::start(parts.store.clone(), f.max_event_streams_per_caller, &tasks),
            store: parts.store,
            publisher: parts.publisher.clone(),
            results: parts.results,
            reports: parts.reports,
            metrics: parts.metrics,
            submit: parts.submit,
            functions_state,
        };
        let authenticator = Authenticator::from_settings(&f.auth).await.context("setting up authentication")?;
        let (port, server) = serve(f, state, authenticator)?;
        tracing::info!(port, "frontend listening");
        Ok(Self { port, server, tasks, publisher: parts.publisher })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then stops accepting, drains, and waits
    /// for the background tasks (up to 10 s).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = self.server;
        tokio::pin!(server);
        tokio::select! {
            served = &mut server => served?,
            () = shutdown => {
                handle.stop(true).await;
                server.await?;
            }
        }
        self.tasks.shutdown(Duration::from_secs(10)).await;
        self.publisher.flush(Duration::from_secs(5)).await;
        Ok(())
    }
}

/// The results topic's reader, in the frontends' group.
fn results_inbox(settings: &Settings, metrics: &metrics::FrontendMetrics) -> anyhow::Result<Inbox<LagContext>> {
    let lag = LagContext { consumer: "frontend".into(), lag: metrics.lag.clone() };
    // a frontend that went away without leaving the group (killed, its host lost) holds its
    // share of the results for the session timeout: 6 s, not librdkafka's 45 s
    let consumer = ConsumerBuilder::new(&settings.kafka, Role::Worker, &settings.frontend.group_id)
        .with_lag_statistics()
        .failing_over_fast()
        .create_with(lag)
        .context("creating the results consumer")?;
    consumer.subscribe(&[&settings.kafka.topics.results]).context("subscribing to the results topic")?;
    Ok(Inbox::new(consumer, "results"))
}

/// The readers of the results, logs and observer topics, and the store's watch.
fn start_readers(settings: &Settings, parts: &Parts, results: Inbox<LagContext>, tasks: &Tasks) -> anyhow::Result<()> {
    let (f, stop) = (&settings.frontend, tasks.stopping());
    let follow_up = follow_up::FollowUp { submit: parts.submit.clone(), results: parts.results.clone() };
    let consume = results::consume(
        results,
        parts.store.clone(),
        parts.results.clone(),
        parts.metrics.clone(),
        follow_up,
        stop.clone(),
    );
    tasks.spawn("results", consume);
    let logs = ConsumerBuilder::new(&settings.kafka, Role::Worker, &format!("{}-logs", f.group_id))
        .create()
        .context("creating the logs consumer")?;
    logs.subscribe(&[&settings.kafka.topics.logs]).context("subscribing to the logs topic")?;
    let store = parts.store.logs(f.logs.max_bytes_per_job);
    tasks.spawn("logs", job_logs::consume(Inbox::new(logs, "logs"), store, stop.clone()));
    // a group of its own per instance: every frontend reads every report and heartbeat
    let group = format!("{}-observer-{}", f.group_id, gitfaas_common::JobId::new());
    let observer = ConsumerBuilder::new(&settings.kafka, Role::Broadcast, &group)
        .create()
        .context("creating the observer topic consumer")?;
    observer.subscribe(&[&settings.kafka.topics.observer]).context("subscribing to the observer topic")?;
    let (latest, liveness) = (parts.reports.clone(), parts.liveness.clone());
    tasks.spawn(
        "observer feed",
        observer_feed::follow(Inbox::new(observer, "observer"), latest, liveness, stop.clone()),
    );
    let rebuilds = parts.metrics.rebuilds.clone();
    tasks.spawn("store watch", rebuild::watch(settings.kafka.clone(), parts.store.clone(), rebuilds, stop));
    Ok(())
}

/// The scheduler and the topic triggers' readers.
fn start_triggers(settings: &Settings, parts: &Parts, tasks: &Tasks) -> anyhow::Result<()> {
    let f = &settings.frontend;
    let leader = parts.metrics.scheduler_leader.clone();
    let scheduler = triggers::Scheduler::new(&settings.kafka, &f.group_id, parts.submit.clone(), leader)
        .context("creating the scheduler's consumer")?;
    tasks.spawn("scheduler", scheduler.run(tasks.stopping()));
    let topic_triggers = triggers::TopicTriggers {
        kafka: settings.kafka.clone(),
        group_id: f.group_id.clone(),
        settings: f.triggers.clone(),
        submit: parts.submit.clone(),
        lag: parts.metrics.lag.clone(),
        loads: parts.trigger_loads.clone(),
        tasks: tasks.clone(),
    };
    tasks.spawn("topic triggers", topic_triggers.run(tasks.stopping()));
    Ok(())
}

/// The jobs topic's partition count, this frontend's beacon, and the watch on
/// at-most-once runs whose executor was lost.
fn start_watchers(settings: &Settings, parts: &Parts, affinity: affinity::Affinity, tasks: &Tasks) {
    let stop = tasks.stopping();
    let jobs = settings.kafka.topics.jobs.clone();
    tasks.spawn("partition count", affinity.follow(parts.publisher.clone(), jobs, stop.clone()));
    let from = format!("frontend-{}", gitfaas_common::JobId::new());
    let beacon = observer_feed::beacon(parts.publisher.clone(), from, parts.trigger_loads.clone(), stop.clone());
    tasks.spawn("beacon", beacon);
    let bound = Duration::from_secs(settings.frontend.delivery.executor_lost_after_secs);
    let (store, results, liveness) = (parts.store.clone(), parts.results.clone(), parts.liveness.clone());
    tasks.spawn("lost runs", lost_runs::watch(store, results, liveness, bound, stop));
}

/// Binds the API's listener and builds its server (not yet running).
fn serve(
    f: &FrontendSettings,
    state: AppState,
    authenticator: Authenticator,
) -> anyhow::Result<(u16, actix_web::dev::Server)> {
    let listener = TcpListener::bind(&f.listen).with_context(|| format!("binding {}", f.listen))?;
    let port = listener.local_addr()?.port();
    let metrics = web::Data::new(state.metrics.clone());
    let (state, authenticator) = (web::Data::new(state), web::Data::new(authenticator));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(
                // method and path only: query strings may carry access tokens (websocket)
                actix_web::middleware::Logger::new("%{route}xi %s %Dms")
                    .custom_request_replace("route", |req| format!("{} {}", req.method(), req.path()))
                    .log_target("gitfaas_frontend::http"),
            )
            .wrap(actix_web::middleware::from_fn(metrics::middleware))
            .app_data(metrics.clone())
            .app_data(state.clone())
            .app_data(authenticator.clone())
            .app_data(routes::query_config())
            .app_data(routes::path_config())
            .configure(routes::configure)
    })
    .disable_signals()
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok((port, server))
}

pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Application::build(settings).await?.run_until_stopped(shutdown).await
}

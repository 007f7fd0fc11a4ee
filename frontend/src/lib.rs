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
mod receive;
mod request;
mod results;
mod routes;
mod settings;
mod store;
mod submit;
mod triggers;

use std::future::Future;
use std::net::TcpListener;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use gitfaas_common::kafka::{client_config, ensure_topics, job_path_consumer_config, Publisher};
use gitfaas_common::metrics::{LagContext, STATISTICS_INTERVAL_MS};
use gitfaas_common::settings::TopicSettings;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

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
    pub latest_report: observer_feed::LatestReport,
    pub metrics: metrics::FrontendMetrics,
    /// Every job gets in through this.
    pub submit: submit::Submitter,
}

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    results: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl Application {
    /// Connects to Redis and Kafka and binds the listener (port 0 picks one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let f = &settings.frontend;
        let store = JobStore::connect(&f.redis_url, &f.key_prefix).await.context("connecting to redis")?;
        ensure_topics(&settings.kafka).await.context("creating kafka topics")?;
        let publisher = Publisher::new(&settings.kafka).context("creating the kafka producer")?;
        let metrics = metrics::FrontendMetrics::new();
        let lag = LagContext { consumer: "frontend".into(), lag: metrics.lag.clone() };
        let consumer: StreamConsumer<LagContext> = job_path_consumer_config(&settings.kafka, &f.group_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .create_with_context(lag)
            .context("creating the results consumer")?;
        consumer.subscribe(&[&settings.kafka.topics.results]).context("subscribing to the results topic")?;
        if rebuild::rebuild_if_empty(&settings.kafka, &store).await.context("rebuilding the job store from kafka")? {
            metrics.rebuilds.inc();
        }
        let stop = CancellationToken::new();
        tokio::spawn(rebuild::watch(settings.kafka.clone(), store.clone(), metrics.rebuilds.clone(), stop.clone()));
        let result_publisher =
            ending::ResultPublisher { publisher: publisher.clone(), topic: settings.kafka.topics.results.clone() };
        let affinity = affinity::Affinity::new(f.affinity_spread);
        // known before the first request (the topics exist: ensure_topics above)
        affinity.read_partitions(&publisher, &settings.kafka.topics.jobs).await;
        let submit = submit::Submitter {
            settings: std::sync::Arc::new(f.clone()),
            store: store.clone(),
            publisher: publisher.clone(),
            jobs_topic: settings.kafka.topics.jobs.clone(),
            dead_letter_topic: settings.kafka.topics.dead_letter.clone(),
            affinity: affinity.clone(),
            metrics: metrics.clone(),
        };
        let follow_up = follow_up::FollowUp { submit: submit.clone(), results: result_publisher.clone() };
        let trigger_loads = triggers::TriggerLoads::default();
        let scheduler =
            triggers::Scheduler::new(&settings.kafka, &f.group_id, submit.clone(), metrics.scheduler_leader.clone())
                .context("creating the scheduler's consumer")?;
        tokio::spawn(scheduler.run(stop.clone()));
        let topic_triggers = triggers::TopicTriggers {
            kafka: settings.kafka.clone(),
            group_id: f.group_id.clone(),
            settings: f.triggers.clone(),
            submit: submit.clone(),
            lag: metrics.lag.clone(),
            loads: trigger_loads.clone(),
        };
        tokio::spawn(topic_triggers.run(stop.clone()));
        let results = tokio::spawn(results::consume(
            consumer,
            store.clone(),
            result_publisher.clone(),
            metrics.clone(),
            follow_up,
            stop.clone(),
        ));
        let logs = store.logs(f.logs.max_bytes_per_job);
        tokio::spawn(job_logs::consume(logs_consumer(&settings)?, logs.clone(), stop.clone()));
        let events = event_hub::EventHub::start(store.clone(), f.max_event_streams_per_caller, stop.clone());
        let observer_consumer: StreamConsumer = client_config(&settings.kafka)
            .set("group.id", format!("{}-observer-{}", f.group_id, gitfaas_common::JobId::new()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .create()
            .context("creating the observer topic consumer")?;
        observer_consumer.subscribe(&[&settings.kafka.topics.observer]).context("subscribing to the observer topic")?;
        tokio::spawn(affinity.clone().follow(publisher.clone(), settings.kafka.topics.jobs.clone(), stop.clone()));
        let latest_report = observer_feed::LatestReport::default();
        let liveness = std::sync::Arc::new(std::sync::Mutex::new(lost_runs::Liveness::new()));
        tokio::spawn(observer_feed::follow(observer_consumer, latest_report.clone(), liveness.clone(), stop.clone()));
        let beacon_from = format!("frontend-{}", gitfaas_common::JobId::new());
        let observer_topic = settings.kafka.topics.observer.clone();
        tokio::spawn(observer_feed::beacon(
            publisher.clone(),
            observer_topic,
            beacon_from,
            trigger_loads,
            stop.clone(),
        ));
        let bound = std::time::Duration::from_secs(f.delivery.executor_lost_after_secs);
        tokio::spawn(lost_runs::watch(store.clone(), result_publisher.clone(), liveness, bound, stop.clone()));

        let listener = TcpListener::bind(&f.listen).with_context(|| format!("binding {}", f.listen))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            settings: f.clone(),
            topics: settings.kafka.topics.clone(),
            store,
            logs,
            publisher,
            results: result_publisher,
            events,
            latest_report,
            metrics: metrics.clone(),
            submit,
        });
        let metrics = web::Data::new(metrics);
        let authenticator =
            web::Data::new(Authenticator::from_settings(&f.auth).await.context("setting up authentication")?);
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
        tracing::info!(port, "frontend listening");
        Ok(Self { port, server, results, stop })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then stops accepting and drains.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        shutdown.await;
        handle.stop(true).await;
        self.stop.cancel();
        let _ = self.results.await;
        server.await??;
        Ok(())
    }
}

/// The consumer of the logs topic, in a group of its own next to the results one.
fn logs_consumer(settings: &Settings) -> anyhow::Result<StreamConsumer> {
    let group = format!("{}-logs", settings.frontend.group_id);
    let consumer: StreamConsumer = job_path_consumer_config(&settings.kafka, &group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the logs consumer")?;
    consumer.subscribe(&[&settings.kafka.topics.logs]).context("subscribing to the logs topic")?;
    Ok(consumer)
}

pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Application::build(settings).await?.run_until_stopped(shutdown).await
}

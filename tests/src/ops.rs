//! The services beside a stack that operators watch: an observer and a scaler of
//! the stack's world, each serving `/metrics` and `/health` on a port of its own
//! (tests/tests/metrics.rs and tests/tests/prometheus.rs scrape them).

use crate::{config_dir, infra, kafka, kafka_settings, unique, Stack};

/// Observer settings of the stack's world: a report every second, serving on `port`,
/// recommending between 0 and `max_workers` workers.
fn observer_settings(stack: &Stack, port: u16, max_workers: u32) -> gitfaas_observer::Settings {
    let mut observer: gitfaas_observer::Settings =
        gitfaas_common::settings::load_from(&config_dir(), "observer").expect("observer config");
    observer.kafka = kafka_settings(&stack.topic_prefix);
    let o = &mut observer.observer;
    o.id = Some(format!("{}observer", stack.topic_prefix));
    o.group_id = format!("{}observer", stack.topic_prefix);
    o.evaluate_every_ms = 200;
    o.replay_timeout_secs = 5;
    o.metrics_listen = Some(format!("127.0.0.1:{port}"));
    (o.params.interval_secs, o.params.min_workers, o.params.max_workers) = (1, 0, max_workers);
    observer
}

/// An observer of the stack's world alone (its reports reach the stack's frontend,
/// `/v1/admin/observer/status`), allowed `max_workers`; returns its metrics port.
pub fn start_observer(stack: &Stack, max_workers: u32) -> u16 {
    let port = kafka::free_port();
    let mut observer = observer_settings(stack, port, max_workers);
    // a load step shows an add decision at once, not after the cooldown since start
    observer.observer.params.scale_out_cooldown_secs = 1;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        if let Err(error) = runtime.block_on(gitfaas_observer::run(observer, std::future::pending())) {
            panic!("observer failed: {error:#}");
        }
    });
    port
}

/// An observer and a scaler of the stack's world, serving on the ports returned.
pub fn start_observer_and_scaler(stack: &Stack) -> (u16, u16) {
    let (observer_port, scaler_port) = (kafka::free_port(), kafka::free_port());
    let observer = observer_settings(stack, observer_port, 1);

    let mut scaler: gitfaas_scaler::Settings =
        gitfaas_common::settings::load_from(&config_dir(), "scaler").expect("scaler config");
    scaler.kafka = kafka_settings(&stack.topic_prefix);
    let state = tempfile::tempdir().unwrap().keep();
    let s = &mut scaler.scaler;
    s.id = Some(format!("{}scaler", stack.topic_prefix));
    s.group_id = format!("{}scaler", stack.topic_prefix);
    s.executor_bin = infra::bin_dir().join("gitfaas-executor");
    s.log_dir = state.join("log");
    s.metrics_listen = Some(format!("127.0.0.1:{scaler_port}"));
    // an executor it might start (before the stack's heartbeats are read) lives in a
    // world of its own: it must not take this test's jobs
    let other = unique("idle");
    s.env = [
        ("GITFAAS_CONFIG_DIR", config_dir().display().to_string()),
        ("GITFAAS__KAFKA__BROKERS", infra::brokers()),
        ("GITFAAS__KAFKA__TOPICS__JOBS", format!("{other}.jobs")),
        ("GITFAAS__KAFKA__TOPICS__RESULTS", format!("{other}.results")),
        ("GITFAAS__KAFKA__TOPICS__OBSERVER", format!("{other}.observer")),
        ("GITFAAS__KAFKA__TOPICS__CONTROL", format!("{other}.control")),
        ("GITFAAS__KAFKA__TOPICS__DEAD_LETTER", format!("{other}.dead-letter")),
        ("GITFAAS__EXECUTOR__GROUP_ID", format!("{other}.executors")),
        ("GITFAAS__EXECUTOR__WORK_DIR", state.join("work").display().to_string()),
        ("GITFAAS__EXECUTOR__CACHE_DIR", state.join("cache").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            tokio::spawn(gitfaas_scaler::run(scaler, std::future::pending()));
            if let Err(error) = gitfaas_observer::run(observer, std::future::pending()).await {
                panic!("observer failed: {error:#}");
            }
        });
    });
    (observer_port, scaler_port)
}

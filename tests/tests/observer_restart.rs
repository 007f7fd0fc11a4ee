//! What the observer knows survives its restart: parameters set by config
//! messages, the backlog of jobs nobody started, the cooldown of its last action.
//! Messages it cannot read are counted, never fatal.

use std::time::Duration;

use gitfaas_common::observer::{
    ConfigUpdate, ObserverMessage, ObserverParams, ObserverReport, ParamsUpdate, ScaleAction,
};
use gitfaas_tests::publish_raw;
use gitfaas_tests::scaling::{publish, sleep_job, submit, Log, Recorder, World};
use tokio_util::sync::CancellationToken;

fn reports_since(log: &Log, skip: usize) -> impl Iterator<Item = &ObserverReport> {
    log.observer.iter().skip(skip).filter_map(|(_, m)| match m {
        ObserverMessage::Report(r) => Some(r.as_ref()),
        _ => None,
    })
}

/// Runs an observer until it published a report that `done` accepts; returns it.
async fn observe_until(world: &World, recorder: &Recorder, done: impl Fn(&ObserverReport) -> bool) -> ObserverReport {
    let skip = recorder.log.lock().unwrap().observer.len();
    let stop = CancellationToken::new();
    let params = ObserverParams { interval_secs: 1, ..ObserverParams::default() };
    let observer =
        tokio::spawn(gitfaas_observer::run(world.observer_settings(params, 2), stop.clone().cancelled_owned()));
    let found = recorder
        .wait_for(Duration::from_secs(30), "a matching report", |log| {
            reports_since(log, skip).find(|r| done(r)).cloned()
        })
        .await;
    stop.cancel();
    observer.await.unwrap().expect("observer stops cleanly");
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn config_and_backlog_survive_a_restart_and_unreadable_messages_are_counted() {
    let world = World::new(2).await;
    let recorder = world.record(&[&world.topics().observer]).await;
    let producer = world.producer();
    let t = world.topics();
    let update = ParamsUpdate { max_workers: Some(7), target_response_ms: Some(1_234), ..Default::default() };
    publish(&producer, t, &ObserverMessage::Config(ConfigUpdate::new("ops", update))).await;
    // refused by validation, so it must not undo the first one
    let invalid = ParamsUpdate { min_workers: Some(9), ..Default::default() };
    publish(&producer, t, &ObserverMessage::Config(ConfigUpdate::new("ops", invalid))).await;
    for topic in [&t.jobs, &t.results, &t.observer] {
        publish_raw(&producer, topic, "junk", b"{not json").await;
    }
    publish_raw(&producer, &t.observer, "future", br#"{"kind": "heartbeat", "version": 99}"#).await;
    // two jobs no executor will start: the backlog
    for n in 0..2 {
        submit(&producer, t, &sleep_job("git://127.0.0.1:1/none", n, 1.0)).await;
    }

    let first = observe_until(&world, &recorder, |r| r.metrics.backlog == 2).await;
    assert_eq!((first.params.max_workers, first.params.target_response_ms), (7, 1_234));
    assert_eq!(first.metrics.anomalies.rejected_config, 1);
    assert_eq!(first.metrics.anomalies.malformed, 4);
    assert_eq!((first.action, first.desired_workers), (ScaleAction::Add, 1), "{}", first.reason);

    // a new observer process: everything above is read back from the topics
    let second = observe_until(&world, &recorder, |_| true).await;
    assert_eq!((second.params.max_workers, second.params.target_response_ms), (7, 1_234));
    assert_eq!(second.metrics.backlog, 2, "jobs submitted before the restart are still queued");
    assert_eq!(second.metrics.arrival_rate * second.params.rate_window_secs as f64, 2.0);
    assert_eq!(second.action, ScaleAction::None, "the add of the first run is in its cooldown: {}", second.reason);
    assert!(second.reason.contains("scale-out cooldown"), "{}", second.reason);
}

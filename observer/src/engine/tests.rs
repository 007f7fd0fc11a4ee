use chrono::TimeZone;
use gitfaas_common::observer::{ConfigUpdate, ExecutorHeartbeat, ExecutorState};

use super::*;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn observer() -> Observer {
    let options = ObserverOptions {
        partitions: None,
        lookback: Duration::seconds(600),
        worker_timeout: Duration::seconds(6),
        default_slots: 2,
    };
    Observer::new("obs".into(), ObserverParams::default(), options, at(-600))
}

fn config(params: ParamsUpdate) -> Input {
    Input::Observer(ObserverMessage::Config(ConfigUpdate::new("ops", params)))
}

fn heartbeat(id: &str, secs: i64) -> Input {
    let heartbeat = ExecutorHeartbeat {
        version: SCHEMA_VERSION,
        executor_id: id.into(),
        slots: 2,
        busy: 0,
        state: ExecutorState::Running,
        at: at(secs),
        unsettled: vec![],
        since: None,
    };
    Input::Observer(ObserverMessage::Heartbeat(heartbeat))
}

#[test]
fn nothing_is_decided_before_the_replay_caught_up() {
    let mut o = observer();
    assert!(o.evaluate(at(0)).is_none());
    o.ingest(Input::CaughtUp);
    let report = o.evaluate(at(0)).expect("first report");
    assert_eq!((report.action, report.desired_workers), (ScaleAction::Add, 1), "{}", report.reason);
}

#[test]
fn config_updates_apply_in_order_and_invalid_ones_are_refused_and_counted() {
    let mut o = observer();
    o.ingest(config(ParamsUpdate { max_workers: Some(8), ..Default::default() }));
    o.ingest(config(ParamsUpdate { min_workers: Some(9), ..Default::default() })); // above max: refused
    o.ingest(config(ParamsUpdate { min_workers: Some(2), target_response_ms: Some(500), ..Default::default() }));
    assert_eq!((o.params().min_workers, o.params().max_workers, o.params().target_response_ms), (2, 8, 500));
    o.ingest(Input::CaughtUp);
    let report = o.evaluate(at(0)).unwrap();
    assert_eq!(report.metrics.anomalies.rejected_config, 1);
    assert_eq!(report.params.min_workers, 2);
    assert_eq!(report.desired_workers, 2);
}

#[test]
fn malformed_messages_are_counted_and_reported() {
    let mut o = observer();
    o.ingest(Input::Malformed { at: "jobs/0@7".into(), reason: "expected value".into() });
    o.ingest(Input::Malformed { at: "results/1@3".into(), reason: "unsupported schema version 9".into() });
    o.ingest(Input::CaughtUp);
    assert_eq!(o.evaluate(at(0)).unwrap().metrics.anomalies.malformed, 2);
}

#[test]
fn an_earlier_decision_of_this_observer_keeps_its_cooldown_after_a_restart() {
    let mut first = observer();
    first.ingest(Input::CaughtUp);
    let add = first.evaluate(at(0)).unwrap();
    assert_eq!(add.action, ScaleAction::Add);

    let mut restarted = observer();
    let echo = Input::Observer(ObserverMessage::Report(Box::new(add.clone())));
    restarted.ingest(echo);
    restarted.ingest(Input::CaughtUp);
    let report = restarted.evaluate(at(5)).unwrap();
    assert_eq!(report.action, ScaleAction::None, "{}", report.reason);
    assert!(report.reason.contains("cooldown"), "{}", report.reason);
    // another observer's report does not hold this one back
    let mut other = Observer::new(
        "other".into(),
        ObserverParams::default(),
        ObserverOptions {
            partitions: None,
            lookback: Duration::seconds(600),
            worker_timeout: Duration::seconds(6),
            default_slots: 2,
        },
        at(-600),
    );
    other.ingest(Input::Observer(ObserverMessage::Report(Box::new(add))));
    other.ingest(Input::CaughtUp);
    assert_eq!(other.evaluate(at(5)).unwrap().action, ScaleAction::Add);
}

#[test]
fn reports_come_every_interval_and_at_once_on_change() {
    let mut o = observer();
    o.ingest(heartbeat("e-1", 0));
    o.ingest(Input::CaughtUp);
    let first = o.evaluate(at(0)).unwrap();
    assert_eq!((first.action, first.current_workers), (ScaleAction::None, 1));
    o.ingest(heartbeat("e-1", 1));
    assert!(o.evaluate(at(1)).is_none(), "nothing changed");
    o.ingest(heartbeat("e-1", 5));
    assert!(o.evaluate(at(9)).is_none());
    o.ingest(heartbeat("e-1", 9));
    assert!(o.evaluate(at(10)).is_some(), "interval passed");
    o.ingest(heartbeat("e-2", 11));
    let changed = o.evaluate(at(11)).expect("a new worker is a change");
    assert_eq!(changed.current_workers, 2);
    o.ingest(config(ParamsUpdate { hysteresis: Some(0.5), ..Default::default() }));
    assert!(o.evaluate(at(12)).is_some(), "new parameters are a change");
}

use super::*;
use crate::schema::DecodeError;
use serde_json::{json, Value};

#[test]
fn spans_past_a_year_are_refused_naming_the_field_however_they_come() {
    let huge = ParamsUpdate { rate_window_secs: Some(u64::MAX), ..Default::default() };
    let refused = ObserverParams::default().apply(&huge).unwrap_err();
    assert_eq!(refused.1, Some("rate_window_secs"), "{refused}");
    let target = ParamsUpdate { target_response_ms: Some(u64::MAX), ..Default::default() };
    assert_eq!(ObserverParams::default().apply(&target).unwrap_err().1, Some("target_response_ms"));
    let year = ParamsUpdate { interval_secs: Some(MAX_SPAN_SECS), ..Default::default() };
    assert!(ObserverParams::default().apply(&year).is_ok(), "a year is still a span");
}

#[test]
fn config_updates_change_only_the_fields_they_name() {
    let base = ObserverParams::default();
    let update = ParamsUpdate { max_workers: Some(9), target_response_ms: Some(2_000), ..Default::default() };
    let next = base.apply(&update).unwrap();
    assert_eq!((next.max_workers, next.target_response_ms), (9, 2_000));
    assert_eq!(next.min_workers, base.min_workers);
    let bad = ParamsUpdate { min_workers: Some(10), ..Default::default() };
    assert!(base.apply(&bad).is_err(), "min above max is refused");
}

#[test]
fn messages_are_tagged_by_kind_and_keyed_by_their_subject() {
    let message = ObserverMessage::Config(ConfigUpdate::new("ops", ParamsUpdate::default()));
    let value: Value = serde_json::from_slice(&serde_json::to_vec(&message).unwrap()).unwrap();
    assert_eq!(value["kind"], "config");
    assert_eq!(message.key(), CONFIG_KEY);
    assert_eq!(crate::kafka::decode::<ObserverMessage>(&serde_json::to_vec(&message).unwrap()).unwrap(), message);

    let heartbeat = json!({"kind": "heartbeat", "version": 1, "executor_id": "e1", "slots": 2, "busy": 1,
        "state": "draining", "at": "2025-01-01T00:00:00Z"});
    let decoded = crate::kafka::decode::<ObserverMessage>(heartbeat.to_string().as_bytes()).unwrap();
    assert_eq!(decoded.key(), "e1");
    let ObserverMessage::Heartbeat(older) = &decoded else { panic!("a heartbeat: {decoded:?}") };
    assert!(older.unsettled.is_empty(), "heartbeats without unsettled partitions still decode");
    let mut busy = older.clone();
    busy.unsettled = vec![0, 3];
    let encoded: Value =
        serde_json::from_slice(&serde_json::to_vec(&ObserverMessage::Heartbeat(busy)).unwrap()).unwrap();
    assert_eq!(encoded["unsettled"], json!([0, 3]));
    let future = json!({"kind": "heartbeat", "version": 2, "executor_id": "e1", "slots": 2, "busy": 1,
        "state": "running", "at": "2025-01-01T00:00:00Z"});
    assert!(matches!(
        crate::kafka::decode::<ObserverMessage>(future.to_string().as_bytes()),
        Err(DecodeError::Version { .. })
    ));
    let unknown_field = json!({"kind": "config", "version": 1, "issued_by": "x",
        "issued_at": "2025-01-01T00:00:00Z", "params": {"max_wrokers": 3}});
    assert!(
        crate::kafka::decode::<ObserverMessage>(unknown_field.to_string().as_bytes()).is_err(),
        "typos are not ignored"
    );
}

#[test]
fn scaler_events_flatten_their_action() {
    let event = ScalerEvent {
        version: SCHEMA_VERSION,
        scaler_id: "s".into(),
        executor_id: "e".into(),
        at: Utc::now(),
        action: ScalerAction::Stopped { exit_code: Some(0), drained: true },
    };
    let value = serde_json::to_value(ObserverMessage::Scaler(event.clone())).unwrap();
    assert_eq!((value["kind"].as_str(), value["event"].as_str()), (Some("scaler"), Some("stopped")));
    assert_eq!(value["exit_code"], 0);
    assert_eq!(
        crate::kafka::decode::<ObserverMessage>(value.to_string().as_bytes()).unwrap(),
        ObserverMessage::Scaler(event)
    );
}

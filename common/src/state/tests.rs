use serde_json::json;

use super::*;

fn incr(key: &str, by: i64) -> StateOp {
    StateOp::Incr { key: key.into(), by }
}

fn scope() -> Scope {
    Scope::new("alice", "count")
}

#[test]
fn a_jobs_second_commit_is_not_applied_and_increments_commute() {
    let commits = [
        StateCommit::new(scope(), "j1", vec![incr("the", 2), incr("cat", 1)]),
        StateCommit::new(scope(), "j2", vec![incr("the", 1)]),
        StateCommit::new(scope(), "j1", vec![incr("the", 2), incr("cat", 1)]), // j1 redelivered
    ];
    let mut view = StateView::default();
    let applied: Vec<bool> = commits.iter().map(|c| view.apply(c)).collect();
    assert_eq!(applied, [true, true, false]);
    let mut reversed = StateView::default();
    commits.iter().rev().for_each(|c| {
        reversed.apply(c);
    });
    for v in [&view, &reversed] {
        let state = v.scope(&scope()).unwrap();
        assert_eq!(state.values, BTreeMap::from([("cat".into(), json!(1)), ("the".into(), json!(3))]));
    }
    assert!(view.has_applied(&scope(), "j2"));
    assert!(!view.has_applied(&Scope::new("bob", "count"), "j2"), "scopes are apart");
}

#[test]
fn puts_deletes_and_clear_apply_in_order_and_incr_saturates() {
    let mut view = StateView::default();
    let ops = vec![
        StateOp::Put { key: "a".into(), value: json!({"x": 1}) },
        StateOp::Put { key: "n".into(), value: json!("text") },
        incr("n", 5),
        incr("max", i64::MAX),
        incr("max", 1),
        StateOp::Put { key: "gone".into(), value: json!(1) },
        StateOp::Delete { key: "gone".into() },
    ];
    view.apply(&StateCommit::new(scope(), "j1", ops));
    let state = view.scope(&scope()).unwrap();
    assert_eq!(state.values["n"], json!(5), "an incr of a non-integer starts at 0");
    assert_eq!(state.values["max"], json!(i64::MAX));
    assert!(!state.values.contains_key("gone"));
    let keys: Vec<&String> = state.with_prefix("m").map(|(k, _)| k).collect();
    assert_eq!(keys, ["max"]);
    view.apply(&StateCommit::new(scope(), "api:1", vec![StateOp::Clear]));
    assert!(view.scope(&scope()).unwrap().values.is_empty());
}

#[test]
fn effects_past_a_bound_are_refused_with_the_bound() {
    let limits = StateLimits { max_keys: 2, max_value_bytes: 8, max_key_bytes: 4, ..StateLimits::default() };
    let state = ScopeState::default();
    let put = |k: &str, v: Value| StateOp::Put { key: k.into(), value: v };
    let check = |ops: Vec<StateOp>| Effects { ops, publish: vec![] }.check(&limits, &[], &state);
    assert_eq!(check(vec![put("a", json!(1)), incr("b", 1)]), Ok(()));
    assert_eq!(check(vec![put("a", json!("123456789"))]), Err(EffectsError::ValueTooLarge("a".into(), 11, 8)));
    assert_eq!(check(vec![put("abcde", json!(1))]), Err(EffectsError::KeyTooLong(5, 4)));
    assert_eq!(check(vec![incr("a", 1), incr("b", 1), incr("c", 1)]), Err(EffectsError::TooManyKeys(3, 2)));
    assert_eq!(check(vec![incr("a", 1), incr("b", 1), StateOp::Delete { key: "a".into() }, incr("c", 1)]), Ok(()));
    assert_eq!(check(vec![StateOp::Clear]), Err(EffectsError::Clear));
    let publish = |topic: &str| Effects {
        ops: vec![],
        publish: vec![Publish { topic: topic.into(), key: None, value: json!(1) }],
    };
    let allowed = ["words".to_owned()];
    assert_eq!(publish("words").check(&limits, &allowed, &state), Ok(()));
    assert_eq!(
        publish("gitfaas.jobs").check(&limits, &allowed, &state),
        Err(EffectsError::TopicNotAllowed("gitfaas.jobs".into()))
    );
}

#[test]
fn a_scope_forgets_the_job_ids_it_applied_a_window_before_its_latest_commit() {
    let base = Utc::now() - chrono::TimeDelta::hours(48);
    let at = |hours: i64| base + chrono::TimeDelta::hours(hours);
    let commit = |job: &str, hours: i64| StateCommit {
        committed_at: at(hours),
        ..StateCommit::new(scope(), job, vec![incr("n", 1)])
    };
    let mut view = StateView::default();
    assert!(view.apply(&commit("a", 0)));
    assert!(view.apply(&commit("b", 1)));
    assert!(!view.apply(&commit("a", 20)), "a redelivered job within the window adds nothing");
    assert!(view.apply(&commit("c", 25)), "a new job 25 h on");
    assert!(!view.has_applied(&scope(), "a"), "forgotten: more than a day before the latest commit");
    assert!(view.has_applied(&scope(), "b") && view.has_applied(&scope(), "c"));
    assert_eq!(view.scope(&scope()).unwrap().remembered(), 2);
    // every reader folds the same commits in the same order, so forgets alike
    let mut again = StateView::default();
    for c in [commit("a", 0), commit("b", 1), commit("a", 20), commit("c", 25)] {
        again.apply(&c);
    }
    assert_eq!(again.scope(&scope()).unwrap().values, view.scope(&scope()).unwrap().values);
    assert_eq!(view.scope(&scope()).unwrap().values["n"], json!(3));
}

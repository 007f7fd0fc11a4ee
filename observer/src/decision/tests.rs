use super::*;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn params() -> ObserverParams {
    ObserverParams {
        target_statistic: TargetStatistic::Mean,
        target_response_ms: 2_000,
        rate_window_secs: 30,
        latency_window_secs: 60,
        min_workers: 1,
        max_workers: 4,
        scale_out_cooldown_secs: 15,
        scale_in_cooldown_secs: 60,
        interval_secs: 10,
        drain_horizon_secs: 30,
        hysteresis: 0.2,
    }
}

/// One worker of one slot per unit of `workers`, jobs of one second, all idle.
fn load(arrival_rate: f64, backlog: u64, workers: u32) -> DecisionInput {
    DecisionInput {
        arrival_rate,
        service_time_ms: Some(1_000.0),
        backlog,
        workers,
        slots_per_worker: 1,
        partitions: None,
        idle: (1..=workers).map(|n| format!("e-{n}")).collect(),
        window_filled: true,
    }
}

struct Case {
    name: &'static str,
    input: DecisionInput,
    params: ObserverParams,
    last_action_secs_ago: Option<i64>,
    action: ScaleAction,
    desired: u32,
    reason_has: &'static str,
}

fn case(name: &'static str, input: DecisionInput, action: ScaleAction, desired: u32, reason_has: &'static str) -> Case {
    Case { name, input, params: params(), last_action_secs_ago: None, action, desired, reason_has }
}

#[test]
fn decisions_over_a_table_of_situations() {
    let no_data = DecisionInput { service_time_ms: None, ..load(0.0, 0, 0) };
    let cases = vec![
        case("no data and no worker starts the minimum", no_data.clone(), ScaleAction::Add, 1, "no load"),
        case(
            "no data with the minimum keeps it",
            DecisionInput { workers: 1, ..no_data.clone() },
            ScaleAction::None,
            1,
            "keeping 1",
        ),
        case(
            "load before any job finished keeps at least one worker",
            DecisionInput { service_time_ms: None, ..load(2.0, 5, 0) },
            ScaleAction::Add,
            1,
            "no service time",
        ),
        // M/M/1 at ρ = 0.1: T = 1 / (1 − 0.1) = 1.1 s
        case("one worker under light load is kept", load(0.1, 0, 1), ScaleAction::None, 1, "keeping 1"),
        // M/M/1 at ρ = 0.8: T = 5 s; M/M/2: T = 1.19 s
        case(
            "one worker at rho 0.8 misses a 2 s mean and gets a second",
            load(0.8, 0, 1),
            ScaleAction::Add,
            2,
            "2 workers meet",
        ),
        case("saturation asks for the maximum and says so", load(10.0, 0, 2), ScaleAction::Add, 4, "unreachable"),
        // (0.1 + 60 / 30) jobs/s of drain at 1 job/s per worker
        case("a burst backlog is drained within the horizon", load(0.1, 60, 1), ScaleAction::Add, 3, "backlog 60"),
        // four idle workers, nothing to do: down to the minimum, highest-numbered first
        case("idle workers beyond the need are removed", load(0.0, 0, 4), ScaleAction::Remove, 1, "more than needed"),
        // λ = 0.45: one worker meets 2 s (1.82 s) but not the stricter 1.6 s
        case("hysteresis keeps a worker that is only just spare", load(0.45, 0, 2), ScaleAction::None, 2, "keeping 2"),
        case("a clearly spare worker is removed", load(0.3, 0, 2), ScaleAction::Remove, 1, "more than needed"),
        case(
            "no worker is removed while all are busy",
            DecisionInput { idle: vec![], ..load(0.0, 0, 3) },
            ScaleAction::None,
            1,
            "no worker is idle",
        ),
        case(
            "only idle workers are named",
            DecisionInput { idle: vec!["e-1".into()], ..load(0.0, 0, 3) },
            ScaleAction::Remove,
            2,
            "more than needed",
        ),
        case("no scale-in while jobs wait", load(0.0, 3, 4), ScaleAction::None, 4, "3 jobs waiting"),
        case(
            "no scale-in before the window is covered",
            DecisionInput { window_filled: false, ..load(0.0, 0, 3) },
            ScaleAction::None,
            3,
            "not yet covered",
        ),
        Case {
            last_action_secs_ago: Some(5),
            ..case("no add within the scale-out cooldown", load(0.8, 0, 1), ScaleAction::None, 2, "scale-out cooldown")
        },
        Case {
            last_action_secs_ago: Some(20),
            ..case("add again once the cooldown is over", load(0.8, 0, 1), ScaleAction::Add, 2, "meet the target")
        },
        Case {
            last_action_secs_ago: Some(30),
            ..case("no remove within the scale-in cooldown", load(0.0, 0, 3), ScaleAction::None, 1, "scale-in cooldown")
        },
        Case {
            params: ObserverParams { max_workers: 2, ..params() },
            ..case(
                "lowering the maximum removes the excess",
                load(0.8, 0, 3),
                ScaleAction::Remove,
                2,
                "more than needed",
            )
        },
        Case {
            params: ObserverParams { min_workers: 3, ..params() },
            ..case("raising the minimum adds without load", load(0.0, 0, 1), ScaleAction::Add, 3, "have 1")
        },
        Case {
            // p95 of an exponential 1 s job is 3 s: a 2 s p95 cannot be met by any count
            params: ObserverParams { target_statistic: TargetStatistic::P95, ..params() },
            ..case(
                "a target below the service time itself does not run to the maximum",
                load(0.5, 0, 1),
                ScaleAction::Add,
                2,
                "below the service time",
            )
        },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let state = ScalingState { last_action_at: c.last_action_secs_ago.map(|s| now() - Duration::seconds(s)) };
        let d = decide(&c.input, &c.params, &state, now());
        if d.action != c.action || d.desired != c.desired || !d.reason.contains(c.reason_has) {
            failures.push(format!("{}: got {:?} {} ({})", c.name, d.action, d.desired, d.reason));
        }
        if d.action == ScaleAction::Remove {
            assert_eq!(d.remove.len() as u32, c.input.workers - d.desired, "{}", c.name);
            assert!(d.remove.iter().all(|id| c.input.idle.contains(id)), "{}: named a busy worker", c.name);
        } else {
            assert!(d.remove.is_empty(), "{}", c.name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn removal_names_the_highest_numbered_idle_workers() {
    let d = decide(&load(0.0, 0, 4), &params(), &ScalingState::default(), now());
    assert_eq!(d.remove, vec!["e-4", "e-3", "e-2"]);
}

#[test]
fn the_chosen_count_is_the_smallest_that_meets_the_target() {
    for arrival_rate in [0.2, 0.9, 1.7, 2.5, 3.2] {
        let p = ObserverParams { max_workers: 10, ..params() };
        let d = decide(&load(arrival_rate, 0, 1), &p, &ScalingState::default(), now());
        let target = p.target_response_ms as f64;
        let input = load(arrival_rate, 0, 1);
        let at = |w| predict_ms(&input, w, TargetStatistic::Mean).unwrap();
        assert!(at(d.desired) <= target, "λ={arrival_rate}: {} workers predict {}", d.desired, at(d.desired));
        if d.desired > 1 {
            assert!(at(d.desired - 1) > target, "λ={arrival_rate}: {} workers would have done", d.desired - 1);
        }
    }
}

#[test]
fn slots_per_worker_multiply_the_servers() {
    // two slots per worker: λ = 1.5 with 1 s jobs is M/M/2 for one worker (ρ = 0.75)
    let input = DecisionInput { slots_per_worker: 2, ..load(1.5, 0, 1) };
    let one = predict_ms(&input, 1, TargetStatistic::Mean).unwrap();
    let expected = MMc::new(1.5, 1.0, 2).mean_response() * 1000.0;
    assert!((one - expected).abs() < 1e-6);
    let slots_one = predict_ms(&load(1.5, 0, 1), 1, TargetStatistic::Mean).unwrap();
    assert!(slots_one.is_infinite(), "one slot at λ = 1.5, μ = 1 is unstable");
}

#[test]
fn uneven_partition_shares_ask_for_more_workers_than_a_pooled_queue() {
    // λ = 0.7, 2 s jobs, one slot, mean ≤ 5 s: pooled M/M/2 predicts 3.9 s, but on
    // 4 partitions two workers are two M/M/1 queues of λ = 0.35 (6.7 s); three
    // workers take shares 1/2, 1/4, 1/4 (4.9 s on average)
    let input = DecisionInput { service_time_ms: Some(2_000.0), ..load(0.7, 0, 1) };
    let p = ObserverParams { target_response_ms: 5_000, ..params() };
    let pooled = decide(&input, &p, &ScalingState::default(), now());
    assert_eq!(pooled.desired, 2, "{}", pooled.reason);
    let partitioned = DecisionInput { partitions: Some(4), ..input };
    let d = decide(&partitioned, &p, &ScalingState::default(), now());
    assert_eq!(d.desired, 3, "{}", d.reason);
    assert!((d.predicted_ms.unwrap() - 4_871.8).abs() < 1.0, "{:?}", d.predicted_ms);
}

#[test]
fn workers_beyond_the_partition_count_are_never_asked_for() {
    let saturated = DecisionInput { partitions: Some(2), ..load(10.0, 500, 1) };
    let d = decide(&saturated, &params(), &ScalingState::default(), now());
    assert_eq!((d.action, d.desired), (ScaleAction::Add, 2), "{}", d.reason);
    assert!(d.reason.contains("unreachable with the 2 workers that can help"), "{}", d.reason);
}

//! Estimators over synthetic streams, under a clock the test moves.

use chrono::TimeZone;
use gitfaas_common::observer::ExecutorHeartbeat;
use gitfaas_common::schema::SCHEMA_VERSION;
use gitfaas_common::{JobSpec, Owner, Timings};

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn at(ms: i64) -> DateTime<Utc> {
    t0() + Duration::milliseconds(ms)
}

fn spans() -> Spans {
    Spans {
        rate_window: Duration::seconds(30),
        latency_window: Duration::seconds(60),
        memory: Duration::seconds(600),
        worker_timeout: Duration::seconds(6),
    }
}

/// xorshift64*: reproducible pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn exponential(&mut self, rate: f64) -> f64 {
        -self.uniform().ln() / rate
    }
}

fn job(submitted_at: DateTime<Utc>) -> Job {
    // through JSON, so that fields the schema gains later take their defaults
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "repo": "git://127.0.0.1/f", "ref": "main", "timeout_secs": 60,
        "resources": {"memory_mb": 64, "cpu_millis": 500, "pids": 32},
    }))
    .unwrap();
    Job { submitted_at, ..Job::new(Owner { subject: "u".into(), name: None }, spec) }
}

fn started(job: &Job, started_at: DateTime<Utc>) -> JobEvent {
    serde_json::from_value(serde_json::json!({
        "kind": "started", "version": SCHEMA_VERSION, "job_id": job.id, "owner": job.owner,
        "executor_id": "e-1", "attempt": 1, "started_at": started_at,
    }))
    .unwrap()
}

fn finished(job: &Job, started_at: DateTime<Utc>, finished_at: DateTime<Utc>) -> JobEvent {
    serde_json::from_value(serde_json::json!({
        "kind": "finished", "version": SCHEMA_VERSION, "job_id": job.id, "owner": job.owner,
        "status": "succeeded", "executor_id": "e-1", "attempt": 1,
        "submitted_at": job.submitted_at, "started_at": started_at, "finished_at": finished_at,
        "timings": Timings::between(job.submitted_at, Some(started_at), finished_at),
    }))
    .unwrap()
}

/// Feeds a whole job's life: submitted, started after `wait`, finished after `run`.
fn complete(m: &mut Measurements, submitted: DateTime<Utc>, wait: Duration, run: Duration) {
    let j = job(submitted);
    let (start, end) = (submitted + wait, submitted + wait + run);
    m.job_submitted(&j, submitted);
    m.job_event(&started(&j, start), start);
    m.job_event(&finished(&j, start, end), end);
}

#[test]
fn poisson_arrivals_and_exponential_service_are_estimated_within_ten_percent() {
    let (lambda, mean_run_s) = (2.0, 1.5);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut m = Measurements::new(spans(), t0(), 2);
    let mut clock = 0.0;
    while clock < 600.0 {
        clock += rng.exponential(lambda);
        let run = rng.exponential(1.0 / mean_run_s);
        complete(&mut m, at((clock * 1000.0) as i64), Duration::zero(), Duration::milliseconds((run * 1000.0) as i64));
    }
    // a long window so the sampling error of the check itself stays small
    m.set_windows(Duration::seconds(300), Duration::seconds(300));
    let s = m.snapshot(at(600_000)).metrics;
    assert!((s.arrival_rate - lambda).abs() < 0.2, "λ estimate {}", s.arrival_rate);
    let service = s.service_time_ms.unwrap();
    assert!((service - 1500.0).abs() < 150.0, "E[S] estimate {service}");
    // p95 of an exponential is ln(20)·mean ≈ 4.49 s
    let p95 = s.response.unwrap().p95_ms;
    assert!((p95 - 4493.0).abs() < 450.0, "p95 estimate {p95}");
    assert_eq!((s.backlog, s.running), (0, 0));
}

#[test]
fn a_step_in_arrivals_shows_fully_once_the_window_has_passed() {
    let mut m = Measurements::new(spans(), t0(), 2);
    // one job a second for a minute, then four a second
    for ms in (0..60_000).step_by(1000).chain((60_000..120_000).step_by(250)) {
        m.job_submitted(&job(at(ms)), at(ms));
    }
    let rate_at = |m: &mut Measurements, ms| m.snapshot(at(ms)).metrics.arrival_rate;
    assert!((rate_at(&mut m, 59_999) - 1.0).abs() < 0.05);
    let halfway = rate_at(&mut m, 75_000);
    assert!(halfway > 2.0 && halfway < 3.0, "half a window after the step: {halfway}");
    assert!((rate_at(&mut m, 90_000) - 4.0).abs() < 0.05);
    // nothing after two minutes: the rate decays to zero one window later
    assert_eq!(rate_at(&mut m, 150_000), 0.0);
}

#[test]
fn backlog_is_submitted_minus_started_whatever_order_the_topics_deliver() {
    let mut m = Measurements::new(spans(), t0(), 2);
    let jobs: Vec<Job> = (0..5).map(|i| job(at(i * 100))).collect();
    for j in &jobs {
        m.job_submitted(j, j.submitted_at);
    }
    assert_eq!(m.snapshot(at(1_000)).metrics.backlog, 5);
    m.job_event(&started(&jobs[0], at(1_000)), at(1_000));
    // a start read before its job (results and jobs are different topics)
    let early = job(at(1_100));
    m.job_event(&started(&early, at(1_200)), at(1_200));
    m.job_submitted(&early, at(1_100));
    let s = m.snapshot(at(1_300)).metrics;
    assert_eq!((s.backlog, s.running), (4, 2));
    m.job_event(&finished(&jobs[0], at(1_000), at(2_000)), at(2_000));
    m.job_event(&finished(&jobs[1], at(2_000), at(2_500)), at(2_500)); // its start event was lost
    let s = m.snapshot(at(3_000)).metrics;
    assert_eq!((s.backlog, s.running), (3, 1));
}

#[test]
fn duplicates_are_counted_once_and_never_double_the_rates() {
    let mut m = Measurements::new(spans(), t0(), 2);
    let j = job(at(0));
    for _ in 0..3 {
        m.job_submitted(&j, at(0));
    }
    m.job_event(&started(&j, at(100)), at(100));
    m.job_event(&started(&j, at(900)), at(900)); // a redelivered attempt
    m.job_event(&finished(&j, at(100), at(1_000)), at(1_000));
    m.job_event(&finished(&j, at(900), at(1_800)), at(1_800));
    let s = m.snapshot(at(2_000)).metrics;
    assert_eq!(s.anomalies.duplicates, 4);
    assert_eq!((s.arrival_rate * 30.0).round(), 1.0);
    assert_eq!(s.response.unwrap().samples, 1);
    assert_eq!((s.backlog, s.running), (0, 0));
}

#[test]
fn a_retry_is_a_new_arrival_and_not_a_duplicate() {
    let mut m = Measurements::new(spans(), t0(), 2);
    let original = job(at(0));
    m.job_submitted(&original, at(0));
    m.job_event(&started(&original, at(100)), at(100));
    m.job_event(&finished(&original, at(100), at(1_000)), at(1_000));
    let retry = Job { attempt: 2, submitted_at: at(2_000), ..original.clone() };
    m.job_submitted(&retry, at(2_000));
    let s = m.snapshot(at(2_500)).metrics;
    assert_eq!((s.backlog, s.anomalies.duplicates), (1, 0), "the retry waits to run");
    let mut second_start = started(&retry, at(3_000));
    if let JobEvent::Started(s) = &mut second_start {
        s.attempt = 2;
    }
    m.job_event(&second_start, at(3_000));
    let s = m.snapshot(at(3_500)).metrics;
    assert_eq!((s.backlog, s.running, s.anomalies.duplicates), (0, 1, 0));
}

#[test]
fn results_that_arrive_after_their_window_are_counted_late() {
    let mut m = Measurements::new(spans(), t0(), 2);
    let j = job(at(0));
    m.job_submitted(&j, at(0));
    // finished at 1 s but only published 40 s later (beyond the 30 s rate window)
    m.job_event(&finished(&j, at(0), at(1_000)), at(41_000));
    let s = m.snapshot(at(41_000)).metrics;
    assert_eq!(s.anomalies.late, 1);
    assert_eq!(s.completion_rate, 0.0, "it is outside the rate window");
    assert_eq!(s.response.unwrap().samples, 1, "but inside the latency window");
    // events older than what is remembered are ignored rather than deduplicated wrongly
    m.job_submitted(&job(at(0)), at(700_000));
    assert_eq!(m.snapshot(at(700_000)).metrics.backlog, 0);
}

fn heartbeat(id: &str, busy: u32, state: ExecutorState, at_ms: i64) -> ExecutorHeartbeat {
    ExecutorHeartbeat {
        version: SCHEMA_VERSION,
        executor_id: id.into(),
        slots: 2,
        busy,
        state,
        at: at(at_ms),
        unsettled: vec![],
        since: None,
    }
}

#[test]
fn workers_are_live_while_their_heartbeats_are_fresh_and_they_run() {
    let mut m = Measurements::new(spans(), t0(), 3);
    assert_eq!(m.snapshot(at(0)).metrics.slots_per_worker, 3, "the default without heartbeats");
    m.heartbeat(&heartbeat("e-1", 0, ExecutorState::Running, 0));
    m.heartbeat(&heartbeat("e-2", 2, ExecutorState::Running, 0));
    m.heartbeat(&heartbeat("e-3", 1, ExecutorState::Draining, 0));
    let s = m.snapshot(at(1_000));
    assert_eq!((s.metrics.workers, s.metrics.slots_per_worker), (2, 2));
    assert_eq!(s.idle, vec!["e-1"]);
    // e-2 keeps beating, e-1 goes silent
    m.heartbeat(&heartbeat("e-2", 1, ExecutorState::Running, 5_000));
    let s = m.snapshot(at(8_000));
    assert_eq!(s.metrics.workers, 1);
    assert!(s.idle.is_empty());
    // a stopped worker is not revived by an older heartbeat read late
    m.heartbeat(&heartbeat("e-2", 0, ExecutorState::Stopped, 9_000));
    m.heartbeat(&heartbeat("e-2", 0, ExecutorState::Running, 7_000));
    assert_eq!(m.snapshot(at(9_500)).metrics.workers, 0);
}

#[test]
fn utilisation_is_arrivals_over_the_capacity_of_the_live_workers() {
    let mut m = Measurements::new(spans(), t0(), 2);
    // one job every 500 ms for a minute, each running 2 s: λ = 2, E[S] = 2 s
    for ms in (0..60_000).step_by(500) {
        complete(&mut m, at(ms), Duration::zero(), Duration::seconds(2));
    }
    m.heartbeat(&heartbeat("e-1", 2, ExecutorState::Running, 61_000));
    m.heartbeat(&heartbeat("e-2", 2, ExecutorState::Running, 61_000));
    let s = m.snapshot(at(62_000)).metrics;
    // μ per worker = 2 slots / 2 s = 1 job/s; ρ = 2 / (2 · 1)
    assert_eq!(s.service_rate_per_worker, Some(1.0));
    assert!((s.utilisation.unwrap() - (s.arrival_rate / 2.0)).abs() < 1e-9);
    assert!(s.window_filled);
    // a quiet window keeps the last known service time rather than forgetting it
    let quiet = m.snapshot(at(600_000)).metrics;
    assert_eq!(quiet.service_time_ms, Some(2_000.0));
    assert_eq!(quiet.arrival_rate, 0.0);
}

#[test]
fn topic_triggers_load_is_summed_over_the_frontends_heard_from_lately() {
    let mut m = Measurements::new(spans(), t0(), 2);
    let load = |lag, in_flight| TriggerLoad { trigger: "alice/orders".into(), lag, in_flight, concurrency: 4 };
    let beacon =
        |from: &str, ms, loads| FeedBeacon { version: SCHEMA_VERSION, from: from.into(), at: at(ms), triggers: loads };
    m.beacon(&beacon("a", 0, vec![load(10, 4)]));
    m.beacon(&beacon("b", 0, vec![load(5, 1)]));
    // an older beacon of a frontend does not undo a newer one
    m.beacon(&beacon("a", 1_000, vec![load(7, 3)]));
    m.beacon(&beacon("a", 500, vec![load(100, 4)]));
    let summed = m.snapshot(at(2_000)).metrics.triggers;
    assert_eq!(summed, vec![TriggerLoad { trigger: "alice/orders".into(), lag: 12, in_flight: 4, concurrency: 8 }]);
    // a frontend not heard from for the worker timeout counts no more
    let later = m.snapshot(at(6_500)).metrics.triggers;
    assert_eq!(later, vec![TriggerLoad { trigger: "alice/orders".into(), lag: 7, in_flight: 3, concurrency: 4 }]);
}

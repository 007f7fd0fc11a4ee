//! The closed loop on real components: jobs on the broker, executors as processes
//! started and drained by the scaler, the observer deciding in between.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::observer::{
    ObserverMessage, ObserverParams, ObserverReport, ScaleAction, ScalerAction, ScalerEvent, TargetStatistic,
};
use gitfaas_common::{JobEvent, JobId, JobStatus};
use gitfaas_tests::scaling::{sleep_job, submit, Log, PoissonGaps, Recorder, World};
use gitfaas_tests::sleep_repo;
use tokio_util::sync::CancellationToken;

const JOB_SECS: f64 = 1.5;

fn params() -> ObserverParams {
    ObserverParams {
        target_statistic: TargetStatistic::Mean,
        target_response_ms: 5_000,
        rate_window_secs: 10,
        latency_window_secs: 20,
        min_workers: 1,
        max_workers: 4,
        scale_out_cooldown_secs: 8,
        scale_in_cooldown_secs: 15,
        interval_secs: 2,
        drain_horizon_secs: 20,
        hysteresis: 0.2,
    }
}

fn reports(log: &Log) -> impl Iterator<Item = &ObserverReport> {
    log.observer.iter().filter_map(|(_, m)| match m {
        ObserverMessage::Report(r) => Some(r.as_ref()),
        _ => None,
    })
}

fn scaler_events(log: &Log) -> impl Iterator<Item = &ScalerEvent> {
    log.observer.iter().filter_map(|(_, m)| match m {
        ObserverMessage::Scaler(e) => Some(e),
        _ => None,
    })
}

/// Publishes Poisson arrivals at `rate` until `stop`; returns the job ids.
fn load(
    world: &World,
    repo: &str,
    rate: f64,
    seed: u64,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Vec<JobId>> {
    let (producer, topics, repo) = (world.producer(), world.topics().clone(), repo.to_owned());
    tokio::spawn(async move {
        let mut gaps = PoissonGaps::new(rate, seed);
        let mut ids = Vec::new();
        loop {
            let job = sleep_job(&repo, ids.len() as u32, JOB_SECS);
            submit(&producer, &topics, &job).await;
            ids.push(job.id);
            tokio::select! {
                () = stop.cancelled() => return ids,
                () = tokio::time::sleep(gaps.next_gap()) => {}
            }
        }
    })
}

/// Prints the observer's reports when dropped, also when the test fails.
struct Timeline {
    recorder: Recorder,
    origin: DateTime<Utc>,
}

impl Drop for Timeline {
    fn drop(&mut self) {
        let log = self.recorder.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        print_timeline(&log, self.origin);
    }
}

fn print_timeline(log: &Log, origin: DateTime<Utc>) {
    eprintln!("origin {}", origin.format("%T%.3f"));
    eprintln!("   t(s)  λ(/s) E[S](ms) backlog  run  c  desired action  mean/p95 resp(ms)  reason");
    let (mut last, mut last_at) = (None, origin - chrono::Duration::days(1));
    for r in reports(log) {
        let key = (r.current_workers, r.desired_workers, r.action);
        if last == Some(key) && r.action == ScaleAction::None && r.at - last_at < chrono::Duration::seconds(5) {
            continue;
        }
        (last, last_at) = (Some(key), r.at);
        let m = &r.metrics;
        let response = m.response.map_or("-".into(), |s| format!("{:.0}/{:.0}", s.mean_ms, s.p95_ms));
        eprintln!(
            "{:>7.1} {:>6.2} {:>8.0} {:>7} {:>4} {:>2} {:>8} {:>6} {:>18}  {}",
            (r.at - origin).num_milliseconds() as f64 / 1000.0,
            m.arrival_rate,
            m.service_time_ms.unwrap_or(f64::NAN),
            m.backlog,
            m.running,
            r.current_workers,
            r.desired_workers,
            r.action.as_str(),
            response,
            r.reason
        );
    }
    for e in scaler_events(log) {
        let t = (e.at - origin).num_milliseconds() as f64 / 1000.0;
        eprintln!("{t:>7.1} scaler {} {:?}", e.executor_id, e.action);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_of_load_adds_workers_and_when_it_ends_idle_ones_are_drained_without_losing_a_job() {
    let world = World::new(4).await;
    let recorder = world.record(&[&world.topics().results, &world.topics().observer]).await;
    let repo = sleep_repo();
    let settings = world.observer_settings(params(), 1);
    let stop = CancellationToken::new();
    let observer = tokio::spawn(gitfaas_observer::run(settings, stop.clone().cancelled_owned()));
    let scaler = tokio::spawn(gitfaas_scaler::run(world.scaler_settings(1), stop.clone().cancelled_owned()));

    // the observer asks for its minimum by itself; warm the git cache and measure E[S]
    recorder
        .wait_for(Duration::from_secs(60), "the first worker", |log| {
            reports(log).any(|r| r.current_workers == 1).then_some(())
        })
        .await;
    let producer = world.producer();
    let warm_up = [sleep_job(&repo, 1000, JOB_SECS)];
    for job in &warm_up {
        submit(&producer, world.topics(), job).await;
    }
    let count_finished = |log: &Log| {
        let ids: HashSet<JobId> =
            log.events.iter().filter(|(_, e)| matches!(e, JobEvent::Finished(_))).map(|(_, e)| e.job_id()).collect();
        ids.len()
    };
    recorder.wait_for(Duration::from_secs(60), "the warm-up job", |log| (count_finished(log) >= 1).then_some(())).await;
    let before = recorder.log.lock().unwrap().observer.iter().rev().find_map(|(_, m)| match m {
        ObserverMessage::Report(r) => Some(r.current_workers),
        _ => None,
    });
    assert_eq!(before, Some(1), "one worker before the step");

    // step: 0.7 jobs a second, more than two one-slot workers serve within the target
    // (their partitions split 2 + 2; three split 2 + 1 + 1, four 1 each)
    let step_at = Utc::now();
    let _timeline = Timeline { recorder: recorder.clone(), origin: step_at };
    let step_stop = CancellationToken::new();
    let step = load(&world, &repo, 0.7, 7, step_stop.clone());
    let window = Duration::from_secs(params().rate_window_secs);
    let add = recorder
        .wait_for(window + Duration::from_secs(5), "an add decision once the window filled", |log| {
            reports(log).find(|r| r.at > step_at && r.action == ScaleAction::Add && r.desired_workers >= 2).cloned()
        })
        .await;
    eprintln!("add decided {:.1} s after the step: {}", (add.at - step_at).num_milliseconds() as f64 / 1e3, add.reason);
    recorder
        .wait_for(Duration::from_secs(40), "a second live worker", |log| {
            reports(log).any(|r| r.at > step_at && r.current_workers >= 2).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    step_stop.cancel();
    let mut jobs = step.await.unwrap();
    {
        // what the observer measured once the window was full of the step
        let log = recorder.log.lock().unwrap();
        let filled = step_at + chrono::Duration::seconds(params().rate_window_secs as i64);
        let during: Vec<_> = reports(&log).filter(|r| r.at > filled).map(|r| &r.metrics).collect();
        let mean_rate = during.iter().map(|m| m.arrival_rate).sum::<f64>() / during.len() as f64;
        assert!((0.45..0.95).contains(&mean_rate), "λ measured {mean_rate} on average for 0.7 jobs/s");
        let service = during.last().and_then(|m| m.service_time_ms).expect("a service time");
        assert!((1_500.0..6_000.0).contains(&service), "E[S] measured {service} ms for {JOB_SECS} s jobs");
    }

    // the load ends but for a trickle, so that scale-in happens while jobs still flow
    let load_end = Utc::now();
    let trickle_stop = CancellationToken::new();
    let trickle = load(&world, &repo, 0.05, 11, trickle_stop.clone());
    let removed = recorder
        .wait_for(Duration::from_secs(240), "scale-in back to the minimum", |log| {
            let removed: Vec<String> = reports(log)
                .filter(|r| r.at > load_end && r.action == ScaleAction::Remove)
                .flat_map(|r| r.remove.clone())
                .collect();
            let at_min = reports(log).any(|r| r.at > load_end && r.current_workers == 1 && r.desired_workers == 1);
            (!removed.is_empty() && at_min).then_some(removed)
        })
        .await;
    let stopped = recorder
        .wait_for(Duration::from_secs(90), "the removed executors to exit", |log| {
            let stopped: HashMap<String, ScalerAction> = scaler_events(log)
                .filter(|e| matches!(e.action, ScalerAction::Stopped { .. }))
                .map(|e| (e.executor_id.clone(), e.action.clone()))
                .collect();
            removed.iter().all(|id| stopped.contains_key(id)).then_some(stopped)
        })
        .await;
    for id in &removed {
        assert_eq!(stopped[id], ScalerAction::Stopped { exit_code: Some(0), drained: true }, "{id}");
    }
    trickle_stop.cancel();
    jobs.extend(trickle.await.unwrap());
    jobs.extend(warm_up.iter().map(|j| j.id));
    recorder
        .wait_for(Duration::from_secs(120), "every job's result", |log| {
            (count_finished(log) >= jobs.len()).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a duplicate would show by now
    stop.cancel();
    scaler.await.unwrap().expect("scaler drains and stops");
    observer.await.unwrap().expect("observer stops");

    let log = recorder.log.lock().unwrap();
    assert_no_job_lost_or_run_twice_by_scale_in(&log, &jobs);
    let started = scaler_events(&log).filter(|e| matches!(e.action, ScalerAction::Started { .. })).count();
    assert!(started >= 2, "the scaler started {started} executors");
    let most = reports(&log).map(|r| r.current_workers).max().unwrap();
    assert!(most <= params().max_workers, "never above max_workers: {most}");
}

/// No job lost, every result a success, no job run twice because of a scale-in.
/// A job still running on a revoked partition past `revoke_grace_secs`, or a broker
/// that hands a partition over before its old owner let go (tansu 0.6 did; Kafka
/// does not), makes a job run on both. Such re-runs must follow a scaler `started`
/// event by at most 30 s, are counted and printed, and stay a small share of the jobs.
fn assert_no_job_lost_or_run_twice_by_scale_in(log: &Log, jobs: &[JobId]) {
    let mut starts: HashMap<JobId, Vec<(DateTime<Utc>, String)>> = HashMap::new();
    let mut results: HashMap<JobId, Vec<JobStatus>> = HashMap::new();
    for (_, event) in &log.events {
        match event {
            JobEvent::Started(s) => starts.entry(s.job_id).or_default().push((s.started_at, s.executor_id.clone())),
            JobEvent::Finished(r) => results.entry(r.job_id).or_default().push(r.status),
        }
    }
    let joins: Vec<DateTime<Utc>> =
        scaler_events(log).filter(|e| matches!(e.action, ScalerAction::Started { .. })).map(|e| e.at).collect();
    let drained: HashMap<&str, DateTime<Utc>> = scaler_events(log)
        .filter(|e| e.action == ScalerAction::Draining)
        .map(|e| (e.executor_id.as_str(), e.at))
        .collect();
    let (mut problems, mut scale_out_reruns) = (Vec::new(), 0);
    for id in jobs {
        let statuses = results.get(id).cloned().unwrap_or_default();
        if statuses.is_empty() || statuses.iter().any(|s| *s != JobStatus::Succeeded) {
            problems.push(format!("{id}: results {statuses:?}"));
        }
        let mut runs = starts.get(id).cloned().unwrap_or_default();
        runs.sort();
        for (at, executor) in runs.iter().skip(1) {
            let first = &runs[0].1;
            if drained.get(first.as_str()).is_some_and(|drain| drain <= at) {
                problems.push(format!("{id}: ran on {first}, which was drained, and again on {executor}"));
            } else if !joins.iter().any(|j| *j <= *at && *at - *j <= chrono::Duration::seconds(30)) {
                problems.push(format!("{id}: ran on {first} and again on {executor} at {at}, after no scale-out"));
            } else {
                scale_out_reruns += 1;
            }
        }
    }
    if scale_out_reruns * 4 > jobs.len() {
        problems.push(format!("{scale_out_reruns} re-runs next to a scale-out: more than a quarter of the jobs"));
    }
    // response times as users saw them: the first result of each job
    let mut first_results: HashMap<JobId, u64> = HashMap::new();
    for (_, event) in &log.events {
        if let JobEvent::Finished(r) = event {
            first_results.entry(r.job_id).or_insert(r.timings.total_ms);
        }
    }
    let mut totals: Vec<u64> = jobs.iter().filter_map(|id| first_results.get(id).copied()).collect();
    totals.sort_unstable();
    if let Some(&p95) = totals.get((totals.len() * 95).div_ceil(100).saturating_sub(1)) {
        let mean = totals.iter().sum::<u64>() / totals.len() as u64;
        let target = params().target_response_ms;
        eprintln!("{} jobs; observed response mean {mean} ms, p95 {p95} ms; target (mean) {target} ms", jobs.len());
    }
    eprintln!("jobs re-run next to a scale-out: {scale_out_reruns}");
    assert!(problems.is_empty(), "{} of {} jobs:\n{}", problems.len(), jobs.len(), problems.join("\n"));
}

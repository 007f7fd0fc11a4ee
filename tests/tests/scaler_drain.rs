//! Scale-in never kills a job: a drained executor finishes what it runs and
//! exits 0, and what it had not started runs once, elsewhere.

use std::collections::HashMap;
use std::time::Duration;

use gitfaas_common::{JobEvent, JobStatus};
use gitfaas_scaler::ExecutorPool;
use gitfaas_tests::scaling::{sleep_job, submit, World};
use gitfaas_tests::sleep_repo;

#[tokio::test(flavor = "multi_thread")]
async fn draining_a_busy_executor_lets_its_job_finish_once_and_the_queued_ones_run_elsewhere() {
    let world = World::new(1).await;
    let recorder = world.record(&[&world.topics().results]).await;
    let producer = world.producer();
    let repo = sleep_repo();
    let mut pool = ExecutorPool::new(world.pool_settings(1));
    let (first, _) = pool.start().expect("executor starts");

    let jobs: Vec<_> = (0..3).map(|n| sleep_job(&repo, n, 4.0)).collect();
    for job in &jobs {
        submit(&producer, world.topics(), job).await;
    }
    let running = jobs[0].id;
    recorder
        .wait_for(Duration::from_secs(60), "the first job to start", |log| {
            log.events.iter().any(|(_, e)| matches!(e, JobEvent::Started(s) if s.job_id == running)).then_some(())
        })
        .await;
    assert!(pool.drain(&first).await.unwrap(), "drain signal sent");

    let exits = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let exits = pool.reap();
            if !exits.is_empty() {
                return exits;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the drained executor exits");
    let exited_at = chrono::Utc::now();
    assert_eq!(exits.len(), 1);
    assert_eq!((exits[0].exit_code, exits[0].drained), (Some(0), true), "{exits:?}");

    // a second executor takes over the partition from the committed offset
    pool.start().expect("second executor starts");
    let ids: Vec<_> = jobs.iter().map(|j| j.id).collect();
    recorder
        .wait_for(Duration::from_secs(90), "every job's result", |log| {
            let finished = log.events.iter().filter(|(_, e)| matches!(e, JobEvent::Finished(_))).count();
            (finished >= ids.len()).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a duplicate would show by now
    pool.drain_all().await;

    let log = recorder.log.lock().unwrap();
    let mut finished: HashMap<_, Vec<_>> = HashMap::new();
    let mut started: HashMap<_, usize> = HashMap::new();
    for (_, event) in &log.events {
        match event {
            JobEvent::Started(s) => *started.entry(s.job_id).or_default() += 1,
            JobEvent::Finished(r) => finished.entry(r.job_id).or_default().push(r.clone()),
        }
    }
    for id in &ids {
        let results = &finished[id];
        assert_eq!(results.len(), 1, "job {id} finished {} times", results.len());
        assert_eq!(started[id], 1, "job {id} started {} times", started[id]);
        assert_eq!(results[0].status, JobStatus::Succeeded, "{:?}", results[0]);
    }
    let running_result = &finished[&running][0];
    assert_eq!(running_result.executor_id, first, "the running job finished where it ran");
    assert!(running_result.timings.run_ms >= 4000, "it ran to the end: {:?}", running_result.timings);
    for id in &ids[1..] {
        let started_at = finished[id][0].started_at.unwrap();
        assert!(started_at > exited_at, "job {id} was queued, so it ran only after the handover");
    }
}

//! Hostile use of the limits around a job: a function flooding stdout is killed at
//! once, an erased job's idempotency key answers clearly, one caller cannot open
//! unbounded event streams, and a frontend without an issuer refuses to start.

use std::time::{Duration, Instant};

use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{git_repo, Stack};
use serde_json::json;

/// Submits `files` as a job and returns its result, how long it ran by its timings,
/// and how long the whole job took as the client saw it.
async fn timed_flood(stack: &Stack, files: &[(&str, &str)]) -> (serde_json::Value, u64, Duration) {
    let submitted = Instant::now();
    let id = stack.submit_ok(&json!({"repo": git_repo(files), "timeout_secs": 120})).await;
    let result = finished(stack, &id).await;
    let run_ms = result["timings"]["run_ms"].as_u64().unwrap();
    (result, run_ms, submitted.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_flooding_stdout_is_killed_within_seconds_of_passing_the_cap() {
    let stack = Stack::shared();
    let command = "runtime = \"command\"\n";
    // python's prints go to stderr: its stdout is the returned value
    let python = "def main(d, c):\n    return 'x' * 100_000_000\n";
    let floods: [&[(&str, &str)]; 3] = [
        &[("gitfaas.toml", command), ("main", "#!/bin/sh\nhead -c 100000000 /dev/zero\n")],
        &[("gitfaas.toml", command), ("main", "#!/bin/sh\ncat /dev/zero\n")],
        &[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", python)],
    ];
    for files in floods {
        let (result, run_ms, wall) = timed_flood(stack, files).await;
        eprintln!("stdout flood {:?}: run_ms {run_ms}, submit to result {} ms", files[1].1, wall.as_millis());
        assert_eq!(result["status"], "output_too_large", "{result}");
        // the cap (1 MiB) is passed within a second of the start: the run is mostly the kill
        assert!(run_ms < 5_000, "the kill took {run_ms} ms: {result}");
        assert!(wall < Duration::from_secs(15), "{wall:?}");
    }
}

//! Hostile use of the limits around a job: a function flooding stdout is killed at
//! once, an erased job's idempotency key answers clearly, one caller cannot open
//! unbounded event streams, and a frontend without an issuer refuses to start.

use std::time::{Duration, Instant};

use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{git_repo, kafka_settings, Stack};
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
    let python = "def main(d, c):\n    return ['x' * 1000] * 5000\n";
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

#[tokio::test(flavor = "multi_thread")]
async fn retrying_a_submit_whose_job_was_erased_answers_410_with_a_clear_problem() {
    let stack = Stack::shared();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", "def main(d, c):\n    return d\n")]);
    let body = json!({"repo": repo, "input": 1});
    let key = gitfaas_tests::unique("idem");
    let submit = || {
        reqwest::Client::new()
            .post(stack.url("/v1/jobs"))
            .bearer_auth(&stack.token)
            .header("idempotency-key", &key)
            .json(&body)
            .send()
    };
    let first: serde_json::Value = submit().await.unwrap().json().await.unwrap();
    let id = first["id"].as_str().unwrap();
    stack.result(id).await;
    let erase = reqwest::Client::new().delete(stack.url(&format!("/v1/jobs/{id}"))).bearer_auth(&stack.token);
    assert_eq!(erase.send().await.unwrap().status(), 204);
    let retried = submit().await.unwrap();
    assert_eq!(retried.status(), 410);
    assert_eq!(retried.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = retried.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("/idempotency-key-job-erased"), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("erased"), "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_caller_holds_at_most_the_configured_event_streams_all_fed_by_one_subscription() {
    use futures::StreamExt;
    let stack = Stack::start_with(false, Box::new(|f, _| f.frontend.max_event_streams_per_caller = 2));
    let ws = |token: String| {
        let url = format!("{}/v1/jobs/events?access_token={token}", stack.base_url.replace("http://", "ws://"));
        async move { tokio_tungstenite::connect_async(url).await }
    };
    let (mut first, _) = ws(stack.token.clone()).await.expect("first stream");
    let (mut second, _) = ws(stack.token.clone()).await.expect("second stream");
    match ws(stack.token.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("a third stream must be refused with 429: {:?}", other.map(|(_, r)| r.status())),
    }
    let bob = gitfaas_tests::Provider::shared().token("bob").await;
    let (_bob_stream, _) = ws(bob).await.expect("another caller has streams of their own");

    let id = stack.submit_ok(&json!({"repo": "git://127.0.0.1/nothing-runs"})).await;
    for stream in [&mut first, &mut second] {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("update in time");
        let update: serde_json::Value = serde_json::from_str(&frame.unwrap().unwrap().into_text().unwrap()).unwrap();
        assert_eq!((update["id"].as_str(), update["status"].as_str()), (Some(id.as_str()), Some("queued")));
    }
    first.close(None).await.unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ws(stack.token.clone()).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(error) => panic!("a closed stream frees its place: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frontend_without_an_issuer_refuses_to_start_unless_auth_is_explicitly_none() {
    use gitfaas_frontend::AuthMode;
    let prefix = format!("{}.", gitfaas_tests::unique("t"));
    // the shipped file as it is, pointed at the test infrastructure
    let shipped = || {
        let mut s: gitfaas_frontend::Settings =
            gitfaas_common::settings::load_from(&gitfaas_tests::config_dir(), "frontend").expect("file loads");
        s.kafka = kafka_settings(&prefix);
        s.frontend.listen = "127.0.0.1:0".into();
        s.frontend.redis_url = gitfaas_tests::infra::redis_url();
        s.frontend.key_prefix = gitfaas_tests::unique("test");
        s
    };
    let settings = shipped();
    assert_eq!(settings.frontend.auth.mode, AuthMode::Oidc);
    let refused = settings.validate().expect_err("no issuer, no start");
    assert!(refused.to_string().contains("issuer"), "{refused}");
    let error = gitfaas_frontend::Application::build(settings).await.err().expect("the frontend does not start");
    assert!(format!("{error:#}").contains("issuer is required"), "{error:#}");

    let mut open = shipped();
    open.frontend.auth.mode = AuthMode::None;
    open.validate().expect("none, chosen explicitly, is allowed");
    let app = gitfaas_frontend::Application::build(open).await.expect("starts without authentication");
    let url = format!("http://127.0.0.1:{}/v1/jobs", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    assert_eq!(reqwest::get(url).await.unwrap().status(), 200, "everyone is let in, as chosen");
}

//! Operators can see inside a running stack: after one job, `/metrics` of the
//! frontend, the executor, the observer and the scaler show it in the series an
//! operator watches, their `/health/ready` answers 200, and every metric the
//! shipped Grafana dashboard (`deploy/grafana/gitfaas.json`) queries is one some
//! service exports.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gitfaas_tests::ops::start_observer_and_scaler;
use gitfaas_tests::prometheus::dashboard_exprs;
use gitfaas_tests::{git_repo, Stack};
use serde_json::json;

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// The value of the sample `series` (name and labels exactly as exported).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Whether `consumer`'s lag is exported for some partition of the stack's topics.
fn has_lag(text: &str, consumer: &str) -> bool {
    let series = format!("gitfaas_kafka_consumer_lag{{consumer=\"{consumer}\",");
    text.lines().any(|line| line.starts_with(&series))
}

/// Scrapes `url` until `check` holds of the text, or panics with the last one.
async fn scrape_until(url: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = get(url).await;
        if status == 200 && check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} not seen at {url} within 30 s:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_exports_the_job_it_took_part_in_and_says_it_is_ready() {
    let stack = Stack::start(true);
    let executor = format!("http://127.0.0.1:{}", stack.executor_ops_port.expect("the harness's executor listens"));
    let (observer_port, scaler_port) = start_observer_and_scaler(&stack);
    let (observer, scaler) = (format!("http://127.0.0.1:{observer_port}"), format!("http://127.0.0.1:{scaler_port}"));

    // readiness: the executor has its partitions, the others reach the broker
    for base in [&stack.base_url, &executor, &observer, &scaler] {
        scrape_until(&format!("{base}/health/ready"), "readiness", |_| true).await;
        assert_eq!(get(&format!("{base}/health/live")).await.0, 200, "{base} live");
    }

    let repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "def main(data, credentials):\n    return data\n"),
    ]);
    let id = stack.submit_ok(&json!({"repo": repo, "input": {"n": 1}})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "succeeded", "{result}");

    let front = scrape_until(&format!("{}/metrics", stack.base_url), "the applied result and the lag", |t| {
        sample(t, "gitfaas_results_applied_total{event=\"finished\"}").is_some_and(|n| n >= 1.0)
            && has_lag(t, "frontend")
    })
    .await;
    let submits = sample(&front, "gitfaas_http_requests_total{method=\"POST\",route=\"/v1/jobs\",status=\"202\"}");
    assert_eq!(submits, Some(1.0), "one submit counted by its route template:\n{front}");
    assert_eq!(sample(&front, "gitfaas_jobs_submitted_total"), Some(1.0));
    let polls = "gitfaas_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/jobs/{id}/result\"}";
    assert!(sample(&front, polls).is_some_and(|n| n >= 1.0), "the result route, by template:\n{front}");
    assert!(!front.contains(&id), "no series carries a job id");

    let exec = scrape_until(&format!("{executor}/metrics"), "the consumer lag", |t| has_lag(t, "executor")).await;
    assert_eq!(sample(&exec, "gitfaas_jobs_finished_total{status=\"succeeded\"}"), Some(1.0), "{exec}");
    assert_eq!(sample(&exec, "gitfaas_jobs_started_total"), Some(1.0));
    assert_eq!(sample(&exec, "gitfaas_job_run_seconds_count"), Some(1.0));
    assert_eq!(sample(&exec, "gitfaas_job_total_seconds_count"), Some(1.0));
    assert_eq!(sample(&exec, "gitfaas_git_cache_misses_total"), Some(1.0), "a new repository is fetched");
    assert_eq!(sample(&exec, "gitfaas_git_fetch_seconds_count"), Some(1.0));
    // the job's sandbox (a ready one, or one started for it) and the ready ones kept beside it
    let started = sample(&exec, "gitfaas_sandbox_start_seconds_count{kind=\"warm\"}");
    assert!(started.is_some_and(|n| n >= 1.0), "{exec}");
    assert_eq!(sample(&exec, "gitfaas_warm_pool_misses_total"), Some(1.0), "one run not served warm");
    let kept = sample(&exec, "gitfaas_warm_pool_containers");
    assert!(kept.is_some_and(|n| (1.0..=8.0).contains(&n)), "the sandbox stays warm, within the bound: {exec}");

    scrape_until(&format!("{observer}/metrics"), "an arrival rate", |t| {
        sample(t, "gitfaas_observer_arrival_rate").is_some_and(|rate| rate > 0.0)
    })
    .await;
    let obs = scrape_until(&format!("{observer}/metrics"), "the observer's lag", |t| has_lag(t, "observer")).await;
    assert!(obs.lines().any(|l| l.starts_with("gitfaas_observer_decisions_total{")), "{obs}");
    let scal = scrape_until(&format!("{scaler}/metrics"), "a report read", |t| {
        t.lines().any(|l| l.starts_with("gitfaas_scaler_reports_total{") && !l.ends_with(" 0"))
    })
    .await;

    // every metric the dashboard queries is exported by some service
    let exported: BTreeSet<String> = [&front, &exec, &obs, &scal]
        .iter()
        .flat_map(|text| text.lines())
        .filter_map(|line| line.strip_prefix("# TYPE ")?.split(' ').next().map(str::to_owned))
        .collect();
    let queried = queried_metrics(&dashboard_exprs());
    assert!(queried.len() >= 15, "the dashboard queries the metrics: {queried:?}");
    let missing: Vec<&String> = queried.iter().filter(|name| !exported.contains(*name)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics no service exports: {missing:?}; exported: {exported:?}"
    );
}

/// The metric families `exprs` name (a histogram's `_bucket`, `_count` and `_sum`
/// series are its family).
fn queried_metrics(exprs: &[String]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for expr in exprs {
        for (start, _) in expr.match_indices("gitfaas_") {
            let name: String = expr[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let family = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
            names.insert(family.to_owned());
        }
    }
    names
}

//! The shipped monitoring works against a real Prometheus: the alert rules of
//! `deploy/prometheus/` pass `promtool`'s checks and unit tests, and a Prometheus
//! scraping every service of a test stack evaluates, after a burst of jobs, every
//! PromQL expression of `deploy/grafana/gitfaas.json` without error and with data,
//! and every alert rule without error.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::future::join_all;
use gitfaas_tests::ops::start_observer_and_scaler;
use gitfaas_tests::prometheus::{dashboard_exprs, deploy_file, Prometheus, ScrapeJob};
use gitfaas_tests::{git_repo, Stack};
use serde_json::json;

/// Grafana's `$__rate_interval` at a 1 s scrape: wide enough for several samples.
const RATE_INTERVAL: &str = "20s";

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy_file("prometheus"))
        .output()
        .expect("promtool runs (scripts/setup.sh installs Debian's prometheus)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
}

#[test]
fn shipped_alert_rules_and_config_pass_promtool_checks_and_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scraping_a_stack_evaluates_every_dashboard_query_with_data() {
    let stack = Stack::start(true);
    let (observer_port, scaler_port) = start_observer_and_scaler(&stack);
    let executor_port = stack.executor_ops_port.expect("the harness's executor listens");
    let loopback = |port: u16| vec![format!("127.0.0.1:{port}")];
    let jobs = [
        ScrapeJob { name: "gitfaas-frontend", targets: vec![stack.base_url.trim_start_matches("http://").to_owned()] },
        ScrapeJob { name: "gitfaas-executor", targets: loopback(executor_port) },
        ScrapeJob { name: "gitfaas-observer", targets: loopback(observer_port) },
        ScrapeJob { name: "gitfaas-scaler", targets: loopback(scaler_port) },
    ];
    let prometheus = Prometheus::start(&jobs, &[deploy_file("prometheus/alerts.yml")], 1).await;

    wait_until_every_target_is_up(&prometheus).await;
    let repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "def main(data, credentials):\n    return data\n"),
    ]);
    let bodies: Vec<_> = (0..6).map(|n| json!({"repo": repo, "input": {"n": n}})).collect();
    let ids = join_all(bodies.iter().map(|body| stack.submit_ok(body))).await;
    for id in &ids {
        assert_eq!(stack.result(id).await["status"], "succeeded");
    }

    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 20, "the dashboard's queries: {exprs:?}");
    let mut pending: Vec<(String, String)> = exprs.iter().map(|e| (e.clone(), "not queried".to_owned())).collect();
    // series appear as services record them and rates need two samples: retry until each
    // expression has data; one with an error or still empty at the deadline fails the test
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (expr, _) in pending {
            match prometheus.query(&expr.replace("$__rate_interval", RATE_INTERVAL)).await {
                Ok(series) if !series.is_empty() => {}
                Ok(_) => still.push((expr, "no data".to_owned())),
                Err(error) => still.push((expr, error)),
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let report: Vec<String> = pending.iter().map(|(expr, why)| format!("{why}: {expr}")).collect();
    assert!(report.is_empty(), "dashboard queries that fail or return nothing:\n{}", report.join("\n"));

    let rules = wait_for_rule_evaluations(&prometheus).await;
    assert_eq!(rules.len(), 5, "the shipped alert rules are loaded: {rules:?}");
}

/// Waits until Prometheus scraped every target successfully.
async fn wait_until_every_target_is_up(prometheus: &Prometheus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let targets = prometheus.targets().await;
        if targets.len() == 4 && targets.iter().all(|(_, _, health, _)| health == "up") {
            return;
        }
        assert!(Instant::now() < deadline, "targets not all up in 30 s: {targets:?}\n{}", prometheus.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until every alert rule was evaluated, asserting none failed; returns their names.
async fn wait_for_rule_evaluations(prometheus: &Prometheus) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = prometheus.api("/api/v1/rules", &[]).await.expect("rules");
        let rules: Vec<_> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let failed: Vec<_> = rules.iter().filter(|r| r["health"] == "err").collect();
        assert!(failed.is_empty(), "alert rules failing to evaluate: {failed:?}");
        if !rules.is_empty() && rules.iter().all(|r| r["health"] == "ok") {
            return rules.iter().map(|r| r["name"].as_str().unwrap_or_default().to_owned()).collect();
        }
        assert!(Instant::now() < deadline, "alert rules not evaluated in 30 s: {rules:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

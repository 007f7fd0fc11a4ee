//! The served OpenAPI document describes exactly the API, checked by schemathesis
//! (property-based: generated requests, every response validated against the
//! document), and the admin endpoints behave as documented.

use std::time::Duration;

use gitfaas_tests::{read_topic, Provider, Stack};
use serde_json::{json, Value};

fn schemathesis() -> String {
    std::env::var("GITFAAS_SCHEMATHESIS").unwrap_or_else(|_| "/var/lib/gitfaas/venv/bin/schemathesis".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_response_off_the_schema() {
    // with the hosts listed, the document's URL patterns are exactly the policy
    let stack = Stack::start_with(
        false,
        Box::new(|frontend, _| {
            frontend.frontend.policy.repo_hosts = vec!["git.example.org".into()];
            frontend.frontend.policy.data_hosts = vec!["data.example.org".into()];
        }),
    );
    let token = Provider::shared().token("admin").await;
    let document: Value = reqwest::get(stack.url("/openapi.json")).await.unwrap().json().await.unwrap();
    let paths: std::collections::BTreeSet<&str> =
        document["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    let served = [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/result",
        "/v1/jobs/{id}/logs",
        "/v1/jobs/{id}/cancel",
        "/v1/admin/observer/config",
        "/v1/admin/observer/status",
        "/v1/admin/observer/reports",
        "/v1/admin/jobs/{id}/end",
        "/v1/keys/executor",
        "/v1/functions",
        "/v1/functions/{name}",
        "/v1/functions/{name}/versions",
        "/v1/functions/{name}/rollback",
        "/v1/functions/{name}/invoke",
        "/v1/functions/{name}/state",
        "/v1/functions/{name}/state/{key}",
        "/v1/triggers",
        "/v1/triggers/{name}",
        "/v1/triggers/{name}/pause",
        "/v1/triggers/{name}/resume",
        "/v1/pipelines",
        "/v1/pipelines/{id}",
        "/v1/pipelines/{id}/cancel",
    ];
    assert_eq!(paths, served.into_iter().collect(), "the document names exactly the served routes");

    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    let output = tokio::process::Command::new(schemathesis())
        .args(["--config-file", config, "run", &stack.url("/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        .args(["--max-examples", "40", "--workers", "1", "--seed", "1"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--suppress-health-check", "all"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("schemathesis is installed by scripts/setup.sh");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "schemathesis failed:\n{report}\n{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn observer_parameters_and_status_are_for_admins_only() {
    let stack = Stack::start(false);
    let admin = Provider::shared().token("admin").await;
    let client = reqwest::Client::new();
    let put = |token: String, body: Value| {
        let client = client.clone();
        let url = stack.url("/v1/admin/observer/config");
        async move { client.put(url).bearer_auth(token).json(&body).send().await.unwrap() }
    };
    assert_eq!(put(stack.token.clone(), json!({"max_workers": 7})).await.status(), 403);
    assert_eq!(stack.get("/v1/admin/observer/status").await.status(), 403);
    assert_eq!(stack.get("/v1/admin/observer/reports").await.status(), 403);

    assert_eq!(put(admin.clone(), json!({"max_wrokers": 7})).await.status(), 400, "typo refused");
    assert_eq!(put(admin.clone(), json!({"min_workers": 9})).await.status(), 400, "min above max refused");
    let accepted = put(admin.clone(), json!({"max_workers": 7, "target_response_ms": 1500})).await;
    assert_eq!(accepted.status(), 202);
    let published = read_topic(&stack.topics().observer);
    let config = published
        .iter()
        .map(|(_, payload, _)| {
            gitfaas_common::kafka::decode::<gitfaas_common::observer::ObserverMessage>(payload).unwrap()
        })
        .find_map(|m| match m {
            gitfaas_common::observer::ObserverMessage::Config(c) => Some(c),
            _ => None,
        })
        .expect("a typed config message on the observer topic");
    assert_eq!(config.issued_by, "admin");
    assert_eq!(config.params.max_workers, Some(7));
    assert_eq!(config.params.target_response_ms, Some(1500));

    assert_eq!(stack.get_as(&admin, "/v1/admin/observer/status").await.status(), 404, "no report yet");
    let report = json!({"kind": "report", "version": 1, "observer_id": "obs-1", "at": "2030-01-01T00:00:00Z",
        "metrics": {"arrival_rate": 0.5, "completion_rate": 0.5, "backlog": 0, "running": 1, "workers": 1,
                    "slots_per_worker": 2, "window_filled": true, "executors": [], "anomalies":
                    {"malformed": 0, "duplicates": 0, "late": 0, "rejected_config": 0}},
        "current_workers": 1, "desired_workers": 2, "action": "add", "reason": "test",
        "params": serde_json::to_value(gitfaas_common::observer::ObserverParams::default()).unwrap()});
    let payload = report.to_string();
    gitfaas_tests::publish_raw(&gitfaas_tests::producer(), &stack.topics().observer, "obs-1", payload.as_bytes()).await;
    for _ in 0..100 {
        let response = stack.get_as(&admin, "/v1/admin/observer/status").await;
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["action"], "add");
            assert_eq!(body["desired_workers"], 2);
            // the kept reports: all of them, none after the newest, and a bad time refused
            let all: Value = stack.get_as(&admin, "/v1/admin/observer/reports").await.json().await.unwrap();
            assert_eq!(all["reports"].as_array().map(Vec::len), Some(1), "{all}");
            assert_eq!(all["reports"][0]["at"], "2030-01-01T00:00:00Z");
            let after = "/v1/admin/observer/reports?since=2030-01-01T00:00:00Z";
            let none: Value = stack.get_as(&admin, after).await.json().await.unwrap();
            assert_eq!(none["reports"], json!([]), "nothing after the newest");
            let before = "/v1/admin/observer/reports?since=2029-12-31T23:59:59%2B00:00";
            let one: Value = stack.get_as(&admin, before).await.json().await.unwrap();
            assert_eq!(one["reports"].as_array().map(Vec::len), Some(1));
            let bad = stack.get_as(&admin, "/v1/admin/observer/reports?since=yesterday").await;
            assert_eq!(bad.status(), 400);
            let problem: Value = bad.json().await.unwrap();
            assert_eq!(problem["field"], "since", "{problem}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the published report never showed up");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_and_the_frontend_both_take_any_json_value_as_input() {
    let stack = Stack::shared();
    let document: Value = reqwest::get(stack.url("/openapi.json")).await.unwrap().json().await.unwrap();
    let schemas = &document["components"]["schemas"];
    for schema in ["SubmitRequest", "InvokeRequest", "PipelineRequest"] {
        let input = &schemas[schema]["properties"]["input"];
        assert!(input.is_object() && input.get("type").is_none(), "{schema}.input is any JSON value: {input}");
    }
    let echo = "def main(data, credentials):\n    return data\n";
    let repo = gitfaas_tests::git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", echo)]);
    for input in [json!(7), json!("text"), json!([1, "two"]), json!(true), json!({"k": [null]})] {
        let id = stack.submit_ok(&json!({"repo": repo, "input": input})).await;
        let result = gitfaas_tests::sandbox::finished(stack, &id).await;
        assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &input), "{result}");
    }
}

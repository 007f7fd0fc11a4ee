//! Numbers a client writes into a request, past what the frontend counts to: the
//! `Last-Event-ID` of a followed log (which panicked a debug frontend's worker at
//! `u64::MAX`), query numbers, body numbers, and the observer's spans an operator
//! sets (which overflow the observer's time arithmetic past a year's worth of
//! seconds). Each is a 400 problem naming what is wrong, and the frontend goes on
//! serving; the tests run the debug build, the
//! one whose arithmetic panics on overflow.

use gitfaas_tests::{Provider, Stack};
use serde_json::{json, Value};

async fn follow_with_last_event_id(stack: &Stack, id: &str, last: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(stack.url(&format!("/v1/jobs/{id}/logs?follow=true")))
        .bearer_auth(&stack.token)
        .header("last-event-id", last)
        .send()
        .await
        .unwrap_or_else(|e| panic!("an answer to Last-Event-ID {last:?}, not a dropped connection: {e}"))
}

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/problem+json", "status {status}");
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_last_event_id_past_the_last_event_is_a_400_and_the_frontend_keeps_serving() {
    let stack = Stack::start(false);
    // no executor: the job stays queued, its log open
    let id = stack.submit_ok(&json!({"repo": "git://127.0.0.1:1/x", "input": {}})).await;
    let refused = [
        ("18446744073709551615", "the last event there can be"),
        ("18446744073709551616", "past u64"),
        ("99999999999999999999999999999999", "far past u64"),
        ("-1", "negative"),
        ("+3", "signed"),
        ("0x10", "hex"),
        ("next", "not a number"),
    ];
    for _ in 0..2 {
        for (last, what) in refused {
            let (status, body) = problem(follow_with_last_event_id(&stack, &id, last).await).await;
            assert_eq!(status, 400, "{what}: {body}");
            assert_eq!(body["type"], "https://gitfaas.dev/problems/invalid-request", "{what}");
            assert_eq!(body["field"], "last-event-id", "{what}: {body}");
        }
    }
    for last in ["18446744073709551614", "41", " 7 ", ""] {
        let response = follow_with_last_event_id(&stack, &id, last).await;
        assert_eq!(response.status(), 200, "Last-Event-ID {last:?}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
    }
    assert_eq!(stack.get(&format!("/v1/jobs/{id}")).await.status(), 200, "still serving");
    assert_eq!(reqwest::get(stack.url("/health/live")).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn query_and_body_numbers_past_their_type_are_400_problems() {
    let stack = Stack::start(false);
    let id = stack.submit_ok(&json!({"repo": "git://127.0.0.1:1/x", "input": {}})).await;
    for path in [
        format!("/v1/jobs/{id}/result?wait=18446744073709551616"),
        format!("/v1/jobs/{id}/result?wait=99999999999999999999999999"),
        format!("/v1/jobs/{id}/result?wait=-1"),
        "/v1/jobs?limit=18446744073709551616".into(),
        "/v1/pipelines?limit=99999999999999999999999999".into(),
    ] {
        let (status, body) = problem(stack.get(&path).await).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["type"], "https://gitfaas.dev/problems/invalid-request", "{path}");
    }
    for (body, field) in [
        (r#"{"repo": "git://127.0.0.1:1/x", "timeout_secs": 18446744073709551616}"#, "timeout_secs"),
        (r#"{"repo": "git://127.0.0.1:1/x", "resources": {"memory_mb": 4294967296}}"#, "resources.memory_mb"),
        (r#"{"repo": "git://127.0.0.1:1/x", "resources": {"pids": 1e400}}"#, "resources.pids"),
    ] {
        let response = reqwest::Client::new()
            .post(stack.url("/v1/jobs"))
            .bearer_auth(&stack.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, problem) = problem(response).await;
        assert_eq!(status, 400, "{body}: {problem}");
        if field != "resources.pids" {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }
    assert_eq!(reqwest::get(stack.url("/health/live")).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn observer_spans_past_a_year_are_refused_before_they_reach_the_observer() {
    let stack = Stack::start(false);
    let admin = Provider::shared().token("admin").await;
    let put = |body: Value| {
        let (url, admin) = (stack.url("/v1/admin/observer/config"), admin.clone());
        async move { reqwest::Client::new().put(url).bearer_auth(admin).json(&body).send().await.unwrap() }
    };
    for (body, field) in [
        (json!({"rate_window_secs": 1_000_000_000_000_000_000u64}), Some("rate_window_secs")),
        (json!({"interval_secs": 31_536_001}), Some("interval_secs")),
        (json!({"target_response_ms": u64::MAX}), Some("target_response_ms")),
        (json!({"latency_window_secs": 18_446_744_073_709_551_616f64}), None),
    ] {
        let (status, problem) = problem(put(body.clone()).await).await;
        assert_eq!(status, 400, "{body}: {problem}");
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }
    let response = put(json!({"rate_window_secs": 31_536_000, "interval_secs": 10})).await;
    assert_eq!(response.status(), 202, "a year is still a span: {}", response.text().await.unwrap());
}

//! Bad input gets a 400 problem+json naming the field, and nothing is published.

use gitfaas_tests::{read_topic, Stack};
use serde_json::Value;

async fn post_raw(stack: &Stack, content_type: &str, body: &'static str) -> (u16, String, Value) {
    let response = reqwest::Client::new()
        .post(stack.url("/v1/jobs"))
        .bearer_auth(&stack.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    (status, content_type, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_or_invalid_requests_get_400_problems_and_nothing_is_published() {
    let stack = Stack::start(false);
    let cases: [(&'static str, Option<&str>); 6] = [
        ("{not json", None),
        ("{\"ref\": \"main\"}", Some("repo")),
        ("{\"repo\": \"git://127.0.0.1/x\", \"runtime\": \"cobol\"}", Some("runtime")),
        ("{\"repo\": \"file:///etc\"}", Some("repo")),
        ("{\"repo\": \"git://127.0.0.1/x\", \"timeout_secs\": 0}", Some("timeout_secs")),
        ("{\"repo\": \"git://127.0.0.1/x\", \"owner\": \"someone-else\"}", Some("owner")),
    ];
    for (body, field) in cases {
        let (status, content_type, problem) = post_raw(&stack, "application/json", body).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["type"], "https://gitfaas.dev/problems/invalid-request");
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["field"].as_str(), field, "{body}: {problem}");
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    let (status, _, problem) = post_raw(&stack, "text/plain", "{}").await;
    assert_eq!(status, 415, "{problem}");

    let response = stack.get("/v1/jobs/not-a-job-id").await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    assert!(read_topic(&stack.topics().jobs).is_empty(), "a rejected request was published");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness_answer() {
    let stack = Stack::start(false);
    assert_eq!(reqwest::get(stack.url("/health/live")).await.unwrap().status(), 200);
    let ready = reqwest::get(stack.url("/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
}

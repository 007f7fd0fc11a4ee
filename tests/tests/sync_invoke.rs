//! Synchronous invoke: `POST /v1/jobs` with `Prefer: wait=N` (RFC 7240) or `?wait=N`
//! answers 200 with the result when the job ends within N seconds, else 202 as an
//! asynchronous submit does.

use std::time::{Duration, Instant};

use gitfaas_tests::{git_repo, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PY: &str = "runtime = \"python\"\n";

fn quick_repo() -> String {
    git_repo(&[("gitfaas.toml", PY), ("main.py", "def main(data, credentials):\n    return {'twice': data * 2}\n")])
}

fn sleepy_repo() -> String {
    git_repo(&[
        ("gitfaas.toml", PY),
        ("main.py", "import time\n\ndef main(data, credentials):\n    time.sleep(data)\n    return 'awake'\n"),
    ])
}

async fn post(stack: &Stack, path: &str, prefer: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(stack.url(path)).bearer_auth(&stack.token).json(body);
    if let Some(prefer) = prefer {
        request = request.header("Prefer", prefer);
    }
    request.send().await.expect("submit")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_ends_within_the_wait_answers_200_with_its_result() {
    let stack = Stack::shared();
    let response =
        post(stack, "/v1/jobs", Some("respond-async, wait=30"), &json!({"repo": quick_repo(), "input": 21})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["preference-applied"], "wait=30");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"twice": 42}));
    assert_eq!(location, format!("/v1/jobs/{}", result["job_id"].as_str().unwrap()));
    // the same result as the result route's
    let stored: Value = stack.get(&format!("{location}/result")).await.json().await.unwrap();
    assert_eq!(stored, result);

    // the query form, and a wait past the maximum in Prefer is taken as the maximum
    let response = post(stack, "/v1/jobs?wait=30", None, &json!({"repo": quick_repo(), "input": 1})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("preference-applied").is_none(), "no preference was applied");
    assert_eq!(response.json::<Value>().await.unwrap()["output"], json!({"twice": 2}));
    let response = post(stack, "/v1/jobs", Some("wait=3600"), &json!({"repo": quick_repo(), "input": 2})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["preference-applied"], "wait=60");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_is_a_200_whose_result_says_so() {
    let stack = Stack::shared();
    let repo =
        git_repo(&[("gitfaas.toml", PY), ("main.py", "def main(data, credentials):\n    raise ValueError('no')\n")]);
    let response = post(stack, "/v1/jobs", Some("wait=30"), &json!({"repo": repo})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["status"], "failed", "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_still_running_at_the_end_of_the_wait_answers_202_and_finishes_later() {
    let stack = Stack::shared();
    let started = Instant::now();
    let response = post(stack, "/v1/jobs", Some("wait=2"), &json!({"repo": sleepy_repo(), "input": 8})).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(waited >= Duration::from_secs(2), "answered after {waited:?}, before the wait was over");
    let accepted: Value = response.json().await.unwrap();
    assert!(["queued", "running"].contains(&accepted["status"].as_str().unwrap()), "{accepted}");
    let result = stack.result(accepted["id"].as_str().unwrap()).await;
    assert_eq!(result["output"], "awake");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_wait_past_the_maximum_is_refused_before_any_job_is_made() {
    // a stack of its own: no other test's jobs in its list
    let stack = &Stack::start(false);
    let before: Value = stack.get("/v1/jobs?limit=100").await.json().await.unwrap();
    let response = post(stack, "/v1/jobs?wait=61", None, &json!({"repo": quick_repo()})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "wait", "{problem}");
    let after: Value = stack.get("/v1/jobs?limit=100").await.json().await.unwrap();
    assert_eq!(before["jobs"].as_array().unwrap().len(), after["jobs"].as_array().unwrap().len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_submit_with_its_idempotency_key_waits_for_the_same_job() {
    let stack = Stack::shared();
    let body = json!({"repo": quick_repo(), "input": 5});
    let send = || {
        reqwest::Client::new()
            .post(stack.url("/v1/jobs"))
            .bearer_auth(&stack.token)
            .header("Idempotency-Key", "sync-retry")
            .header("Prefer", "wait=30")
            .json(&body)
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["job_id"], again["job_id"]);
    assert_eq!(again["output"], json!({"twice": 10}));
}

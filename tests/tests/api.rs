//! The REST API as its users see it: ownership, idempotency, listing, erasing,
//! live updates and limits.

use std::time::Duration;

use futures::StreamExt;
use gitfaas_tests::{git_repo, read_topic, Provider, Stack};
use serde_json::{json, Value};

fn quick_repo() -> String {
    git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "def main(data, credentials):\n    return data\n"),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_job_answers_404_exactly_like_a_missing_one() {
    let stack = Stack::shared();
    let bob = Provider::shared().token("bob").await;
    let id = stack.submit_ok(&json!({"repo": quick_repo(), "input": 1})).await;
    stack.result(&id).await;
    let missing = gitfaas_common::JobId::new().to_string();
    for path in ["", "/result"] {
        let theirs = stack.get_as(&bob, &format!("/v1/jobs/{id}{path}")).await;
        let nothing = stack.get_as(&bob, &format!("/v1/jobs/{missing}{path}")).await;
        assert_eq!((theirs.status().as_u16(), nothing.status().as_u16()), (404, 404));
        assert_eq!(theirs.text().await.unwrap(), nothing.text().await.unwrap());
    }
    let erase =
        reqwest::Client::new().delete(stack.url(&format!("/v1/jobs/{id}"))).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(erase.status(), 404);
    let mine = stack.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(mine.status(), 200, "still there for its owner");
    let listed: Value = stack.get_as(&bob, "/v1/jobs?limit=100").await.json().await.unwrap();
    assert!(listed["jobs"].as_array().unwrap().iter().all(|j| j["id"] != id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_submit_with_the_same_idempotency_key_returns_the_same_job_and_publishes_once() {
    let stack = Stack::shared();
    let body = json!({"repo": quick_repo(), "input": {"n": 1}});
    let key = gitfaas_tests::unique("idem");
    let submit = |body: Value| {
        let key = key.clone();
        async move {
            reqwest::Client::new()
                .post(stack.url("/v1/jobs"))
                .bearer_auth(&stack.token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first: Value = submit(body.clone()).await.json().await.unwrap();
    let second = submit(body.clone()).await;
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    let id = first["id"].as_str().unwrap();
    stack.result(id).await;
    let published = read_topic(&stack.topics().jobs).into_iter().filter(|(k, ..)| k.as_deref() == Some(id)).count();
    assert_eq!(published, 1);
    let different = submit(json!({"repo": quick_repo(), "input": {"n": 2}})).await;
    assert_eq!(different.status(), 422, "same key, different request");
}

/// A retry that finds its key's job still being published is told to ask again,
/// never given a 202 for a job that may not go out; a claim its frontend left
/// behind (died before the broker answered) is taken over and its job published
/// under the claimed id.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_while_the_keys_job_is_publishing_gets_409_and_an_abandoned_claim_is_taken_over() {
    use sha2::Digest;
    let stack = Stack::shared();
    let body = serde_json::to_vec(&json!({"repo": quick_repo(), "input": {"n": 7}})).unwrap();
    let submit = |key: String| {
        let body = body.clone();
        async move {
            reqwest::Client::new()
                .post(stack.url("/v1/jobs"))
                .bearer_auth(&stack.token)
                .header("idempotency-key", key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let mut redis = redis::Client::open(gitfaas_tests::infra::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let first = gitfaas_tests::unique("idem");
    let answered = submit(first.clone()).await;
    assert_eq!(answered.status(), 202);
    let pattern = format!("{}:idem:*:{first}", stack.redis_prefix);
    let found: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut redis).await.unwrap();
    assert_eq!(found.len(), 1, "{pattern}");
    let held: String = redis::cmd("GET").arg(&found[0]).query_async(&mut redis).await.unwrap();
    assert!(held.ends_with(" ok"), "a published job's claim says so: {held}");

    // another request holds the claim of a second key and is publishing its job
    let second = gitfaas_tests::unique("idem");
    let claim = found[0].replace(&first, &second);
    let claimed = gitfaas_common::JobId::new().to_string();
    let fingerprint = hex::encode(sha2::Sha256::digest(&body));
    let now = chrono::Utc::now().timestamp_millis();
    let pending = |since: i64| format!("{claimed} {fingerprint} p{since}");
    let _: () =
        redis::cmd("SET").arg(&claim).arg(pending(now)).arg("EX").arg(600).query_async(&mut redis).await.unwrap();
    let retry = submit(second.clone()).await;
    assert_eq!(retry.status(), 409);
    assert_eq!(retry.headers()["retry-after"], "1");
    let problem: Value = retry.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("idempotency-key-in-flight"), "{problem}");
    assert_eq!(stack.get(&format!("/v1/jobs/{claimed}")).await.status(), 404, "no job made meanwhile");

    // its frontend died before the broker answered: the claim goes stale, the next
    // retry publishes the job under the claimed id, once
    let _: () =
        redis::cmd("SET").arg(&claim).arg(pending(now - 40_000)).arg("KEEPTTL").query_async(&mut redis).await.unwrap();
    let taken = submit(second.clone()).await;
    assert_eq!(taken.status(), 202);
    let taken: Value = taken.json().await.unwrap();
    assert_eq!(taken["id"], claimed.as_str());
    let result = stack.result(&claimed).await;
    assert_eq!((result["status"].as_str(), &result["output"]), (Some("succeeded"), &json!({"n": 7})));
    let again: Value = submit(second).await.json().await.unwrap();
    assert_eq!(again["id"], claimed.as_str());
    let published =
        read_topic(&stack.topics().jobs).into_iter().filter(|(k, ..)| k.as_deref() == Some(claimed.as_str())).count();
    assert_eq!(published, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_is_newest_first_paginated_and_filtered_by_status() {
    let stack = Stack::start(true);
    let ok = quick_repo();
    let failing = git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "def main(d, c):\n    raise RuntimeError('x')\n"),
    ]);
    let mut ids = Vec::new();
    for i in 0..5 {
        let repo = if i % 2 == 0 { &ok } else { &failing };
        ids.push(stack.submit_ok(&json!({"repo": repo, "input": i})).await);
    }
    for id in &ids {
        stack.result(id).await;
    }
    let page1: Value = stack.get("/v1/jobs?limit=2").await.json().await.unwrap();
    let listed: Vec<&str> = page1["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[4].as_str(), ids[3].as_str()]);
    let next = page1["next"].as_str().expect("more pages");
    let page2: Value = stack.get(&format!("/v1/jobs?limit=2&before={next}")).await.json().await.unwrap();
    let listed: Vec<&str> = page2["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let failed: Value = stack.get("/v1/jobs?status=failed").await.json().await.unwrap();
    let listed: Vec<&str> = failed["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[3].as_str(), ids[1].as_str()]);
    assert!(failed["next"].is_null());
    assert_eq!(stack.get("/v1/jobs?limit=0").await.status(), 400);
    assert_eq!(stack.get("/v1/jobs?status=sleeping").await.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn erasing_removes_a_finished_job_and_refuses_an_unfinished_one() {
    let stack = Stack::shared();
    let id = stack.submit_ok(&json!({"repo": quick_repo()})).await;
    stack.result(&id).await;
    let client = reqwest::Client::new();
    let erased = client.delete(stack.url(&format!("/v1/jobs/{id}"))).bearer_auth(&stack.token).send().await.unwrap();
    assert_eq!(erased.status(), 204);
    assert_eq!(stack.get(&format!("/v1/jobs/{id}")).await.status(), 404);
    assert_eq!(stack.get(&format!("/v1/jobs/{id}/result")).await.status(), 404);
    // the topics are untouched: the observer reads Kafka, not Redis
    assert!(read_topic(&stack.topics().results).iter().any(|(k, ..)| k.as_deref() == Some(id.as_str())));

    let sleeper = git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "import time\ndef main(d, c):\n    time.sleep(3)\n"),
    ]);
    let running = stack.submit_ok(&json!({"repo": sleeper})).await;
    let refused =
        client.delete(stack.url(&format!("/v1/jobs/{running}"))).bearer_auth(&stack.token).send().await.unwrap();
    assert_eq!(refused.status(), 409);
    stack.result(&running).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_updates_stream_the_callers_own_transitions_only() {
    let stack = Stack::shared();
    let bob = Provider::shared().token("bob").await;
    let ws_url = stack.base_url.replace("http://", "ws://");
    let (mut alice_ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_url}/v1/jobs/events?access_token={}", stack.token))
            .await
            .unwrap();
    let (mut bob_ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_url}/v1/jobs/events?access_token={bob}")).await.unwrap();
    let unauthenticated = tokio_tungstenite::connect_async(format!("{ws_url}/v1/jobs/events")).await;
    assert!(unauthenticated.is_err(), "no token, no stream");

    let id = stack.submit_ok(&json!({"repo": quick_repo(), "input": "live"})).await;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("succeeded") {
        let frame = tokio::time::timeout(Duration::from_secs(30), alice_ws.next()).await.expect("update in time");
        let text = frame.unwrap().unwrap().into_text().unwrap();
        let update: Value = serde_json::from_str(&text).unwrap();
        if update["id"] == id.as_str() {
            seen.push(update["status"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, ["queued", "running", "succeeded"]);
    let leaked = tokio::time::timeout(Duration::from_millis(500), bob_ws.next()).await;
    assert!(leaked.is_err(), "bob must not see alice's job: {leaked:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_and_inputs_are_refused_with_problems() {
    let stack = Stack::start_with(
        false,
        Box::new(|s, _| {
            s.frontend.max_body_bytes = 4096;
            s.frontend.max_input_bytes = 1024;
        }),
    );
    let big_input = "x".repeat(2000);
    let response = stack.submit(&json!({"repo": "https://example.org/r.git", "input": big_input})).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "input");
    let huge = "x".repeat(10_000);
    let response = stack.submit(&json!({"repo": "https://example.org/r.git", "input": huge})).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_over_their_rate_get_429_with_retry_after() {
    let stack = Stack::start_with(
        false,
        Box::new(|s, _| {
            s.frontend.rate_limit.requests = 3;
            s.frontend.rate_limit.window_secs = 60;
        }),
    );
    let body = json!({"repo": "https://example.org/r.git"});
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let response = stack.submit(&body).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(&statuses[..3], [202, 202, 202]);
    assert_eq!(&statuses[3..], [429, 429]);
    assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)));
    let bob = Provider::shared().token("bob").await;
    assert_eq!(stack.submit_as(&bob, &body).await.status(), 202, "limits are per caller");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_backlog_answers_503_with_retry_after() {
    let stack = Stack::start_with(false, Box::new(|s, _| s.frontend.max_backlog = 2));
    let body = json!({"repo": "https://example.org/r.git"});
    assert_eq!(stack.submit(&body).await.status(), 202);
    assert_eq!(stack.submit(&body).await.status(), 202);
    let response = stack.submit(&body).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "https://gitfaas.dev/problems/overloaded");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_past_its_unfinished_jobs_gets_429_until_one_of_them_ends() {
    let stack = Stack::start_with(false, Box::new(|s, _| s.frontend.rate_limit.max_unfinished = 2));
    let body = json!({"repo": "https://example.org/r.git"});
    let first = stack.submit_ok(&body).await; // no executor: both stay queued
    stack.submit_ok(&body).await;
    let response = stack.submit(&body).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "https://gitfaas.dev/problems/too-many-unfinished-jobs", "{problem}");
    let bob = Provider::shared().token("bob").await;
    assert_eq!(stack.submit_as(&bob, &body).await.status(), 202, "the limit is the owner's own");

    let cancel = reqwest::Client::new()
        .post(stack.url(&format!("/v1/jobs/{first}/cancel")))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let mut status = 0;
    for _ in 0..50 {
        // the cancelled result reaches the view through the results topic
        status = stack.submit(&body).await.status().as_u16();
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 202, "an ended job makes room");
    assert_eq!(stack.submit(&body).await.status(), 429, "and only as much as it took");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_long_poll_answers_when_the_job_ends_and_a_wait_past_60_is_refused() {
    let stack = Stack::start(false); // no executor: the job stays queued until cancelled
    let id = stack.submit_ok(&json!({"repo": quick_repo(), "input": 1})).await;
    let refused = stack.get(&format!("/v1/jobs/{id}/result?wait=61")).await;
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["field"], "wait", "{problem}");
    let unfinished = stack.get(&format!("/v1/jobs/{id}/result?wait=1")).await;
    assert_eq!(unfinished.status(), 409, "still queued after the wait");

    let waiting = {
        let (url, token) = (stack.url(&format!("/v1/jobs/{id}/result?wait=30")), stack.token.clone());
        tokio::spawn(async move { reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(500)).await; // the long-poll is waiting now
    let cancel =
        reqwest::Client::new().post(stack.url(&format!("/v1/jobs/{id}/cancel"))).bearer_auth(&stack.token).send().await;
    assert_eq!(cancel.unwrap().status(), 200, "a queued job is cancelled at once");
    let answer =
        tokio::time::timeout(Duration::from_secs(20), waiting).await.expect("answered before its wait").unwrap();
    assert_eq!(answer.status(), 200);
    let result: Value = answer.json().await.unwrap();
    assert_eq!(result["status"], "cancelled", "{result}");
}

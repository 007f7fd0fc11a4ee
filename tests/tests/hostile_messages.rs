//! Hostile messages: values nested at and past the shared depth limit, and messages
//! on the jobs and results topics that cannot be decoded. Every job ends in exactly
//! one terminal result that says why; nothing stays queued or running. An operator
//! can end a job that is stuck anyway.

use std::time::Duration;

use gitfaas_common::limits::{nested, MAX_VALUE_DEPTH};
use gitfaas_common::JobId;
use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{git_repo, producer, publish_raw, read_topic, Provider, Stack};
use serde_json::{json, Value};

const PY: &str = "runtime = \"python\"\n";

/// The terminal results of `id` on the stack's results topic.
fn terminal_results(stack: &Stack, id: &str) -> Vec<Value> {
    read_topic(&stack.topics().results)
        .into_iter()
        .filter(|(key, ..)| key.as_deref() == Some(id))
        .filter_map(|(_, payload, _)| serde_json::from_slice::<Value>(&payload).ok())
        .filter(|event| event["kind"] == "finished")
        .collect()
}

/// The job's status as its owner sees it.
async fn status(stack: &Stack, id: &str) -> Value {
    let response = stack.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(response.status(), 200, "job {id} is known");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_input_nested_at_the_limit_runs_and_one_nested_past_it_is_refused() {
    let stack = Stack::shared();
    let repo = git_repo(&[("gitfaas.toml", PY), ("main.py", "def main(d, c):\n    return d\n")]);
    let input = nested(MAX_VALUE_DEPTH);
    let id = stack.submit_ok(&json!({"repo": repo, "input": input})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], input);
    for levels in [MAX_VALUE_DEPTH + 1, 126] {
        let response = stack.submit(&json!({"repo": repo, "input": nested(levels)})).await;
        assert_eq!(response.status(), 400, "{levels} levels");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], "input", "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains("nested"), "{problem}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_nested_past_the_limit_ends_failed_with_one_result_that_says_why() {
    let stack = Stack::shared();
    let main = "def main(d, c):\n    v = 0\n    for _ in range(d):\n        v = [v]\n    return v\n";
    let repo = git_repo(&[("gitfaas.toml", PY), ("main.py", main)]);
    let at_limit = stack.submit_ok(&json!({"repo": repo, "input": MAX_VALUE_DEPTH})).await;
    let result = stack.result(&at_limit).await;
    assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &nested(MAX_VALUE_DEPTH)));
    for levels in [MAX_VALUE_DEPTH + 1, 127, 200] {
        let id = stack.submit_ok(&json!({"repo": repo, "input": levels})).await;
        let result = stack.result(&id).await;
        assert_eq!(result["status"], "failed", "{levels} levels: {result}");
        assert!(result["reason"].as_str().unwrap().contains("nested more than 64"), "{result}");
        assert_eq!(status(stack, &id).await["status"], "failed");
        assert_eq!(terminal_results(stack, &id).len(), 1, "exactly one terminal result");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_job_message_still_ends_its_job_rejected() {
    let stack = Stack::shared();
    let jobs = stack.topics().jobs;
    // nested past serde_json's recursion limit, as an older frontend let through
    let deep = JobId::new().to_string();
    let job = json!({"version": 1, "id": deep, "owner": {"subject": "alice"}, "submitted_at": chrono::Utc::now(),
        "spec": {"repo": "git://127.0.0.1/x", "ref": "main", "input": nested(127), "timeout_secs": 5,
                 "resources": {"memory_mb": 64, "cpu_millis": 100, "pids": 16}}});
    publish_raw(&producer(), &jobs, &deep, &serde_json::to_vec(&job).unwrap()).await;
    let result = finished(stack, &deep).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("malformed job"), "{result}");
    let view = status(stack, &deep).await;
    assert_eq!(view["status"], "rejected", "its owner sees it ended: {view}");
    // not json at all: the key alone names the job
    let garbage = JobId::new().to_string();
    publish_raw(&producer(), &jobs, &garbage, b"\x00\xffnot a job").await;
    let result = finished(stack, &garbage).await;
    assert_eq!(result["status"], "rejected", "{result}");
    for id in [&deep, &garbage] {
        assert_eq!(terminal_results(stack, id).len(), 1, "exactly one terminal result");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_result_message_still_ends_its_job_failed() {
    let stack = Stack::start(false); // no executor: the jobs stay queued until a result comes
    let results = stack.topics().results;
    let repo = "git://127.0.0.1/nothing-runs";
    let deep = stack.submit_ok(&json!({"repo": repo})).await;
    let event = json!({"kind": "finished", "version": 1, "job_id": deep, "owner": {"subject": "alice"},
        "status": "succeeded", "output": nested(127), "executor_id": "e", "attempt": 1,
        "submitted_at": chrono::Utc::now(), "finished_at": chrono::Utc::now(),
        "timings": {"queue_ms": 0, "run_ms": 0, "total_ms": 0}});
    publish_raw(&producer(), &results, &deep, &serde_json::to_vec(&event).unwrap()).await;
    let garbage = stack.submit_ok(&json!({"repo": repo})).await;
    publish_raw(&producer(), &results, &garbage, b"{\"kind\": \"finished\", oops").await;
    for id in [&deep, &garbage] {
        let result = stack.result(id).await;
        assert_eq!(result["status"], "failed", "{result}");
        assert!(result["reason"].as_str().unwrap().contains("could not be read"), "{result}");
        let view = status(&stack, id).await;
        assert_eq!(view["status"], "failed", "{view}");
        let frontend: Vec<Value> =
            terminal_results(&stack, id).into_iter().filter(|r| r["executor_id"] == "frontend").collect();
        assert_eq!(frontend.len(), 1, "the failed result is on the results topic: {frontend:?}");
    }
    let backlog = stack.submit_ok(&json!({"repo": repo})).await; // the stack still takes jobs
    assert_eq!(status(&stack, &backlog).await["status"], "queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_ends_a_stuck_job_through_the_results_topic_and_nobody_else_can() {
    let stack = Stack::start(false);
    let admin = Provider::shared().token("admin").await;
    let id = stack.submit_ok(&json!({"repo": "git://127.0.0.1/nothing-runs"})).await;
    let client = reqwest::Client::new();
    let end = |token: String, id: String| {
        let (client, url) = (client.clone(), stack.url(&format!("/v1/admin/jobs/{id}/end")));
        async move { client.post(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(end(stack.token.clone(), id.clone()).await.status(), 403, "its owner is no admin");
    assert_eq!(status(&stack, &id).await["status"], "queued");
    assert_eq!(end(admin.clone(), JobId::new().to_string()).await.status(), 404);
    assert_eq!(end(admin.clone(), "not-an-id".into()).await.status(), 404);
    let ended = end(admin.clone(), id.clone()).await;
    assert_eq!(ended.status(), 200);
    let view: Value = ended.json().await.unwrap();
    assert_eq!(view["status"], "failed", "{view}");
    let result = stack.result(&id).await;
    assert!(result["reason"].as_str().unwrap().contains("ended by an operator"), "{result}");
    assert_eq!(end(admin, id.clone()).await.status(), 409, "already ended");
    assert_eq!(terminal_results(&stack, &id).len(), 1, "one terminal result, on the topic");
    let erase = client.delete(stack.url(&format!("/v1/jobs/{id}"))).bearer_auth(&stack.token).send().await.unwrap();
    assert_eq!(erase.status(), 204, "an ended job can be erased");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frontend_rebuilding_its_view_ends_a_job_whose_result_is_unreadable() {
    use gitfaas_common::schema::{JobSpec, Resources};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let spec = JobSpec {
        repo: "git://127.0.0.1/nothing-runs".parse().unwrap(),
        git_ref: "main".parse().unwrap(),
        runtime: None,
        input: json!(1),
        timeout_secs: 5,
        resources: Resources { memory_mb: 64, cpu_millis: 100, pids: 16 },
        sealed_credentials: None,
        sources: Vec::new(),
        sinks: Vec::new(),
        retries: 0,
        entry: None,
        args: Vec::new(),
        workdir: None,
        delivery: Default::default(),
        function: None,
        resolve_only: false,
        dependencies: Default::default(),
        submodules: Default::default(),
        mode: None,
        origin: None,
        publish: Vec::new(),
    };
    let job = gitfaas_common::Job::new(gitfaas_common::Owner { subject: "alice".into(), name: None }, spec);
    let id = job.id.to_string();
    let key = id.clone();
    // both messages are on the topics before the frontend starts with an empty view
    let stack = Stack::start_with(
        false,
        Box::new(move |frontend, _| {
            let create = gitfaas_common::kafka::ensure_topics(&frontend.kafka);
            tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(create)).expect("topics");
            let producer: BaseProducer = gitfaas_common::kafka::client_config(&frontend.kafka).create().unwrap();
            let topics = &frontend.kafka.topics;
            let payload = serde_json::to_vec(&job).unwrap();
            producer.send(BaseRecord::to(&topics.jobs).key(&key).payload(&payload)).unwrap();
            producer.send(BaseRecord::to(&topics.results).key(&key).payload("{\"kind\": \"finished\", oops")).unwrap();
            producer.flush(Duration::from_secs(10)).unwrap();
        }),
    );
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("could not be read"), "{result}");
    assert_eq!(status(&stack, &id).await["status"], "failed");
}

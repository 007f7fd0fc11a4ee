//! Functions' state and publish on a real broker, Redis, executor and git
//! server: concurrent increments lose nothing; a failed job's writes never
//! appear; bounds fail the job with the bound; owners are apart; publish goes
//! only to the function's claimed topics, in the result's transaction; plain
//! jobs get no state; the owner reads and deletes keys; node functions get the
//! same context, and `command` and `wasm` ones theirs as files.

use std::time::{Duration, Instant};

use gitfaas_tests::{git_repo, git_repo_of, read_topic, unique, Provider, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};

const COUNTER: &str = r#"
def main(data, credentials, ctx):
    for word in data.get("words", []):
        ctx.state.incr(word)
    if data.get("put"):
        ctx.state.put(data["put"], data.get("value"))
    for topic in data.get("publish", []):
        ctx.publish(topic, {"words": data.get("words", [])}, key="k")
    if data.get("fail"):
        raise ValueError("failing after its writes")
    return {"seen": ctx.state.get(data.get("read", "the")), "keys": ctx.state.keys(), "job": ctx.job}
"#;

fn counter_repo() -> String {
    git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", COUNTER)])
}

/// The shared topic-allowing stack: publish needs topics the operator allows.
fn stack() -> &'static Stack {
    static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
    STACK.get_or_init(|| {
        Stack::start_with(
            true,
            Box::new(|frontend, _| frontend.frontend.triggers.allowed_topics = vec!["state-out-*".into()]),
        )
    })
}

async fn create_topic(name: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let config = rdkafka::ClientConfig::new().set("bootstrap.servers", gitfaas_tests::infra::brokers()).clone();
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = config.create().unwrap();
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    admin.create_topics(&[topic], &AdminOptions::new()).await.unwrap()[0].as_ref().unwrap();
}

async fn deploy(stack: &Stack, token: &str, name: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({"repo": counter_repo(), "ref": "main"});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let url = stack.url(&format!("/v1/functions/{name}"));
    reqwest::Client::new().put(url).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn invoke(stack: &Stack, token: &str, name: &str, input: Value) -> Value {
    let url = stack.url(&format!("/v1/functions/{name}/invoke"));
    let request = reqwest::Client::new().post(url).bearer_auth(token).header("Prefer", "wait=60");
    let response = request.json(&json!({"input": input})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "invoked within the wait");
    response.json().await.unwrap()
}

async fn state_of(stack: &Stack, token: &str, name: &str) -> (StatusCode, Value) {
    let response = stack.get_as(token, &format!("/v1/functions/{name}/state")).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The function's keys once they equal `expected` (the view follows the topic).
async fn wait_for_keys(stack: &Stack, token: &str, name: &str, expected: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = state_of(stack, token, name).await;
        if status == StatusCode::OK && &body["keys"] == expected {
            return body;
        }
        assert!(Instant::now() < deadline, "state never became {expected}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_increments_are_exact_and_a_failed_jobs_writes_never_appear() {
    let stack = stack();
    let name = unique("count").to_lowercase();
    assert_eq!(deploy(stack, &stack.token, &name, json!({})).await.status(), StatusCode::CREATED);
    let (status, empty) = state_of(stack, &stack.token, &name).await;
    assert_eq!((status, &empty["count"]), (StatusCode::OK, &json!(0)), "{empty}");

    let runs = (0..12).map(|i| {
        let words = if i % 2 == 0 { json!(["the", "cat", "the"]) } else { json!(["the", "dog"]) };
        invoke(stack, &stack.token, &name, json!({"words": words}))
    });
    let results = futures::future::join_all(runs).await;
    for result in &results {
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["output"]["job"]["function"], name.as_str());
        assert!(result["output"]["seen"].as_i64().unwrap() >= 1, "a job reads its own writes: {result}");
    }
    wait_for_keys(stack, &stack.token, &name, &json!({"the": 18, "cat": 6, "dog": 6})).await;

    let failed = invoke(stack, &stack.token, &name, json!({"words": ["the", "ghost"], "fail": true})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let done = invoke(stack, &stack.token, &name, json!({"words": ["cat"]})).await;
    assert_eq!(done["output"]["seen"], 18, "committed state, without the failed job's: {done}");
    let state = wait_for_keys(stack, &stack.token, &name, &json!({"the": 18, "cat": 7, "dog": 6})).await;
    assert_eq!(state["count"], 3, "no key of the failed job: {state}");

    let key = stack.get_as(&stack.token, &format!("/v1/functions/{name}/state/cat")).await;
    assert_eq!(key.json::<Value>().await.unwrap(), json!({"key": "cat", "value": 7}));
    let missing = stack.get_as(&stack.token, &format!("/v1/functions/{name}/state/ghost")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["type"], "https://gitfaas.dev/problems/state-key-not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn bounds_owners_plain_jobs_and_topics_are_enforced() {
    let stack = stack();
    let name = unique("bounded").to_lowercase();
    let (out, absent) = (unique("state-out-a"), unique("state-out-absent"));
    create_topic(&out).await;
    let publishes = json!({"publish": [out, absent]});
    assert_eq!(deploy(stack, &stack.token, &name, publishes).await.status(), StatusCode::CREATED);

    // a value past the bound: the function gets the error, the job fails naming it
    let big = invoke(stack, &stack.token, &name, json!({"put": "big", "value": "x".repeat(20_000)})).await;
    assert_eq!(big["status"], "failed", "{big}");
    let reason = big["reason"].as_str().unwrap();
    assert!(reason.contains("StateError") && reason.contains("the limit is 16384"), "{reason}");

    // bob reaches none of alice's state; his function of the same name is his own
    let bob = Provider::shared().token("bob").await;
    assert_eq!(state_of(stack, &bob, &name).await.0, StatusCode::NOT_FOUND);
    let deleted = reqwest::Client::new().delete(stack.url(&format!("/v1/functions/{name}/state"))).bearer_auth(&bob);
    assert_eq!(deleted.send().await.unwrap().status(), StatusCode::NOT_FOUND);
    invoke(stack, &stack.token, &name, json!({"words": ["alice"]})).await;
    wait_for_keys(stack, &stack.token, &name, &json!({"alice": 1})).await;
    assert_eq!(deploy(stack, &bob, &name, json!({})).await.status(), StatusCode::CREATED);
    let bobs = invoke(stack, &bob, &name, json!({"words": ["bob"], "read": "alice"})).await;
    assert_eq!((bobs["status"].as_str(), &bobs["output"]["seen"]), (Some("succeeded"), &Value::Null), "{bobs}");
    wait_for_keys(stack, &bob, &name, &json!({"bob": 1})).await;
    wait_for_keys(stack, &stack.token, &name, &json!({"alice": 1})).await;
    // nor may he publish to her topic, or anyone to gitfaas's own
    let taken = deploy(stack, &bob, &unique("thief").to_lowercase(), json!({"publish": [out]})).await;
    assert_eq!(taken.status(), StatusCode::FORBIDDEN, "{}", taken.text().await.unwrap());
    let internal =
        deploy(stack, &bob, &unique("inner").to_lowercase(), json!({"publish": [stack.topics().jobs]})).await;
    assert_eq!(internal.status(), StatusCode::FORBIDDEN);

    // a publish to a topic the function did not declare fails the job, with nothing published
    let other = unique("state-out-b");
    let stray = invoke(stack, &stack.token, &name, json!({"words": ["stray"], "publish": [other]})).await;
    assert_eq!(stray["status"], "failed");
    assert!(stray["reason"].as_str().unwrap().contains("may publish to"), "{stray}");
    // a declared topic the broker lacks fails the job, naming it
    let lost = invoke(stack, &stack.token, &name, json!({"words": ["lost"], "publish": [absent]})).await;
    assert_eq!(lost["status"], "failed");
    assert!(lost["reason"].as_str().unwrap().contains("does not exist"), "{lost}");
    // a declared one gets the record, in the job's transaction
    let sent = invoke(stack, &stack.token, &name, json!({"words": ["sent"], "publish": [out]})).await;
    assert_eq!(sent["status"], "succeeded", "{sent}");
    let records = read_topic(&out);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(serde_json::from_slice::<Value>(&records[0].1).unwrap(), json!({"words": ["sent"]}));
    wait_for_keys(stack, &stack.token, &name, &json!({"alice": 1, "sent": 1})).await;

    // a plain job has a context, but no state
    let repo = counter_repo();
    let id = stack.submit_ok(&json!({"repo": repo, "ref": "main", "input": {"words": ["x"]}})).await;
    let plain = stack.result(&id).await;
    assert_eq!(plain["status"], "failed");
    assert!(plain["reason"].as_str().unwrap().contains("belong to named functions"), "{plain}");

    // the owner deletes one key, then all
    let client = reqwest::Client::new();
    let one = client.delete(stack.url(&format!("/v1/functions/{name}/state/alice"))).bearer_auth(&stack.token);
    let one: Value = one.send().await.unwrap().json().await.unwrap();
    assert_eq!(one["deleted"], 1, "{one}");
    assert_eq!(state_of(stack, &stack.token, &name).await.1["keys"], json!({"sent": 1}), "seen at once");
    let all = client.delete(stack.url(&format!("/v1/functions/{name}/state"))).bearer_auth(&stack.token);
    assert_eq!(all.send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(state_of(stack, &stack.token, &name).await.1["count"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_function_has_the_same_context() {
    let stack = stack();
    let main = "exports.main = (word, credentials, ctx) => ({count: ctx.state.incr(word), job: ctx.job.function});\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"node\"\n"), ("main.js", main)]);
    let name = unique("node-count").to_lowercase();
    let url = stack.url(&format!("/v1/functions/{name}"));
    let deployed =
        reqwest::Client::new().put(url).bearer_auth(&stack.token).json(&json!({"repo": repo, "ref": "main"}));
    assert_eq!(deployed.send().await.unwrap().status(), StatusCode::CREATED);
    invoke(stack, &stack.token, &name, json!("w")).await;
    let second = invoke(stack, &stack.token, &name, json!("w")).await;
    assert_eq!(second["output"], json!({"count": 2, "job": name}), "{second}");
    wait_for_keys(stack, &stack.token, &name, &json!({"w": 2})).await;
}

/// Deploys `repo` as a new function (named from `prefix`) whose runtime reads the
/// context file and writes `{"op": "incr", "key": key, "by": by}` to the effects
/// file: the first invocation sees no state, the second the first's commit.
async fn context_files_count(stack: &Stack, repo: String, prefix: &str, key: &str, by: i64) {
    let name = unique(prefix).to_lowercase();
    let url = stack.url(&format!("/v1/functions/{name}"));
    let deployed =
        reqwest::Client::new().put(url).bearer_auth(&stack.token).json(&json!({"repo": repo, "ref": "main"}));
    assert_eq!(deployed.send().await.unwrap().status(), StatusCode::CREATED);
    let first = invoke(stack, &stack.token, &name, json!(null)).await;
    assert_eq!((first["status"].as_str(), &first["output"]["state"]), (Some("succeeded"), &json!({})), "{first}");
    wait_for_keys(stack, &stack.token, &name, &json!({ key: by })).await;
    let second = invoke(stack, &stack.token, &name, json!(null)).await;
    assert_eq!(second["output"]["state"], json!({ key: by }), "the committed state, in the context file");
    assert_eq!(second["output"]["job"]["function"], name.as_str());
    wait_for_keys(stack, &stack.token, &name, &json!({ key: 2 * by })).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_function_reads_its_context_from_a_file_and_writes_its_changes_to_one() {
    let main = "#!/bin/sh\necho '{\"op\": \"incr\", \"key\": \"sh\", \"by\": 3}' > /output/.gitfaas-effects\n\
                cat /input/.gitfaas-context.json\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"command\"\n"), ("main", main)]);
    context_files_count(stack(), repo, "sh-count", "sh", 3).await;
}

/// A WASI module that copies its context file to stdout and writes one increment
/// of `wasm` to its effects file (the preopens are /code, /input, /output: fds 3–5).
fn context_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "path_open"
            (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 256) ".gitfaas-context.json")
          (data (i32.const 320) ".gitfaas-effects")
          (data (i32.const 384) "{\"op\": \"incr\", \"key\": \"wasm\", \"by\": 5}\0a")
          (func (export "_start")
            (drop (call $open (i32.const 4) (i32.const 0) (i32.const 256) (i32.const 21)
              (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
            (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 16384))
            (drop (call $read (i32.load (i32.const 16)) (i32.const 0) (i32.const 1) (i32.const 8)))
            (i32.store (i32.const 4) (i32.load (i32.const 8)))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (drop (call $open (i32.const 5) (i32.const 0) (i32.const 320) (i32.const 16)
              (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 20)))
            (i32.store (i32.const 0) (i32.const 384)) (i32.store (i32.const 4) (i32.const 39))
            (drop (call $write (i32.load (i32.const 20)) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .expect("valid wat")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasm_function_reads_its_context_from_a_file_and_writes_its_changes_to_one() {
    let toml: &[u8] = b"runtime = \"wasm\"\nentry = \"fn.wasm\"\n";
    let repo = git_repo_of(&[("gitfaas.toml", toml), ("fn.wasm", &context_module())]);
    context_files_count(stack(), repo, "wasm-count", "wasm", 5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_at_most_once_functions_changes_commit_with_its_durable_start() {
    let stack = stack();
    let name = unique("once").to_lowercase();
    let deployed = deploy(stack, &stack.token, &name, json!({"delivery": "at_most_once"})).await;
    assert_eq!(deployed.status(), StatusCode::CREATED);
    for _ in 0..3 {
        let result = invoke(stack, &stack.token, &name, json!({"words": ["once"]})).await;
        assert_eq!((result["status"].as_str(), result["delivery"].as_str()), (Some("succeeded"), Some("at_most_once")));
    }
    wait_for_keys(stack, &stack.token, &name, &json!({"once": 3})).await;
}

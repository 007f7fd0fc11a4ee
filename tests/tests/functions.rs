//! Named functions on a real broker, Redis, executor and git server: deploy
//! (the ref resolved to a commit), invoke by name, update to a new commit, roll
//! back (the old commit runs again though the branch moved on), owners' names,
//! the compacted topic as source of truth (the view rebuilt from it), delete.

use std::time::Duration;

use gitfaas_common::kafka::decode;
use gitfaas_common::schema::FunctionState;
use gitfaas_tests::{git_repo, infra, read_topic, unique, Provider, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn function_source(version: u32) -> String {
    format!("def main(data, credentials):\n    return {{'v': {version}, 'in': data}}\n")
}

/// Commits a new `main.py` on the branch of the test repository at `url`.
fn push_version(url: &str, version: u32) {
    gitfaas_tests::commit_to(url, &[("main.py", &function_source(version))]);
}

async fn put(stack: &Stack, name: &str, body: &Value) -> reqwest::Response {
    let url = stack.url(&format!("/v1/functions/{name}"));
    reqwest::Client::new().put(url).bearer_auth(&stack.token).json(body).send().await.unwrap()
}

async fn post_as(stack: &Stack, token: &str, path: &str, body: &Value) -> reqwest::Response {
    let request = reqwest::Client::new().post(stack.url(path)).bearer_auth(token).header("Prefer", "wait=30");
    request.json(body).send().await.unwrap()
}

async fn invoke(stack: &Stack, name: &str, input: Value) -> Value {
    let response =
        post_as(stack, &stack.token, &format!("/v1/functions/{name}/invoke"), &json!({"input": input})).await;
    assert_eq!(response.status(), StatusCode::OK, "invoked within the wait");
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    result
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_is_deployed_invoked_updated_rolled_back_and_deleted() {
    let stack = Stack::shared();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", &function_source(1))]);
    let name = unique("fn").to_lowercase();

    let deployed = put(stack, &name, &json!({"repo": repo, "ref": "main"})).await;
    assert_eq!(deployed.status(), StatusCode::CREATED);
    let first: Value = deployed.json().await.unwrap();
    assert_eq!(first["current"]["version"], 1, "{first}");
    let first_commit = first["current"]["commit_sha"].as_str().unwrap().to_owned();
    assert_eq!(first_commit.len(), 40, "pinned to a commit: {first}");

    let result = invoke(stack, &name, json!(5)).await;
    assert_eq!(result["output"], json!({"v": 1, "in": 5}));
    assert_eq!(result["function"], json!({"name": name, "version": 1}), "the result names the function");
    assert_eq!(result["commit_sha"], first_commit.as_str());
    let job: Value = stack.get(&format!("/v1/jobs/{}", result["job_id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(job["function"], json!({"name": name, "version": 1}), "the job names the function");

    // a push alone changes nothing: the version runs its commit
    push_version(&repo, 2);
    assert_eq!(invoke(stack, &name, json!(6)).await["output"], json!({"v": 1, "in": 6}));
    let updated = put(stack, &name, &json!({"repo": repo, "ref": "main"})).await;
    assert_eq!(updated.status(), StatusCode::OK);
    let second: Value = updated.json().await.unwrap();
    assert_eq!(second["current"]["version"], 2);
    assert_ne!(second["current"]["commit_sha"], first_commit.as_str(), "the new commit");
    assert_eq!(invoke(stack, &name, json!(7)).await["output"], json!({"v": 2, "in": 7}));

    let back = post_as(stack, &stack.token, &format!("/v1/functions/{name}/rollback"), &json!({"version": 1})).await;
    assert_eq!(back.status(), StatusCode::OK);
    assert_eq!(back.json::<Value>().await.unwrap()["current"]["version"], 1);
    let result = invoke(stack, &name, json!(8)).await;
    assert_eq!(result["output"], json!({"v": 1, "in": 8}), "the old commit runs again");
    assert_eq!(result["function"]["version"], 1);
    let versions: Value = stack.get(&format!("/v1/functions/{name}/versions")).await.json().await.unwrap();
    assert_eq!((versions["current"].clone(), versions["versions"].as_array().unwrap().len()), (json!(1), 2));
    let missing = post_as(stack, &stack.token, &format!("/v1/functions/{name}/rollback"), &json!({"version": 9})).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    // the compacted topic holds the function's state: the source of truth
    let key = FunctionState::key_of(&stack_subject(stack).await, &name);
    let on_topic: Vec<FunctionState> = read_topic(&stack.topics().functions)
        .into_iter()
        .filter(|(k, _, _)| k.as_deref() == Some(key.as_str()))
        .filter_map(|(_, payload, _)| decode::<FunctionState>(&payload).ok())
        .collect();
    assert_eq!(on_topic.last().map(|s| (s.current, s.versions.len())), Some((1, 2)), "{on_topic:?}");

    // another user sees none of it
    let bob = Provider::shared().token("bob").await;
    for path in [format!("/v1/functions/{name}"), format!("/v1/functions/{name}/versions")] {
        assert_eq!(stack.get_as(&bob, &path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let theirs = post_as(stack, &bob, &format!("/v1/functions/{name}/invoke"), &json!({"input": 1})).await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let listed: Value = stack.get_as(&bob, "/v1/functions").await.json().await.unwrap();
    assert!(listed["functions"].as_array().unwrap().iter().all(|f| f["name"] != name.as_str()));
    let mine: Value = stack.get("/v1/functions").await.json().await.unwrap();
    assert!(mine["functions"].as_array().unwrap().iter().any(|f| f["name"] == name.as_str()));

    let url = stack.url(&format!("/v1/functions/{name}"));
    let deleted = reqwest::Client::new().delete(&url).bearer_auth(&stack.token).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(stack.get(&format!("/v1/functions/{name}")).await.status(), StatusCode::NOT_FOUND);
    let gone = post_as(stack, &stack.token, &format!("/v1/functions/{name}/invoke"), &json!({})).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

/// The caller's subject, as the stack's jobs record it.
async fn stack_subject(stack: &Stack) -> String {
    let id =
        stack.submit_ok(&json!({"repo": git_repo(&[("main.py", &function_source(0))]), "runtime": "python"})).await;
    let result = stack.result(&id).await;
    result["owner"]["subject"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_deployments_get_clear_errors() {
    let stack = Stack::shared();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", &function_source(1))]);
    let cases = [
        ("Bad-Name", json!({"repo": repo}), StatusCode::BAD_REQUEST, "name"),
        ("ok", json!({"repo": repo, "input": 1}), StatusCode::BAD_REQUEST, "input"),
        ("ok", json!({"repo": repo, "nonsense": 1}), StatusCode::BAD_REQUEST, "nonsense"),
        ("ok", json!({"repo": repo, "ref": "no-such-branch"}), StatusCode::UNPROCESSABLE_ENTITY, "no-such-branch"),
    ];
    for (name, body, status, mentions) in cases {
        let response = put(stack, name, &body).await;
        assert_eq!(response.status(), status, "{name} {body}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        assert!(problem.to_string().contains(mentions), "{problem}");
    }
    assert_eq!(stack.get("/v1/functions/never-deployed").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_view_of_functions_is_rebuilt_from_their_topic() {
    let stack = Stack::shared();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", &function_source(3))]);
    let name = unique("rebuilt").to_lowercase();
    assert_eq!(put(stack, &name, &json!({"repo": repo})).await.status(), StatusCode::CREATED);
    // Redis loses the function and its marker: the frontend replays the topics
    let client = redis::Client::open(infra::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    // only this function's keys: the other tests of the binary share the stack
    let pattern = format!("{}:fn*{name}*", stack.redis_prefix);
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut redis).await.unwrap();
    assert!(!keys.is_empty(), "the view holds the function");
    let user_fns: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:user:*:fns", stack.redis_prefix)).query_async(&mut redis).await.unwrap();
    for key in &user_fns {
        let _: () = redis::cmd("SREM").arg(key).arg(&name).query_async(&mut redis).await.unwrap();
    }
    let marker = format!("{}:initialized", stack.redis_prefix);
    for key in keys.iter().chain([&marker]) {
        let _: () = redis::cmd("DEL").arg(key).query_async(&mut redis).await.unwrap();
    }
    assert_eq!(stack.get(&format!("/v1/functions/{name}")).await.status(), StatusCode::NOT_FOUND, "forgotten");
    let mut found = None;
    for _ in 0..100 {
        let response = stack.get(&format!("/v1/functions/{name}")).await;
        if response.status() == StatusCode::OK {
            found = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let found = found.expect("the function came back from its topic");
    assert_eq!(found["current"]["version"], 1);
    assert_eq!(invoke(stack, &name, json!("x")).await["output"], json!({"v": 3, "in": "x"}));
}

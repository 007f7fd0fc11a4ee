//! Pipelines on a real broker, Redis, executor and git server: data passes
//! through three functions, a failing middle step stops the run, a cancel stops
//! it, another user's run is not found, and a run's list survives the loss of
//! the view (rebuilt from the jobs topic).

use std::time::Duration;

use gitfaas_tests::{git_repo, infra, unique, Provider, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Deploys a python function whose `main` body is `body`; returns its name.
async fn deploy(stack: &Stack, body: &str) -> String {
    let source = format!("import time\ndef main(data, credentials):\n{body}\n");
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", &source)]);
    let name = unique("step").to_lowercase();
    let url = stack.url(&format!("/v1/functions/{name}"));
    let response =
        reqwest::Client::new().put(url).bearer_auth(&stack.token).json(&json!({"repo": repo})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap_or_default());
    name
}

/// A step that appends `tag` to the input's trail and applies `op` to its `n`.
fn transform(tag: &str, op: &str) -> String {
    format!("    return {{'trail': data['trail'] + ['{tag}'], 'n': data['n'] {op}}}")
}

async fn start_as(stack: &Stack, token: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new().post(stack.url("/v1/pipelines")).bearer_auth(token).json(body).send().await.unwrap()
}

/// Starts a run that must be accepted; returns its id.
async fn start(stack: &Stack, steps: &[&str], input: Value) -> String {
    let response = start_as(stack, &stack.token, &json!({"steps": steps, "input": input})).await;
    let status = response.status();
    let view: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{view}");
    assert_eq!(view["links"]["self"], format!("/v1/pipelines/{}", view["id"].as_str().unwrap()));
    view["id"].as_str().unwrap().to_owned()
}

/// Waits for the run to end; its view then.
async fn finished(stack: &Stack, id: &str) -> Value {
    for _ in 0..8 {
        let view: Value = stack.get(&format!("/v1/pipelines/{id}?wait=20")).await.json().await.unwrap();
        if !["queued", "running"].contains(&view["status"].as_str().unwrap()) {
            return view;
        }
    }
    panic!("run {id} did not end in 160s");
}

async fn job(stack: &Stack, id: &Value) -> Value {
    stack.get(&format!("/v1/jobs/{}", id.as_str().unwrap())).await.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_steps_pass_their_data_through_and_each_steps_job_is_listed() {
    let stack = Stack::shared();
    let a = deploy(stack, &transform("a", "+ 1")).await;
    let b = deploy(stack, &transform("b", "* 10")).await;
    let c = deploy(stack, &transform("c", "- 3")).await;
    let id = start(stack, &[&a, &b, &c], json!({"trail": [], "n": 1})).await;

    let run = finished(stack, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], json!({"trail": ["a", "b", "c"], "n": 17}), "(1 + 1) * 10 - 3, in order");
    assert!(run["reason"].is_null());
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (i, (step, name)) in steps.iter().zip([&a, &b, &c]).enumerate() {
        assert_eq!((step["index"].clone(), step["function"].clone()), (json!(i + 1), json!(name)), "{step}");
        assert_eq!((step["status"].clone(), step["version"].clone()), (json!("succeeded"), json!(1)), "{step}");
        assert!(step["submitted_at"].is_string() && step["finished_at"].is_string(), "{step}");
        assert!(step["elapsed_ms"].as_u64().unwrap() > 0, "{step}");
        let job = job(stack, &step["job_id"]).await;
        assert_eq!(job["status"], "succeeded");
        assert_eq!(job["function"], json!({"name": name, "version": 1}), "the job names its function");
    }
    // each step started after the one before ended
    for pair in steps.windows(2) {
        assert!(pair[1]["submitted_at"].as_str() >= pair[0]["finished_at"].as_str(), "{pair:?}");
    }
    let result: Value =
        stack.get(&format!("/v1/jobs/{}/result", steps[1]["job_id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(result["output"], json!({"trail": ["a", "b"], "n": 20}), "the middle step's own output");

    // job lists are newest first: the steps' jobs, last step first
    let jobs: Value = stack.get("/v1/jobs?limit=100").await.json().await.unwrap();
    let ids: Vec<&Value> = jobs["jobs"].as_array().unwrap().iter().map(|j| &j["id"]).collect();
    let at: Vec<Option<usize>> = steps.iter().map(|s| ids.iter().position(|id| **id == s["job_id"])).collect();
    assert!(at[2].is_some() && at[2] < at[1] && at[1] < at[0], "{at:?}");

    let listed: Value = stack.get("/v1/pipelines").await.json().await.unwrap();
    let found = listed["runs"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).cloned();
    assert_eq!(found.map(|r| r["status"].clone()), Some(json!("succeeded")), "{listed}");
    let cancel = reqwest::Client::new().post(stack.url(&format!("/v1/pipelines/{id}/cancel")));
    let cancel = cancel.bearer_auth(&stack.token).send().await.unwrap();
    assert_eq!(cancel.status(), StatusCode::CONFLICT, "a finished run is not cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_middle_step_stops_the_run_and_the_last_step_never_starts() {
    let stack = Stack::shared();
    let a = deploy(stack, &transform("a", "+ 1")).await;
    let b = deploy(stack, "    raise ValueError('no good input')").await;
    let c = deploy(stack, &transform("c", "- 3")).await;
    let id = start(stack, &[&a, &b, &c], json!({"trail": [], "n": 1})).await;

    let run = finished(stack, &id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.starts_with(&format!("step 2 ({b}) failed")), "{reason}");
    assert!(run["output"].is_null());
    let steps = run["steps"].as_array().unwrap();
    assert_eq!((steps[0]["status"].clone(), steps[1]["status"].clone()), (json!("succeeded"), json!("failed")));
    assert_eq!(job(stack, &steps[1]["job_id"]).await["status"], "failed");
    // some time for a wrong follow-up to queue the third step anyway
    tokio::time::sleep(Duration::from_secs(4)).await;
    let run: Value = stack.get(&format!("/v1/pipelines/{id}")).await.json().await.unwrap();
    assert_eq!(run["status"], "failed");
    assert!(run["steps"][2]["job_id"].is_null(), "no job for step 3: {run}");
    assert_eq!(run["steps"][2]["status"], "pending");
    let jobs: Value = stack.get("/v1/jobs?limit=100").await.json().await.unwrap();
    let of_c = jobs["jobs"].as_array().unwrap().iter().filter(|j| j["function"]["name"] == c.as_str()).count();
    assert_eq!(of_c, 0, "the last function never ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_cancels_its_running_step_and_starts_no_other() {
    let stack = Stack::shared();
    let slow = deploy(stack, "    time.sleep(120)\n    return data").await;
    let next = deploy(stack, &transform("b", "* 10")).await;
    let id = start(stack, &[&slow, &next], json!({"trail": [], "n": 1})).await;
    // cancel once the first step runs
    let mut running = false;
    for _ in 0..120 {
        let run: Value = stack.get(&format!("/v1/pipelines/{id}")).await.json().await.unwrap();
        if run["steps"][0]["status"] == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(running, "the first step started");
    let cancel = reqwest::Client::new().post(stack.url(&format!("/v1/pipelines/{id}/cancel")));
    let cancel = cancel.bearer_auth(&stack.token).send().await.unwrap();
    assert!([StatusCode::OK, StatusCode::ACCEPTED].contains(&cancel.status()), "{}", cancel.status());

    let run = finished(stack, &id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert!(run["reason"].as_str().unwrap().starts_with(&format!("step 1 ({slow}) cancelled")), "{run}");
    let first = job(stack, &run["steps"][0]["job_id"]).await;
    assert_eq!(first["status"], "cancelled", "the step's job is cancelled: {first}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let run: Value = stack.get(&format!("/v1/pipelines/{id}")).await.json().await.unwrap();
    assert_ne!(run["steps"][1]["status"], "queued", "{run}");
    assert_ne!(run["steps"][1]["status"], "running", "{run}");
    assert_ne!(run["steps"][1]["status"], "succeeded", "step 2 never runs: {run}");
    let jobs: Value = stack.get("/v1/jobs?limit=100").await.json().await.unwrap();
    let ran = jobs["jobs"].as_array().unwrap().iter().filter(|j| j["function"]["name"] == next.as_str()).count();
    assert_eq!(ran, 0, "the second function never ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_run_is_not_found_and_bad_runs_are_refused() {
    let stack = Stack::shared();
    let a = deploy(stack, &transform("a", "+ 1")).await;
    let id = start(stack, &[&a], json!({"trail": [], "n": 1})).await;
    assert_eq!(finished(stack, &id).await["output"], json!({"trail": ["a"], "n": 2}));

    let bob = Provider::shared().token("bob").await;
    assert_eq!(stack.get_as(&bob, &format!("/v1/pipelines/{id}")).await.status(), StatusCode::NOT_FOUND);
    let theirs = reqwest::Client::new().post(stack.url(&format!("/v1/pipelines/{id}/cancel"))).bearer_auth(&bob);
    assert_eq!(theirs.send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let listed: Value = stack.get_as(&bob, "/v1/pipelines").await.json().await.unwrap();
    assert!(listed["runs"].as_array().unwrap().iter().all(|r| r["id"] != id.as_str()), "{listed}");
    let missing = start_as(stack, &bob, &json!({"steps": [a], "input": {}})).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND, "alice's function is no step of bob's");
    assert_eq!(stack.get(&format!("/v1/pipelines/{}", uuid_like())).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(stack.get("/v1/pipelines/not-a-run").await.status(), StatusCode::NOT_FOUND);

    let cases = [
        (json!({"steps": []}), StatusCode::BAD_REQUEST, "steps"),
        (json!({"steps": vec![a.clone(); 17]}), StatusCode::BAD_REQUEST, "steps"),
        (json!({"steps": [a, "Not A Name"]}), StatusCode::BAD_REQUEST, "Not A Name"),
        (json!({"steps": [a, "never-deployed"]}), StatusCode::NOT_FOUND, "step 2: function never-deployed"),
        (json!({"steps": [a], "nonsense": 1}), StatusCode::BAD_REQUEST, "nonsense"),
    ];
    for (body, status, mentions) in cases {
        let response = start_as(stack, &stack.token, &body).await;
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(mentions), "{problem}");
    }
}

fn uuid_like() -> String {
    "0190a6b2-0000-7000-8000-000000000000".into()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_come_back_with_their_jobs_when_the_view_is_rebuilt() {
    let stack = Stack::shared();
    let a = deploy(stack, &transform("a", "+ 1")).await;
    let b = deploy(stack, &transform("b", "* 10")).await;
    let id = start(stack, &[&a, &b], json!({"trail": [], "n": 4})).await;
    assert_eq!(finished(stack, &id).await["status"], "succeeded");
    // Redis loses the run from its list, and its marker: the frontend replays the topics
    // (only this run: the other tests of the binary share the stack)
    let client = redis::Client::open(infra::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let lists: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:user:*:pipelines", stack.redis_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut removed = 0;
    for key in &lists {
        removed += redis::cmd("ZREM").arg(key).arg(&id).query_async::<i64>(&mut redis).await.unwrap();
    }
    assert_eq!(removed, 1, "the view listed the run");
    let listed: Value = stack.get("/v1/pipelines").await.json().await.unwrap();
    assert!(listed["runs"].as_array().unwrap().iter().all(|r| r["id"] != id.as_str()), "forgotten");
    let _: () =
        redis::cmd("DEL").arg(format!("{}:initialized", stack.redis_prefix)).query_async(&mut redis).await.unwrap();
    let mut back = None;
    for _ in 0..100 {
        let listed: Value = stack.get("/v1/pipelines").await.json().await.unwrap();
        if let Some(run) = listed["runs"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str()) {
            back = Some(run.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = back.expect("the run is listed again");
    assert_eq!(
        (run["status"].clone(), run["output"].clone()),
        (json!("succeeded"), json!({"trail": ["a", "b"], "n": 50}))
    );
}

/// `gitfaas args…` as alice, against the shared stack: exit code, stdout, stderr.
async fn cli(stack: &Stack, args: &[&str]) -> (i32, String, String) {
    let config = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(infra::bin_dir().join("gitfaas"));
    command.env("XDG_CONFIG_HOME", config.path()).env("GITFAAS_API", &stack.base_url);
    command.env("GITFAAS_TOKEN", &stack.token).env_remove("GITFAAS_OUTPUT").args(args).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output()).await.unwrap().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_runs_a_pipeline_to_its_end_and_exits_like_its_last_step() {
    let stack = Stack::shared();
    let a = deploy(stack, &transform("a", "+ 1")).await;
    let b = deploy(stack, &transform("b", "* 10")).await;
    let input = r#"{"trail": [], "n": 2}"#;
    let (code, stdout, stderr) = cli(stack, &["pipeline", "run", &a, &b, "--input", input]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), json!({"trail": ["a", "b"], "n": 30}), "{stderr}");
    assert!(stderr.contains(&format!("step 2 {b} v1: succeeded")), "{stderr}");
    let (_, listed, stderr) = cli(stack, &["pipeline", "ls"]).await;
    let line = |l: &str| l.contains("\tsucceeded\t") && l.ends_with(&format!("{a} → {b}"));
    assert!(listed.lines().any(line), "{listed}{stderr}");

    let failing = deploy(stack, "    raise ValueError('nope')").await;
    let (code, stdout, stderr) = cli(stack, &["pipeline", "run", &a, &failing, &b, "--input", input]).await;
    assert_eq!((code, stdout.as_str()), (1, ""), "a failed run exits 1 with no output: {stderr}");
    assert!(stderr.contains(&format!("failed: step 2 ({failing}) failed")), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_whose_function_is_gone_ends_the_run_instead_of_being_retried() {
    let stack = Stack::shared();
    let slow = deploy(stack, "    time.sleep(4)\n    return data").await;
    let gone = deploy(stack, &transform("b", "* 10")).await;
    let id = start(stack, &[&slow, &gone], json!({"trail": [], "n": 1})).await;
    let url = stack.url(&format!("/v1/functions/{gone}"));
    let deleted = reqwest::Client::new().delete(url).bearer_auth(&stack.token).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let run = finished(stack, &id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let reason = format!("step 2 ({gone}) failed: the step could not be queued: function {gone} not found");
    assert_eq!(run["reason"], reason.as_str(), "{run}");
    assert_eq!(run["steps"][0]["status"], "succeeded");
    // the step's end is a result like any other: it stays, and the results reader moved on
    let result: Value = stack
        .get(&format!("/v1/jobs/{}/result", run["steps"][1]["job_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(result["status"], "failed", "{result}");
    let a = deploy(stack, &transform("a", "+ 1")).await;
    let after = start(stack, &[&a], json!({"trail": [], "n": 1})).await;
    assert_eq!(finished(stack, &after).await["status"], "succeeded", "later runs still go on");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_retried_with_its_idempotency_key_finds_the_same_run() {
    let stack = Stack::shared();
    let a = deploy(stack, &transform("a", "+ 1")).await;
    let key = unique("key");
    let start_with = |body: Value| {
        let request = reqwest::Client::new().post(stack.url("/v1/pipelines")).bearer_auth(&stack.token);
        request.header("Idempotency-Key", key.clone()).json(&body).send()
    };
    let body = json!({"steps": [a], "input": {"trail": [], "n": 1}});
    let first: Value = start_with(body.clone()).await.unwrap().json().await.unwrap();
    let again = start_with(body).await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"], "the same run: {again}");
    assert_eq!(again["steps"][0]["job_id"], first["steps"][0]["job_id"]);
    let other = start_with(json!({"steps": [a], "input": {"trail": [], "n": 2}})).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY, "the key names another request");
    let listed: Value = stack.get("/v1/pipelines?limit=100").await.json().await.unwrap();
    let runs = listed["runs"].as_array().unwrap();
    assert_eq!(runs.iter().filter(|r| r["steps"][0]["function"] == a.as_str()).count(), 1, "one run listed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_keeps_the_versions_it_started_with_while_a_step_is_redeployed() {
    let stack = Stack::shared();
    let slow = deploy(stack, "    time.sleep(8)\n    return data").await;
    let second = deploy(stack, "    return {'v': 1, 'in': data}").await;
    let id = start(stack, &[&slow, &second], json!(5)).await;
    // while the first step sleeps, the second step's function gets version 2
    let repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "def main(data, credentials):\n    return {'v': 2, 'in': data}\n"),
    ]);
    let url = stack.url(&format!("/v1/functions/{second}"));
    let redeployed =
        reqwest::Client::new().put(url).bearer_auth(&stack.token).json(&json!({"repo": repo})).send().await.unwrap();
    assert_eq!(redeployed.status(), StatusCode::OK, "a new version");
    let during: Value = stack.get(&format!("/v1/pipelines/{id}")).await.json().await.unwrap();
    assert!(during["steps"][1]["job_id"].is_null(), "redeployed before the second step was queued: {during}");
    let run = finished(stack, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], json!({"v": 1, "in": 5}), "the step ran the version current at the run's start");
    assert_eq!(run["steps"][1]["version"], 1, "{run}");
    // a run started now runs version 2
    let later = finished(stack, &start(stack, &[&second], json!(6)).await).await;
    assert_eq!(later["output"], json!({"v": 2, "in": 6}));
}

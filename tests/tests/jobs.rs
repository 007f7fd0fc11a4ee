//! End to end: jobs submitted over REST run from git in Docker and their results
//! come back through Kafka and Redis.

use gitfaas_tests::{containers_of_job, git_repo, read_topic, Stack};
use serde_json::{json, Value};

const PY_MANIFEST: &str = "runtime = \"python\"\n";

/// A stack whose executor keeps no sandbox warm: every job's container is removed
/// after its run (warm runs are `hostile_warm`'s).
fn cold_stack() -> &'static Stack {
    static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
    STACK.get_or_init(|| Stack::start_with(true, Box::new(|_, executor| executor.executor.warm.enabled = false)))
}

#[tokio::test(flavor = "multi_thread")]
async fn python_job_returns_what_its_main_returned() {
    let stack = cold_stack();
    let repo = git_repo(&[
        ("gitfaas.toml", PY_MANIFEST),
        ("main.py", "def main(data, credentials):\n    print('hello from the log')\n    return {'sum': sum(data['numbers']), 'creds': credentials}\n"),
    ]);
    let id = stack.submit_ok(&json!({"repo": repo, "ref": "main", "input": {"numbers": [1, 2, 39]}})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"sum": 42, "creds": {}}));
    assert!(result["stderr_tail"].as_str().unwrap().contains("hello from the log"));
    assert_eq!(result["commit_sha"].as_str().unwrap().len(), 40);
    assert_eq!(result["attempt"], 1);
    assert_eq!(result["executor_id"], stack.executor_id.as_str());
    let t = &result["timings"];
    assert_eq!(t["total_ms"].as_u64().unwrap(), t["queue_ms"].as_u64().unwrap() + t["run_ms"].as_u64().unwrap());
    assert_eq!(containers_of_job(&id).await, 0);

    let status: Value = stack.get(&format!("/v1/jobs/{id}")).await.json().await.unwrap();
    assert_eq!(status["status"], "succeeded");
    assert_eq!(status["commit_sha"], result["commit_sha"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn command_job_transforms_its_stdin() {
    let stack = Stack::shared();
    let repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"command\"\nentry = \"bin/shout\"\n"),
        ("bin/shout", "#!/bin/sh\nprintf '{\"shouted\": %s}' \"$(tr a-z A-Z)\"\n"),
    ]);
    let id = stack.submit_ok(&json!({"repo": repo, "input": "quiet words"})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"shouted": "QUIET WORDS"}));
    assert_eq!(containers_of_job(&id).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn function_that_raises_fails_with_the_exception_as_its_reason_and_the_traceback_in_its_stderr_tail() {
    let stack = cold_stack();
    let repo = git_repo(&[
        ("gitfaas.toml", PY_MANIFEST),
        ("main.py", "def main(data, credentials):\n    raise ValueError('no good input: ' + str(data))\n"),
    ]);
    let id = stack.submit_ok(&json!({"repo": repo, "input": 7})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["exit_code"], 1);
    let stderr = result["stderr_tail"].as_str().unwrap();
    assert!(stderr.contains("Traceback (most recent call last)") && stderr.contains("line 2, in main"), "{stderr}");
    assert_eq!(result["reason"], "function raised ValueError: no good input: 7", "{result}");
    assert_eq!(containers_of_job(&id).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_that_fails_is_the_reason_in_python_and_in_node() {
    let stack = cold_stack();
    let python = git_repo(&[
        ("gitfaas.toml", PY_MANIFEST),
        ("lib/main.py", "import json\nimport not_installed_anywhere\ndef main(data):\n    return 1\n"),
    ]);
    let node = git_repo(&[
        ("gitfaas.toml", "runtime = \"node\"\n"),
        ("main.js", "const missing = require('not-installed-anywhere');\nexports.main = () => 1;\n"),
    ]);
    let id = stack.submit_ok(&json!({"repo": python, "entry": "lib/main.py"})).await;
    let result = stack.result(&id).await;
    assert_eq!((result["status"].as_str(), result["exit_code"].as_i64()), (Some("failed"), Some(1)), "{result}");
    let reason = "function raised ModuleNotFoundError: No module named 'not_installed_anywhere' \
                  (while importing 'lib/main.py')";
    assert_eq!(result["reason"], reason, "{result}");
    assert!(result["stderr_tail"].as_str().unwrap().contains("line 2, in <module>"), "{result}");

    let id = stack.submit_ok(&json!({"repo": node})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "failed", "{result}");
    let reason = "function raised Error: Cannot find module 'not-installed-anywhere' (while importing \"main.js\")";
    assert_eq!(result["reason"], reason, "{result}");
    assert!(result["stderr_tail"].as_str().unwrap().contains("Require stack"), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_sandbox_gives_the_same_reasons_for_a_raise_and_a_failed_import() {
    let stack = Stack::shared(); // warm sandboxes on: the second run of each may be warm
    let raises = git_repo(&[
        ("gitfaas.toml", PY_MANIFEST),
        ("main.py", "def main(data):\n    raise KeyError('warm ' + str(data))\n"),
    ]);
    let imports = git_repo(&[("gitfaas.toml", PY_MANIFEST), ("main.py", "import not_installed_warm\n")]);
    let cases = [
        (&raises, "function raised KeyError: 'warm 3'"),
        (
            &imports,
            "function raised ModuleNotFoundError: No module named 'not_installed_warm' (while importing 'main.py')",
        ),
    ];
    for (repo, reason) in cases {
        for _ in 0..2 {
            let id = stack.submit_ok(&json!({"repo": repo, "input": 3})).await;
            let result = stack.result(&id).await;
            assert_eq!(
                (result["status"].as_str(), result["reason"].as_str()),
                (Some("failed"), Some(reason)),
                "{result}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_repository_and_missing_ref_fail_clearly_and_the_executor_keeps_serving() {
    let stack = Stack::shared();
    let missing_repo = format!("{}/no-such-repo", gitfaas_tests::infra::git_url());
    let id = stack.submit_ok(&json!({"repo": missing_repo, "runtime": "python"})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert!(result["reason"].as_str().unwrap().contains("could not fetch repository"), "{result}");

    let repo = git_repo(&[("gitfaas.toml", PY_MANIFEST), ("main.py", "def main(d, c):\n    return 'ok'\n")]);
    let id = stack.submit_ok(&json!({"repo": repo, "ref": "no-such-branch"})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["reason"], "ref `no-such-branch` not found in repository");

    let id = stack.submit_ok(&json!({"repo": repo})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "succeeded", "executor still serves: {result}");
    assert_eq!(result["output"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn job_past_its_timeout_is_timed_out_and_its_container_is_gone() {
    let stack = Stack::shared();
    let repo = git_repo(&[
        ("gitfaas.toml", PY_MANIFEST),
        ("main.py", "import time\ndef main(data, credentials):\n    time.sleep(60)\n"),
    ]);
    let id = stack.submit_ok(&json!({"repo": repo, "timeout_secs": 2})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "timed_out", "{result}");
    assert!(result["timings"]["run_ms"].as_u64().unwrap() < 30_000);
    assert_eq!(containers_of_job(&id).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_messages_are_the_versioned_json_of_common() {
    let stack = Stack::shared();
    let repo = git_repo(&[("gitfaas.toml", PY_MANIFEST), ("main.py", "def main(d, c):\n    return d\n")]);
    let id = stack.submit_ok(&json!({"repo": repo, "input": {"marker": "versioned"}})).await;
    stack.result(&id).await;

    let topics = stack.topics();
    let jobs = read_topic(&topics.jobs);
    let (key, payload, headers) = jobs.iter().find(|(k, ..)| k.as_deref() == Some(id.as_str())).expect("job on topic");
    assert_eq!(key.as_deref(), Some(id.as_str()));
    let job = gitfaas_common::kafka::decode::<gitfaas_common::Job>(payload).expect("job message decodes with common");
    assert_eq!(job.version, gitfaas_common::schema::SCHEMA_VERSION);
    assert_eq!(job.spec.input, json!({"marker": "versioned"}));
    assert_eq!(job.owner.subject, "alice", "the owner is the token's subject");
    assert_eq!(job.owner.name.as_deref(), Some("Alice"));
    assert!(headers.iter().any(|(k, v)| k == "traceparent" && v.starts_with("00-")), "{headers:?}");

    let events: Vec<_> = read_topic(&topics.results)
        .into_iter()
        .filter(|(k, ..)| k.as_deref() == Some(id.as_str()))
        .map(|(_, payload, _)| {
            gitfaas_common::kafka::decode::<gitfaas_common::JobEvent>(&payload).expect("event decodes with common")
        })
        .collect();
    assert!(
        matches!(events.as_slice(), [gitfaas_common::JobEvent::Started(_), gitfaas_common::JobEvent::Finished(_)]),
        "{events:?}"
    );
}

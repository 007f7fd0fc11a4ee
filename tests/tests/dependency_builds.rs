//! Which declaration a function's build installs, how much room the build has,
//! and what the result and the log say of it — against a `pypiserver` on
//! 127.0.0.1 serving wheels this test writes (`gitfaas_tests::package_index`).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use gitfaas_tests::package_index::{module_name as module, PyPi};
use gitfaas_tests::sandbox::finished;
use gitfaas_tests::sse::EventReader;
use gitfaas_tests::{git_repo, unique, Stack};
use serde_json::{json, Value};

struct Index {
    pypi: PyPi,
    stack: Stack,
    cache_dir: PathBuf,
}

/// The index and a stack whose executor installs from it.
fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let pypi = PyPi::start();
        let cache_dir = tempfile::tempdir().unwrap().keep().join("deps");
        let (pip_index, cache) = (pypi.index_url(), cache_dir.clone());
        let stack = Stack::start_with(
            true,
            Box::new(move |_, e| {
                let d = &mut e.executor.dependencies;
                (d.pip_index, d.cache_dir, d.build_timeout_secs) = (Some(pip_index), cache, 240);
            }),
        );
        Index { pypi, stack, cache_dir }
    })
}

async fn run_on(stack: &Stack, body: Value) -> Value {
    gitfaas_tests::sandbox::run_to_end(stack, &body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_whose_nearest_declaration_is_empty_runs_without_the_roots_dependencies() {
    let ix = index();
    let absent = module("absent"); // the index has no such package: installing the root's fails
    let root_requirements = format!("{absent}==1.0\n");
    let main = "import json\ndef main(data):\n    return 'ran ' + json.dumps(data)\n";
    let repo = git_repo(&[
        ("requirements.txt", &root_requirements),
        ("functions/quiet/requirements.txt", "# this function needs nothing\n\n"),
        ("functions/quiet/main.py", main),
        ("functions/bare/main.py", main),
    ]);
    let quiet = run_on(&ix.stack, json!({"repo": repo, "runtime": "python", "entry": "functions/quiet/main.py"})).await;
    assert_eq!((quiet["status"].as_str(), &quiet["output"]), (Some("succeeded"), &json!("ran null")), "{quiet}");
    // no declaration on the way up to its workdir: the root's is not read either
    let body =
        json!({"repo": repo, "runtime": "python", "entry": "functions/bare/main.py", "workdir": "functions/bare"});
    let bare = run_on(&ix.stack, body).await;
    assert_eq!(bare["status"], "succeeded", "{bare}");
    // at the root itself the root's declaration is the nearest, and it fails
    let body = json!({"repo": repo, "runtime": "python", "entry": "functions/bare/main.py"});
    let rooted = run_on(&ix.stack, body).await;
    assert_eq!(rooted["status"], "failed", "{rooted}");
    assert!(rooted["stderr_tail"].as_str().unwrap().contains(&absent), "{rooted}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_run_reads_the_declaration_nearest_its_entry() {
    use gitfaas_common::schema::Resources;
    use gitfaas_common::JobStatus;
    let ix = index();
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    write("gitfaas.toml", "runtime = \"python\"\nentry = \"fn/main.py\"\n");
    write("requirements.txt", &format!("{}==1.0\n", module("absent")));
    write("fn/requirements.txt", "# nothing\n");
    write("fn/main.py", "def main(data):\n    return data * 2\n");
    let state = tempfile::tempdir().unwrap();
    let mut settings = gitfaas_tests::executor_settings(&unique("local"), state.path());
    settings.executor.dependencies.pip_index = Some(ix.pypi.index_url());
    settings.executor.dependencies.cache_dir = ix.cache_dir.clone();
    let run = gitfaas_sandbox::LocalRun {
        dir: dir.path(),
        runtime: None,
        input: &json!(21),
        resources: Resources { memory_mb: 256, cpu_millis: 1000, pids: 128 },
        timeout: Duration::from_secs(60),
        live_log: false,
        dependencies: true,
        chosen: Default::default(),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let out = gitfaas_sandbox::run_local(&settings.executor.sandbox(), run, &cancel).await.unwrap();
    assert_eq!((out.status, out.output.clone()), (JobStatus::Succeeded, Some(json!(42))), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_package_larger_than_a_functions_tmp_installs_in_the_builds_scratch() {
    let ix = index();
    let name = module("large");
    const MB: u32 = 110; // pip holds the download and the unpacked copy in /tmp: 3.4 times a function's 64 MiB
    ix.pypi.add_large_wheel(&name, MB);
    let main = format!("import {name}\ndef main(data):\n    return {name}.size()\n");
    let repo = git_repo(&[("requirements.txt", &format!("{name}==1.0\n")), ("main.py", &main)]);
    let result = run_on(&ix.stack, json!({"repo": repo, "runtime": "python"})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!(u64::from(MB) << 20), "{result}");
    // 110 MiB of the shared disk: the layer goes once the test has seen it
    for layer in std::fs::read_dir(ix.cache_dir.join("layers")).unwrap().flatten() {
        if layer.path().join("site").join(&name).exists() {
            std::fs::remove_dir_all(layer.path()).unwrap();
        }
    }
}

/// The job's whole log, followed to its end.
async fn log_of(stack: &Stack, id: &str) -> String {
    let response = stack.get(&format!("/v1/jobs/{id}/logs?follow=true")).await;
    assert_eq!(response.status(), 200);
    let events = EventReader::new(response).until_end(Duration::from_secs(60)).await;
    events.iter().filter(|e| e.name == "log").map(|e| e.data["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_names_its_declaration_and_whether_the_layer_was_built_and_the_log_holds_the_build() {
    let ix = index();
    let name = module("shown");
    ix.pypi.add_wheel(&name, "VALUE = 'shown'\n");
    let main = format!("import {name}\ndef main(data):\n    print('the function runs')\n    return {name}.VALUE\n");
    let requirements = format!("{name}==1.0\n");
    let repo = git_repo(&[("fns/a/requirements.txt", &requirements), ("fns/a/main.py", &main)]);
    let body = json!({"repo": repo, "runtime": "python", "entry": "fns/a/main.py"});
    let id = ix.stack.submit_ok(&body).await;
    let first = finished(&ix.stack, &id).await;
    assert_eq!((first["status"].as_str(), &first["output"]), (Some("succeeded"), &json!("shown")), "{first}");
    let build = &first["dependencies"];
    assert_eq!((build["file"].as_str(), build["built"].as_bool()), (Some("fns/a/requirements.txt"), Some(true)));
    assert!(build["build_ms"].is_u64(), "{first}");
    let log = log_of(&ix.stack, &id).await;
    let (started, collected, ran) = (
        log.find("[gitfaas: installing the dependencies fns/a/requirements.txt declares]"),
        log.find(&format!("Collecting {name}==1.0")),
        log.find("the function runs"),
    );
    assert!(started < collected && collected < ran && started.is_some(), "the build, then the run: {log}");
    assert!(log.contains("[gitfaas: dependencies installed in "), "{log}");

    let again = run_on(&ix.stack, body).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(
        (again["dependencies"]["file"].as_str(), again["dependencies"]["built"].as_bool()),
        (Some("fns/a/requirements.txt"), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_build_says_the_installers_own_error_and_which_declaration_and_logs_it() {
    let ix = index();
    let absent = module("nowhere");
    let repo =
        git_repo(&[("requirements.txt", &format!("{absent}==2.0\n")), ("main.py", "def main(d):\n    return 1\n")]);
    let id = ix.stack.submit_ok(&json!({"repo": repo, "runtime": "python"})).await;
    let result = finished(&ix.stack, &id).await;
    assert_eq!(result["status"], "failed", "{result}");
    let reason = format!(
        "dependency install failed: the installer exited with code 1: \
         No matching distribution found for {absent}==2.0 (installing requirements.txt)"
    );
    assert_eq!(result["reason"], reason.as_str(), "{result}");
    let log = log_of(&ix.stack, &id).await;
    assert!(log.contains(&format!("ERROR: No matching distribution found for {absent}==2.0")), "{log}");
    assert!(log.contains(&format!("[gitfaas: {reason}]")), "{log}");
}

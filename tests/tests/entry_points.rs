//! A job naming its own entry point, working directory and arguments: in a
//! subdirectory, as `package.module:function`, without any manifest, and never
//! outside the checkout.

use std::path::Path;
use std::process::Command;

use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{git_repo, infra, unique, Stack};
use serde_json::{json, Value};

async fn run(body: Value) -> Value {
    let stack = Stack::shared();
    let id = stack.submit_ok(&body).await;
    finished(stack, &id).await
}

/// A repository holding `files` and a symlink `link` → `target`.
fn repo_with_link(files: &[(&str, &str)], link: &str, target: &str) -> String {
    let name = unique("linked");
    let dir = infra::git_root().join(&name);
    for (path, content) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    std::fs::create_dir_all(dir.join(link).parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, dir.join(link)).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["-c", "user.name=t", "-c", "user.email=t@l", "commit", "-qm", "f"],
    ] {
        let out = Command::new("git").args(args).current_dir(Path::new(&dir)).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    format!("{}/{name}", infra::git_url())
}

const PY_MAIN: &str = "import os\ndef main(data, credentials):\n    return {'from': __file__.split('/code/')[-1], 'cwd': os.getcwd(), 'data': data}\n";

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_in_a_subdirectory_overrides_the_manifest() {
    let helper = "VALUE = 'beside the entry'\n";
    let entry = "import helper\ndef main(data, credentials):\n    return [helper.VALUE, data]\n";
    let repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\nentry = \"main.py\"\n"),
        ("main.py", "def main(d, c):\n    return 'the manifest entry'\n"),
        ("test/helper.py", helper),
        ("test/main.py", entry),
    ]);
    let result = run(json!({"repo": repo, "entry": "test/main.py", "input": 7})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!(["beside the entry", 7]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_package_module_function_is_imported_from_the_workdir_and_called() {
    let repo = git_repo(&[
        ("svc/app/__init__.py", ""),
        ("svc/app/handlers.py", "from app import util\ndef double(data, credentials):\n    return util.twice(data)\n"),
        ("svc/app/util.py", "def twice(x):\n    return x * 2\n"),
    ]);
    let body =
        json!({"repo": repo, "runtime": "python", "entry": "app.handlers:double", "workdir": "svc", "input": 21});
    let result = run(body).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_without_a_manifest_runs_by_entry_and_runtime() {
    let repo = git_repo(&[("lib/handler.js", "exports.main = (data) => ({node: data + 1});\n")]);
    let result = run(json!({"repo": repo, "runtime": "node", "entry": "lib/handler.js", "input": 1})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"node": 2}));
    let repo = git_repo(&[("src/fn.py", PY_MAIN)]);
    let result = run(json!({"repo": repo, "runtime": "python", "entry": "src/fn.py", "input": "x"})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"from": "src/fn.py", "cwd": "/code", "data": "x"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn args_reach_the_command_exactly_and_it_runs_in_its_workdir() {
    let script = "#!/bin/sh\nfor a in \"$@\"; do printf '<%s>\\n' \"$a\" >&2; done\nprintf '{\"argc\": %s, \"cwd\": \"%s\"}' \"$#\" \"$(pwd)\"\n";
    let repo = git_repo(&[("bin/show", script), ("data/.keep", "")]);
    let args = ["two words", "\"double\" 'single'", "ünïcødé ✓", "", "$HOME;`id`"];
    let body = json!({"repo": repo, "runtime": "command", "entry": "bin/show", "args": args, "workdir": "data"});
    let result = run(body).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"argc": 5, "cwd": "/code/data"}));
    let expected: String = args.iter().map(|a| format!("<{a}>\n")).collect();
    assert!(result["stderr_tail"].as_str().unwrap().contains(&expected), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_of_one_commit_with_other_entries_or_workdirs_are_not_served_by_the_same_sandbox() {
    let repo = git_repo(&[("a.py", PY_MAIN), ("b.py", PY_MAIN), ("sub/.keep", "")]);
    for (entry, workdir, cwd) in [("a.py", None, "/code"), ("b.py", None, "/code"), ("b.py", Some("sub"), "/code/sub")]
    {
        let body = json!({"repo": repo, "runtime": "python", "entry": entry, "workdir": workdir, "input": 0});
        let result = run(body).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["output"], json!({"from": entry, "cwd": cwd, "data": 0}), "{entry} {workdir:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_or_workdir_escaping_by_its_text_is_a_400_naming_the_field() {
    let stack = Stack::shared();
    let repo = git_repo(&[("main.py", PY_MAIN)]);
    for (field, value) in [
        ("entry", json!("../x")),
        ("entry", json!("/etc/passwd")),
        ("workdir", json!("a/../..")),
        ("workdir", json!("/")),
    ] {
        let response = stack.submit(&json!({"repo": repo, "runtime": "python", field: value})).await;
        assert_eq!(response.status(), 400, "{field} {value}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], field, "{problem}");
    }
    let response = stack.submit(&json!({"repo": repo, "runtime": "python", "args": ["x"]})).await;
    assert_eq!(response.status(), 400);
    let response = stack.submit(&json!({"repo": repo, "runtime": "command", "args": vec!["x"; 65]})).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_or_workdir_through_a_symlink_out_of_the_checkout_is_rejected() {
    let repo = repo_with_link(&[("main.py", PY_MAIN)], "etc", "/etc");
    let result = run(json!({"repo": repo, "runtime": "python", "entry": "etc/passwd"})).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["reason"], "entry `etc/passwd` must be a relative path inside the repository");
    let result = run(json!({"repo": repo, "runtime": "python", "workdir": "etc"})).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["reason"], "workdir `etc` must be a directory inside the repository");
    let result = run(json!({"repo": repo, "runtime": "command", "entry": "etc/hostname"})).await;
    assert_eq!(result["status"], "rejected", "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_entry_is_rejected_with_that_reason_for_every_runtime() {
    let repo = git_repo(&[("README.md", "no code here\n")]);
    for (runtime, entry) in
        [("python", "main.py"), ("python", "pkg.mod:run"), ("node", "main.js"), ("command", "bin/run")]
    {
        let body = json!({"repo": repo, "runtime": runtime, "entry": entry});
        let result = run(body).await;
        assert_eq!(result["status"], "rejected", "{runtime}: {result}");
        assert_eq!(result["reason"], format!("entry `{entry}` not found in the repository"), "{runtime}");
    }
    let result = run(json!({"repo": repo, "runtime": "python"})).await;
    assert_eq!(
        (&result["status"], &result["reason"]),
        (&json!("rejected"), &json!("entry `main.py` not found in the repository"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_entry_names_an_export_and_a_missing_one_is_rejected_by_name() {
    let handler = "exports.handler = async (data) => ({handled: data});\nexports.main = () => 'not me';\n";
    let repo = git_repo(&[("lib/function.js", handler)]);
    // twice: the second run may be a warm sandbox's, which runs the cold runner the same way
    for _ in 0..2 {
        let body = json!({"repo": repo, "runtime": "node", "entry": "lib/function.js:handler", "input": 3});
        let result = run(body).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["output"], json!({"handled": 3}));
    }
    for _ in 0..2 {
        let result = run(json!({"repo": repo, "runtime": "node", "entry": "lib/function.js:nope"})).await;
        assert_eq!(result["status"], "rejected", "{result}");
        assert_eq!(result["reason"], "\"lib/function.js\" exports no function `nope`", "{result}");
    }
    let result = run(json!({"repo": repo, "runtime": "node", "entry": "lib/other.js:handler"})).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["reason"], "entry `lib/other.js:handler` not found in the repository");
    let repo = git_repo(&[("app.py", "def go(data, credentials):\n    return data\n")]);
    let result = run(json!({"repo": repo, "runtime": "python", "entry": "app:gone"})).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["reason"], "'app:gone' defines no callable gone", "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_entry_that_cannot_start_is_rejected_at_once_saying_why() {
    let repo = git_repo(&[
        ("bin/plain", "echo not executable\n"),
        ("bin/py", "#!/usr/bin/python3\nprint(1)\n"),
        ("bin/env-py", "#!/usr/bin/env python3\nprint(1)\n"),
        ("bin/env-sh", "#!/usr/bin/env sh\necho \"\\\"via env $1\\\"\"\n"),
    ]);
    // gVisor refuses the start itself (`failed to load /code/bin/py`), runc fails the exec inside
    let gvisor = gitfaas_tests::sandbox::start(gitfaas_tests::sandbox::Options::runtime("runsc"));
    let id = gvisor.submit_ok(&json!({"repo": repo, "runtime": "command", "entry": "bin/py"})).await;
    let result = finished(&gvisor, &id).await;
    assert_eq!((&result["status"], &result["attempt"]), (&json!("rejected"), &json!(1)), "{result}");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.starts_with("entry `bin/py` cannot start: its `#!` interpreter `/usr/bin/python3`"), "{reason}");
    let result = run(json!({"repo": repo, "runtime": "command", "entry": "bin/plain"})).await;
    assert_eq!(result["status"], "rejected", "{result}");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.starts_with("entry `bin/plain` is not executable"), "{reason}");
    let result = run(json!({"repo": repo, "runtime": "command", "entry": "bin/py"})).await;
    assert_eq!(result["status"], "rejected", "{result}");
    let image = "gitfaas/command:busybox";
    let why =
        format!("entry `bin/py` cannot start: its `#!` interpreter `/usr/bin/python3` is not in the image `{image}`");
    assert_eq!(result["reason"], why, "{result}");
    // `#!/usr/bin/env NAME`: NAME runs the script, looked up on the image's PATH (busybox's has
    // no python3, nor a /usr/bin/env) — refused at the start naming it, under gVisor and runc
    let why = format!(
        "entry `bin/env-py` cannot start: its `#!` interpreter `python3` (looked up by `/usr/bin/env`) \
         is not on the PATH of the image `{image}`"
    );
    let id = gvisor.submit_ok(&json!({"repo": repo, "runtime": "command", "entry": "bin/env-py"})).await;
    let result = finished(&gvisor, &id).await;
    let seen = (&result["status"], &result["attempt"], &result["reason"]);
    assert_eq!(seen, (&json!("rejected"), &json!(1), &json!(why)), "{result}");
    let result = run(json!({"repo": repo, "runtime": "command", "entry": "bin/env-py"})).await;
    let seen = (&result["status"], &result["attempt"], &result["reason"]);
    assert_eq!(seen, (&json!("rejected"), &json!(1), &json!(why)), "{result}");
    // a NAME the image has runs the script, with the job's args after it
    let result = run(json!({"repo": repo, "runtime": "command", "entry": "bin/env-sh", "args": ["sh"]})).await;
    assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &json!("via env sh")), "{result}");
}

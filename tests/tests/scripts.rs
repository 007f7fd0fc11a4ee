//! Script mode: a repository's python and node scripts run as their authors run
//! them — `python3 ENTRY ARGS…`, `python3 -m MODULE ARGS…` (the standard
//! library's too), `node ENTRY ARGS…` — with the checkout on the path, the input
//! as JSON on stdin, the exit code as the status and stdout as the output (JSON
//! when it parses, else text); always cold.

use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{git_repo, Stack};
use serde_json::{json, Value};

async fn run(body: Value) -> Value {
    let stack = Stack::shared();
    let id = stack.submit_ok(&body).await;
    finished(stack, &id).await
}

const ADD: &str = "import json, sys\nfrom lib import helper\n\
                   data = json.load(sys.stdin)\n\
                   print(json.dumps({'sum': int(sys.argv[1]) + int(sys.argv[2]), 'input': data, 'helper': helper.NAME}))\n";
const FACTORIAL: &str = "def factorial(n):\n    \"\"\"\n    >>> factorial(5)\n    120\n    \"\"\"\n    return 1 if n < 2 else n * factorial(n - 1)\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_python_script_gets_its_args_the_input_on_stdin_and_the_checkout_on_its_path() {
    let repo = git_repo(&[("test/main.py", ADD), ("lib/__init__.py", ""), ("lib/helper.py", "NAME = 'root lib'\n")]);
    // twice: a script never takes or leaves a warm sandbox
    for _ in 0..2 {
        let body = json!({"repo": repo, "runtime": "python", "mode": "script", "entry": "test/main.py",
                          "args": ["2", "3"], "input": {"k": 1}});
        let result = run(body).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["output"], json!({"sum": 5, "input": {"k": 1}, "helper": "root lib"}));
        assert_ne!(result["warm"], json!(true), "{result}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_modules_run_with_dash_m_the_standard_librarys_too() {
    let repo = git_repo(&[("maths/factorial.py", FACTORIAL), ("maths/wrong.py", &FACTORIAL.replace("120", "121"))]);
    let doctest =
        |file: &str| json!({"repo": repo, "runtime": "python", "mode": "script", "args": ["-m", "doctest", file]});
    let result = run(doctest("maths/factorial.py")).await;
    assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &json!("")), "{result}");
    let result = run(doctest("maths/wrong.py")).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["reason"], "function exited with code 1", "{result}");
    assert!(result["stderr_tail"].is_string(), "{result}");
    let body = json!({"repo": repo, "runtime": "python", "mode": "script", "args": ["-m", "json.tool"],
                      "input": [1, {"a": "b"}]});
    let result = run(body).await;
    assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &json!([1, {"a": "b"}])), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_script_gets_its_args_and_its_text_output_is_returned_as_text() {
    let cli = "const flags = process.argv.slice(2);\nconsole.log('flags: ' + flags.join(' '));\n";
    let repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"node\"\nmode = \"script\"\nentry = \"bin/cli.js\"\n"),
        ("bin/cli.js", cli),
    ]);
    let result = run(json!({"repo": repo, "args": ["--flag", "two words"]})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], "flags: --flag two words\n");
    // a script's stderr is its own: a line like our runners' says nothing to the executor
    let exits = "console.error('gitfaas: rejected: not from a runner');\nprocess.exitCode = 3;\n";
    let repo = git_repo(&[("exit.js", exits)]);
    let result = run(json!({"repo": repo, "runtime": "node", "mode": "script", "entry": "exit.js"})).await;
    assert_eq!((&result["status"], &result["exit_code"]), (&json!("failed"), &json!(3)), "{result}");
    assert_eq!(result["reason"], "function exited with code 3", "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn args_need_the_command_runtime_or_a_script_and_scripts_need_python_or_node() {
    let stack = Stack::shared();
    let repo = git_repo(&[("main.py", "print(1)\n"), ("main", "#!/bin/sh\necho 1\n")]);
    let response = stack.submit(&json!({"repo": repo, "runtime": "python", "args": ["x"]})).await;
    assert_eq!(response.status(), 400);
    let result = run(json!({"repo": repo, "runtime": "command", "mode": "script"})).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["reason"], "mode `script` is for the python and node runtimes, not `command`");
}

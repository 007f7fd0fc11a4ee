//! The CLI says what the API can about what to run: `--entry`, `--workdir`,
//! `--args` and `--dependencies skip` on `run`, `fn deploy` and `local run`
//! (through the real binary); a deployment is planned at its commit before it
//! records a version; function views show runtime, entry and workdir; `fn invoke`
//! of a failing function says why on stderr and prints nothing on stdout.

use std::process::Output;
use std::time::Duration;

use gitfaas_tests::{config_dir, git_repo, infra, unique, Stack};
use serde_json::{json, Value};

/// `gitfaas args…` as the shared stack's user.
async fn gitfaas(args: &[&str]) -> Output {
    let stack = Stack::shared();
    let config = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(infra::bin_dir().join("gitfaas"));
    command
        .env("XDG_CONFIG_HOME", config.path())
        .env("GITFAAS_API", &stack.base_url)
        .env("GITFAAS_TOKEN", &stack.token)
        .env_remove("GITFAAS_OUTPUT")
        .args(args)
        .kill_on_drop(true);
    let output = command.output();
    tokio::time::timeout(Duration::from_secs(120), output).await.expect("gitfaas ends in 120 s").expect("gitfaas runs")
}

fn streams(output: &Output) -> (Option<i32>, String, String) {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

const SHOW_ARGS: &str = "#!/bin/sh\nprintf '{\"args\": [' ; sep=''; for a in \"$@\"; do printf '%s\"%s\"' \"$sep\" \"$a\"; sep=','; done; printf '], \"cwd\": \"%s\"}' \"$(pwd)\"\n";
/// A requirement no index has: installed, the job cannot succeed.
const UNINSTALLABLE: &str = "gitfaas-no-such-package-anywhere==9.9.9\n";

#[tokio::test(flavor = "multi_thread")]
async fn run_takes_entry_workdir_args_and_dependencies_skip() {
    let repo = git_repo(&[("tools/show", SHOW_ARGS), ("data/.keep", "")]);
    let run = gitfaas(&[
        "run",
        &format!("{repo}@main"),
        "--runtime",
        "command",
        "--entry",
        "tools/show",
        "--workdir",
        "data",
        "--args",
        "two words",
        "--args",
        "--flag",
    ])
    .await;
    let (code, stdout, stderr) = streams(&run);
    assert_eq!(code, Some(0), "{stderr}");
    let output: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(output, json!({"args": ["two words", "--flag"], "cwd": "/code/data"}));

    let repo = git_repo(&[("requirements.txt", UNINSTALLABLE), ("main.py", "def main(d, c):\n    return 'ran'\n")]);
    let at = format!("{repo}@main");
    let installed = gitfaas(&["run", &at, "--runtime", "python"]).await;
    assert_ne!(installed.status.code(), Some(0), "{}", streams(&installed).2);
    let skipped = gitfaas(&["run", &at, "--runtime", "python", "--dependencies", "skip"]).await;
    assert_eq!(streams(&skipped).0, Some(0), "{}", streams(&skipped).2);
    assert_eq!(streams(&skipped).1.trim(), "\"ran\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn fn_deploy_plans_the_function_at_its_commit_and_views_show_what_runs() {
    let handler = "exports.handler = (data) => ({handled: data});\n";
    let repo = git_repo(&[("svc/lib/fn.js", handler), ("gitfaas.toml", "runtime = \"node\"\n")]);
    let at = format!("{repo}@main");
    let name = unique("fn").to_lowercase();
    let deploy = ["fn", "deploy", &name, &at, "--entry", "svc/lib/fn.js:handler", "--workdir", "svc"];
    let deployed = gitfaas(&deploy).await;
    assert_eq!(streams(&deployed).0, Some(0), "{}", streams(&deployed).2);
    assert!(streams(&deployed).1.contains("runtime=- entry=svc/lib/fn.js:handler workdir=svc"), "{deployed:?}");
    let listed = streams(&gitfaas(&["fn", "ls"]).await).1;
    let line = listed.lines().find(|l| l.starts_with(&format!("{name}\t"))).expect("the function is listed");
    assert!(line.ends_with("runtime=- entry=svc/lib/fn.js:handler workdir=svc"), "{line}");
    let shown: Value = serde_json::from_str(&streams(&gitfaas(&["fn", "ls", "-o", "json"]).await).1).unwrap();
    let mine = shown["functions"].as_array().unwrap().iter().find(|f| f["name"] == name.as_str()).unwrap();
    assert_eq!(
        (&mine["current"]["entry"], &mine["current"]["workdir"]),
        (&json!("svc/lib/fn.js:handler"), &json!("svc"))
    );
    let invoked = gitfaas(&["fn", "invoke", &name, "--input", "5"]).await;
    assert_eq!(serde_json::from_str::<Value>(&streams(&invoked).1).unwrap(), json!({"handled": 5}));

    // a version is recorded only where the function can be planned
    for (args, why) in [
        (&["--entry", "svc/lib/gone.js"][..], "entry `svc/lib/gone.js` not found in the repository"),
        (&["--workdir", "nowhere"][..], "workdir `nowhere` must be a directory inside the repository"),
        (&["--runtime", "python"][..], "job asks for runtime `python` but the repository declares `node`"),
    ] {
        let refused = gitfaas(&[&["fn", "deploy", &name, &at][..], args].concat()).await;
        let (code, _, stderr) = streams(&refused);
        assert_ne!(code, Some(0), "{args:?}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    let unknown = git_repo(&[("gitfaas.toml", "runtime = \"cobol\"\n"), ("main", "")]);
    let refused = gitfaas(&["fn", "deploy", &name, &format!("{unknown}@main")]).await;
    assert!(streams(&refused).2.contains("runtime `cobol` is not offered"), "{refused:?}");
    let versions = streams(&gitfaas(&["fn", "versions", &name]).await).1;
    assert_eq!(versions.lines().count(), 1, "{versions}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_is_deployed_with_its_mode_and_args_and_invoked_by_name() {
    let repo = git_repo(&[("tools/echo.py", "import sys\nprint(' '.join(sys.argv[1:]))\n")]);
    let name = unique("script").to_lowercase();
    let at = format!("{repo}@main");
    let deploy = ["fn", "deploy", &name, &at, "--runtime", "python", "--mode", "script", "--entry", "tools/echo.py"];
    let deployed = gitfaas(&[&deploy[..], &["--args", "-v", "--args", "two words"]].concat()).await;
    assert_eq!(streams(&deployed).0, Some(0), "{}", streams(&deployed).2);
    assert!(streams(&deployed).1.trim_end().ends_with("workdir=- mode=script"), "{deployed:?}");
    let (code, stdout, stderr) = streams(&gitfaas(&["fn", "invoke", &name]).await);
    assert_eq!(
        (code, serde_json::from_str::<Value>(&stdout).ok()),
        (Some(0), Some(json!("-v two words\n"))),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fn_invoke_of_a_failing_function_says_why_on_stderr_and_nothing_on_stdout() {
    let repo = git_repo(&[("main.py", "def main(d, c):\n    raise ValueError('no good')\n")]);
    let name = unique("fails").to_lowercase();
    let deployed = gitfaas(&["fn", "deploy", &name, &format!("{repo}@main"), "--runtime", "python"]).await;
    assert_eq!(streams(&deployed).0, Some(0), "{}", streams(&deployed).2);
    let (code, stdout, stderr) = streams(&gitfaas(&["fn", "invoke", &name]).await);
    assert_eq!((code, stdout.as_str()), (Some(1), ""), "{stderr}");
    assert!(stderr.contains("failed: function raised ValueError: no good"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fn_state_lists_reads_and_deletes_a_functions_keys() {
    let main = "def main(data, credentials, ctx):\n    ctx.state.incr(data)\n    return ctx.state.get(data)\n";
    let (repo, name) = (git_repo(&[("main.py", main)]), unique("cli-state").to_lowercase());
    let deployed = gitfaas(&["fn", "deploy", &name, &format!("{repo}@main"), "--runtime", "python"]).await;
    assert_eq!(streams(&deployed).0, Some(0), "{}", streams(&deployed).2);
    for expected in ["1", "2"] {
        assert_eq!(streams(&gitfaas(&["fn", "invoke", &name, "--input", "\"w\""]).await).1.trim(), expected);
    }
    // the frontend's view follows the state topic: the second increment shows soon
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !streams(&gitfaas(&["fn", "state", &name]).await).1.lines().any(|l| l.split_whitespace().eq(["w", "2"])) {
        assert!(std::time::Instant::now() < deadline, "w never listed with 2");
    }
    assert_eq!(streams(&gitfaas(&["fn", "state", &name, "w"]).await).1.trim(), "2");
    assert_eq!(streams(&gitfaas(&["fn", "state", &name, "w", "--delete"]).await).0, Some(0));
    assert!(streams(&gitfaas(&["fn", "state", &name]).await).2.contains("has no state"));
}

#[test]
fn local_run_takes_entry_workdir_args_and_dependencies_skip() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in [("tools/show", SHOW_ARGS), ("data/.keep", ""), ("requirements.txt", UNINSTALLABLE)] {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, content).unwrap();
    }
    std::fs::set_permissions(dir.path().join("tools/show"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("data/fn.py"), "def main(d, c):\n    return 'local'\n").unwrap();
    let local = |args: &[&str]| {
        let mut command = std::process::Command::new(infra::bin_dir().join("gitfaas"));
        command.args(["local", "run"]).arg(dir.path()).args(args).arg("--config").arg(config_dir());
        streams(&command.env_remove("GITFAAS_CONFIG_DIR").output().expect("gitfaas runs"))
    };
    let args = ["--runtime", "command", "--entry", "tools/show", "--workdir", "data", "--args", "a b", "--args=-x"];
    let (code, stdout, stderr) = local(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), json!({"args": ["a b", "-x"], "cwd": "/code/data"}));
    let python = ["--runtime", "python", "--entry", "data/fn.py"];
    let (code, _, stderr) = local(&python);
    assert_ne!(code, Some(0), "the root's requirement is installed: {stderr}");
    let (code, stdout, stderr) = local(&[&python[..], &["--dependencies", "skip"]].concat());
    assert_eq!((code, stdout.trim()), (Some(0), "\"local\""), "{stderr}");
}

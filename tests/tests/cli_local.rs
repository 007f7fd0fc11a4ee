//! `gitfaas local run`: a function from a local directory, run by the real binary in
//! the executor's sandbox (real Docker, the runtime images), with no broker or
//! frontend — every runtime, a failure, a timeout, a refused plan, stderr printed live.

use std::path::Path;
use std::process::Output;

use gitfaas_tests::{config_dir, infra};

/// A directory holding `files` (a `#!` file is made executable).
fn function(files: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
        if content.starts_with("#!") {
            std::fs::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    dir
}

/// `gitfaas local run DIR args…` with the repository's config (or, with `cwd`, run
/// from that directory with no config at hand: the shipped defaults).
fn local_run(dir: &Path, args: &[&str], cwd: Option<&Path>) -> Output {
    let mut command = std::process::Command::new(infra::bin_dir().join("gitfaas"));
    command.args(["local", "run"]).arg(dir).args(args).env_remove("GITFAAS_CONFIG_DIR");
    match cwd {
        Some(cwd) => command.current_dir(cwd),
        None => command.arg("--config").arg(config_dir()),
    };
    command.output().expect("gitfaas runs")
}

fn streams(output: &Output) -> (Option<i32>, String, String) {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

#[test]
fn a_python_function_runs_locally_with_its_prints_on_stderr_and_its_return_on_stdout() {
    let main = "def main(data, credentials):\n    print('counting', len(data))\n    return {'words': len(data), 'creds': credentials}\n";
    let dir = function(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", main)]);
    let (code, stdout, stderr) = streams(&local_run(dir.path(), &["--input", r#"["a", "b"]"#], None));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap(),
        serde_json::json!({"words": 2, "creds": {}})
    );
    assert_eq!(stdout.lines().count(), 1, "one line of JSON in a pipe: {stdout}");
    assert!(
        stderr.contains("counting 2") && stderr.contains("succeeded (python in gitfaas/python:bookworm)"),
        "{stderr}"
    );
}

#[test]
fn a_node_function_runs_locally_with_the_shipped_defaults() {
    let main = "exports.main = async (data) => ({sum: data.reduce((a, b) => a + b, 0)});\n";
    let dir = function(&[("gitfaas.toml", "runtime = \"node\"\n"), ("main.js", main)]);
    let elsewhere = tempfile::tempdir().unwrap(); // no ./config there
    let (code, stdout, stderr) = streams(&local_run(dir.path(), &["--input", "[1, 2, 39]"], Some(elsewhere.path())));
    assert_eq!((code, stdout.as_str()), (Some(0), "{\"sum\":42}\n"), "{stderr}");
    assert!(stderr.contains("node in gitfaas/node:bookworm"), "{stderr}");
}

#[test]
fn a_command_function_reads_its_input_on_stdin_and_runs_sandboxed() {
    // no network but loopback, a read-only root, not root: as every job
    let main = "#!/bin/sh\nread input\nls /sys/class/net | tr '\\n' ' ' >&2\ntouch /x 2>/dev/null && echo writable >&2\necho \"{\\\"got\\\": $input, \\\"uid\\\": $(id -u)}\"\n";
    let dir = function(&[("gitfaas.toml", "runtime = \"command\"\n"), ("main", main)]);
    let (code, stdout, stderr) = streams(&local_run(dir.path(), &["--input", "{\"x\": 1}"], None));
    assert_eq!((code, stdout.as_str()), (Some(0), "{\"got\":{\"x\":1},\"uid\":65534}\n"), "{stderr}");
    assert!(stderr.starts_with("running ") && stderr.contains("lo \n"), "{stderr}");
    assert!(!stderr.contains("writable"), "{stderr}");
}

#[test]
fn failures_timeouts_and_refused_plans_have_their_exit_codes() {
    let failing =
        function(&[("gitfaas.toml", "runtime = \"command\"\n"), ("main", "#!/bin/sh\necho broken >&2\nexit 3\n")]);
    let (code, stdout, stderr) = streams(&local_run(failing.path(), &[], None));
    assert_eq!((code, stdout.as_str()), (Some(1), ""), "{stderr}");
    assert!(stderr.contains("broken") && stderr.contains("failed: function exited with code 3"), "{stderr}");

    let slow = function(&[("main.py", "import time\ndef main(data, credentials):\n    time.sleep(30)\n")]);
    let (code, stdout, stderr) = streams(&local_run(slow.path(), &["--runtime", "python", "--timeout", "1"], None));
    assert_eq!((code, stdout.as_str()), (Some(4), ""), "{stderr}");
    assert!(stderr.contains("timed_out: killed after the 1s timeout"), "{stderr}");

    let (code, _, stderr) = streams(&local_run(slow.path(), &[], None));
    assert_eq!(code, Some(3), "no manifest and no --runtime: {stderr}");
    assert!(stderr.contains("rejected: repository has no gitfaas.toml"), "{stderr}");
    let (code, _, stderr) = streams(&local_run(Path::new("/does/not/exist"), &[], None));
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn a_local_run_prints_the_functions_stderr_while_it_runs() {
    use std::io::BufRead;
    let main = "import time\ndef main(data):\n    print('tick', flush=True)\n    time.sleep(2)\n    \
        print('tock', flush=True)\n    return 1\n";
    let dir = function(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", main)]);
    let mut child = std::process::Command::new(infra::bin_dir().join("gitfaas"))
        .args(["local", "run"])
        .arg(dir.path())
        .arg("--config")
        .arg(config_dir())
        .env_remove("GITFAAS_CONFIG_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gitfaas runs");
    let lines: Vec<(String, std::time::Instant)> = std::io::BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(|line| (line.unwrap(), std::time::Instant::now()))
        .collect();
    assert!(child.wait().unwrap().success(), "{lines:?}");
    let at = |text: &str| lines.iter().find(|(l, _)| l == text).map(|(_, at)| *at).expect(text);
    let apart = at("tock") - at("tick");
    assert!(apart >= std::time::Duration::from_millis(1500), "`tick` came {apart:?} before `tock`: {lines:?}");
    assert_eq!(lines.iter().filter(|(l, _)| l == "tick").count(), 1, "printed once: {lines:?}");
}

#[test]
fn a_wasm_module_runs_locally_with_no_docker_engine() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gitfaas.toml"), "runtime = \"wasm\"\n").unwrap();
    let module = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 2048) "echoing\0a")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 1000))
            (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
            (i32.store (i32.const 4) (i32.load (i32.const 8)))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.const 8))
            (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("main.wasm"), module).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(infra::bin_dir().join("gitfaas"))
        .args(["local", "run"])
        .arg(dir.path())
        .args(["--input", r#"{"n": [1, 2]}"#])
        .env_remove("GITFAAS_CONFIG_DIR")
        .env("DOCKER_HOST", format!("unix://{}/no-docker.sock", cwd.path().display()))
        .current_dir(cwd.path())
        .output()
        .expect("gitfaas runs");
    let (code, stdout, stderr) = streams(&output);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap(), serde_json::json!({"n": [1, 2]}));
    assert!(stderr.contains("echoing") && stderr.contains("succeeded (wasm, in this process)"), "{stderr}");
}

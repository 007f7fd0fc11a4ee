//! An executor with only the wasm runtime runs with no Docker engine at all, and
//! beside a container executor (without wasm) no job is lost or failed for
//! reaching the wrong one: each hands the other's jobs over.

use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{config_dir, git_repo, git_repo_of, infra, kafka_settings, Stack};
use serde_json::json;
use std::process::{Child, Command, Stdio};

/// The executor binary with no container runtime (`images: {}`), the wasm
/// runtime on, and a Docker socket that does not exist; killed when dropped.
struct WasmOnly(Child);

impl Drop for WasmOnly {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_wasm_only(stack: &Stack, id: &str) -> (WasmOnly, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::copy(config_dir().join("base.yaml"), config.join("base.yaml")).unwrap();
    let executor = std::fs::read_to_string(config_dir().join("executor.yaml")).unwrap();
    let mut lines = executor.lines();
    let mut text = String::new();
    while let Some(line) = lines.next() {
        if line == "  images:" {
            text.push_str("  images: {}\n");
            let rest: Vec<&str> = lines.by_ref().skip_while(|l| l.starts_with("    ")).collect();
            text.push_str(&rest.join("\n"));
            break;
        }
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(config.join("executor.yaml"), text).unwrap();
    let kafka = kafka_settings(&stack.topic_prefix);
    let topics = serde_json::to_value(&kafka.topics).unwrap();
    let mut command = Command::new(infra::bin_dir().join("gitfaas-executor"));
    for (key, name) in topics.as_object().unwrap() {
        command.env(format!("GITFAAS__KAFKA__TOPICS__{}", key.to_uppercase()), name.as_str().unwrap());
    }
    let log = std::fs::File::create(state.path().join("executor.log")).unwrap();
    command
        .env("GITFAAS_CONFIG_DIR", &config)
        .env("DOCKER_HOST", format!("unix://{}/no-docker.sock", state.path().display()))
        .env("GITFAAS__KAFKA__BROKERS", &kafka.brokers)
        .env("GITFAAS__KAFKA__PARTITIONS", kafka.partitions.to_string())
        .env("GITFAAS__EXECUTOR__ID", id)
        .env("GITFAAS__EXECUTOR__GROUP_ID", format!("{}executors", stack.topic_prefix))
        .env("GITFAAS__EXECUTOR__WORK_DIR", state.path().join("work"))
        .env("GITFAAS__EXECUTOR__CACHE_DIR", state.path().join("cache"))
        .env("GITFAAS__EXECUTOR__WASM__CACHE_DIR", state.path().join("wasm"))
        .env("GITFAAS__EXECUTOR__METRICS_LISTEN", "127.0.0.1:0")
        .env("GITFAAS__EXECUTOR__POLICY__ALLOWED_RANGES", gitfaas_tests::LOOPBACK_RANGES)
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    (WasmOnly(command.spawn().expect("executor binary (scripts/test.sh builds it)")), state)
}

fn echo() -> Vec<u8> {
    wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 4000))
            (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
            (i32.store (i32.const 4) (i32.load (i32.const 8)))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasm_only_executor_needs_no_docker_and_jobs_of_either_kind_reach_the_executor_that_runs_them() {
    // the stack's own executor runs containers only
    let stack = Stack::start_with(true, Box::new(|_, executor| executor.executor.wasm.enabled = false));
    let wasm_only = format!("{}wasm-only", stack.topic_prefix);
    let (mut child, state) = start_wasm_only(&stack, &wasm_only);
    let wasm_repo = git_repo_of(&[("gitfaas.toml", b"runtime = \"wasm\"\n"), ("main.wasm", &echo())]);
    let python_repo =
        git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", "def main(d, c):\n    return d\n")]);
    let mut submitted = Vec::new();
    for n in 0..6 {
        let (repo, kind) = if n % 2 == 0 { (&wasm_repo, "wasm") } else { (&python_repo, "python") };
        submitted.push((kind, n, stack.submit_ok(&json!({"repo": repo, "input": {"n": n}})).await));
    }
    for (kind, n, id) in submitted {
        let result = finished(&stack, &id).await;
        assert_eq!(result["status"], "succeeded", "{kind}: {result}");
        assert_eq!(result["output"], json!({"n": n}));
        // wasm runs only where wasm is, the python job only where Docker is
        let expected = if kind == "wasm" { &wasm_only } else { &stack.executor_id };
        assert_eq!(result["executor_id"], json!(expected), "{kind}: {result}");
    }
    assert!(child.0.try_wait().unwrap().is_none(), "the wasm-only executor is still running");
    let log = std::fs::read_to_string(state.path().join("executor.log")).unwrap();
    assert!(log.contains("executor ready"), "{log}");
    drop(child);
}

//! The `wasm` runtime through the whole stack: a WASI command module from git,
//! run in the executor's process with the command runtime's contract, and its
//! hostile cousins ending in the statuses the container runtimes use.

use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{git_repo_of, Stack};
use serde_json::{json, Value};

const WASI: &str = "wasi_snapshot_preview1";

/// A module whose `_start` is `body`, with WASI's read, write and exit; `data`
/// at offset 256 of its one page of memory.
fn module(body: &str, data: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (import "{WASI}" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
          (import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (import "{WASI}" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 256) "{data}")
          (func $out (param $fd i32) (param $at i32) (param $len i32)
            (i32.store (i32.const 0) (local.get $at))
            (i32.store (i32.const 4) (local.get $len))
            (drop (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
          (func (export "_start") {body}))"#
    ))
    .expect("valid wat")
}

/// Echoes stdin to stdout and says so on stderr.
fn echo() -> Vec<u8> {
    module(
        "(i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 4096))
         (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
         (call $out (i32.const 1) (i32.const 1024) (i32.load (i32.const 8)))
         (call $out (i32.const 2) (i32.const 256) (i32.const 10))",
        "from wasm\\0a",
    )
}

async fn run(stack: &Stack, wasm: &[u8], job: Value) -> Value {
    let repo = git_repo_of(&[("gitfaas.toml", b"runtime = \"wasm\"\nentry = \"fn.wasm\"\n"), ("fn.wasm", wasm)]);
    let mut job = job;
    job["repo"] = json!(repo);
    let id = stack.submit_ok(&job).await;
    finished(stack, &id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wasm_job_gets_its_input_on_stdin_and_returns_its_stdout() {
    let stack = Stack::shared();
    let result = run(stack, &echo(), json!({"input": {"n": [1, 2]}})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"n": [1, 2]}));
    assert_eq!(result["stderr_tail"], "from wasm\n");
    assert_eq!(result["exit_code"], 0);
    // never warm: a fresh instance per invocation (the field is left out when false)
    assert_ne!(result["warm"], true, "{result}");
    // exit codes and args are the command runtime's
    // the job may name the runtime itself (the shipped frontend offers it)
    let exits = run(stack, &module("(call $exit (i32.const 7))", ""), json!({"args": ["a"], "runtime": "wasm"})).await;
    assert_eq!((&exits["status"], &exits["reason"]), (&json!("failed"), &json!("function exited with code 7")));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_modules_end_as_the_container_runtimes_do() {
    let stack = Stack::shared();
    let endless = run(stack, &module("(loop $l (br $l))", ""), json!({"timeout_secs": 1})).await;
    assert_eq!(endless["status"], "timed_out", "{endless}");
    let bomb = module("(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))", "");
    let bomb = run(stack, &bomb, json!({"resources": {"memory_mb": 32, "cpu_millis": 500, "pids": 16}})).await;
    assert_eq!((&bomb["status"], &bomb["reason"]), (&json!("oom_killed"), &json!("killed: out of memory")), "{bomb}");
    let deep = wat::parse_str("(module (func $f (call $f)) (func (export \"_start\") (call $f)))").unwrap();
    let deep = run(stack, &deep, json!({})).await;
    assert_eq!(deep["status"], "failed", "{deep}");
    assert!(deep["reason"].as_str().unwrap().starts_with("function trapped: "), "{deep}");
    let flood = module("(loop $l (call $out (i32.const 1) (i32.const 0) (i32.const 60000)) (br $l))", "");
    let flood = run(stack, &flood, json!({})).await;
    assert_eq!(flood["status"], "output_too_large", "{flood}");
    let foreign = wat::parse_str("(module (import \"env\" \"spawn\" (func)) (func (export \"_start\")))").unwrap();
    let foreign = run(stack, &foreign, json!({})).await;
    assert_eq!(foreign["status"], "rejected", "{foreign}");
    assert!(foreign["reason"].as_str().unwrap().contains("`env::spawn`"), "{foreign}");
    let garbage = run(stack, b"\0asm\x01\0\0\0not a module", json!({})).await;
    assert_eq!(garbage["status"], "rejected", "{garbage}");
    assert!(garbage["reason"].as_str().unwrap().starts_with("module `fn.wasm` is not a valid WebAssembly module"));
}

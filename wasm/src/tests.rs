//! The runtime against hand-written (WAT) modules, hostile ones included, and a
//! Go-built one when Go is on the machine.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::{Invocation, WasmError, WasmOutcome, WasmRuntime, WasmSettings};

const WASI: &str = "wasi_snapshot_preview1";

struct Fixture {
    dir: tempfile::TempDir,
    runtime: WasmRuntime,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let settings = WasmSettings { cache_dir: dir.path().join("cache"), pool_instances: 4, ..WasmSettings::default() };
    for sub in ["code", "input", "output"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    Fixture { runtime: WasmRuntime::new(&settings).unwrap(), dir }
}

impl Fixture {
    fn code(&self) -> PathBuf {
        self.dir.path().join("code")
    }

    /// Writes `wat` as `name` in the checkout.
    fn module(&self, name: &str, wat: &str) -> PathBuf {
        let path = self.code().join(name);
        std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
        path
    }

    fn invocation(&self, module: &Path, stdin: &[u8]) -> Invocation {
        Invocation {
            module: module.to_owned(),
            entry: module.file_name().unwrap().to_string_lossy().into_owned(),
            args: vec!["main".into()],
            stdin: stdin.to_vec(),
            code_dir: self.code(),
            input_dir: Some(self.dir.path().join("input")),
            output_dir: Some(self.dir.path().join("output")),
            memory_mb: 64,
            timeout: Duration::from_secs(20),
            stdout_max_bytes: 1 << 20,
            stderr_tail_bytes: 4096,
            stderr: Box::new(|_| {}),
            cancel: CancellationToken::new(),
        }
    }

    fn run(&self, module: &Path, stdin: &[u8]) -> WasmOutcome {
        self.runtime.invoke(self.invocation(module, stdin)).unwrap()
    }
}

/// A module whose `_start` is `body`, with WASI's read, write and exit, one page
/// of memory and `data` at offset 256.
fn program(body: &str, data: &str) -> String {
    format!(
        r#"(module
          (import "{WASI}" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
          (import "{WASI}" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (import "{WASI}" "proc_exit" (func $exit (param i32)))
          (import "{WASI}" "path_open"
            (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 256) "{data}")
          (func $out (param $fd i32) (param $at i32) (param $len i32)
            (i32.store (i32.const 0) (local.get $at))
            (i32.store (i32.const 4) (local.get $len))
            (drop (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
          (func (export "_start") {body}))"#
    )
}

#[test]
fn a_module_echoes_its_stdin_and_its_stderr_goes_to_the_outlet_and_the_tail() {
    let fx = fixture();
    let echo = program(
        "(i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 4096))
         (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
         (call $out (i32.const 1) (i32.const 1024) (i32.load (i32.const 8)))
         (call $out (i32.const 2) (i32.const 256) (i32.const 4))",
        "oops",
    );
    let module = fx.module("echo.wasm", &echo);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let outlet = seen.clone();
    let invocation = Invocation {
        stderr: Box::new(move |b| outlet.lock().unwrap().extend_from_slice(b)),
        ..fx.invocation(&module, b"{\"n\":[1,2]}")
    };
    let outcome = fx.runtime.invoke(invocation).unwrap();
    assert_eq!((outcome.exit_code, outcome.stdout.as_slice()), (Some(0), &b"{\"n\":[1,2]}"[..]));
    assert_eq!((outcome.stderr_tail.as_str(), seen.lock().unwrap().as_slice()), ("oops", &b"oops"[..]));
    let exits = fx.module("exit.wasm", &program("(call $exit (i32.const 3))", ""));
    assert_eq!(fx.run(&exits, b"").exit_code, Some(3));
}

#[test]
fn no_state_survives_between_two_invocations_of_one_module() {
    let fx = fixture();
    // bumps a byte of its data segment and prints it: a fresh instance prints 1 every time
    let counter = program(
        "(i32.store8 (i32.const 256) (i32.add (i32.load8_u (i32.const 256)) (i32.const 1)))
         (call $out (i32.const 1) (i32.const 256) (i32.const 1))",
        "0",
    );
    let module = fx.module("counter.wasm", &counter);
    for _ in 0..3 {
        assert_eq!(fx.run(&module, b"").stdout, b"1");
    }
}

#[test]
fn an_endless_loop_times_out_promptly_and_a_cancelled_run_stops() {
    let fx = fixture();
    let module = fx.module("loop.wasm", &program("(loop $l (br $l))", ""));
    let started = Instant::now();
    let outcome =
        fx.runtime.invoke(Invocation { timeout: Duration::from_millis(300), ..fx.invocation(&module, b"") }).unwrap();
    assert!(outcome.timed_out && outcome.exit_code.is_none(), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = fx.runtime.invoke(Invocation { cancel, ..fx.invocation(&module, b"") }).unwrap();
    assert!(outcome.cancelled && !outcome.timed_out, "{outcome:?}");
}

#[test]
fn memory_growth_past_the_limit_ends_the_run_as_out_of_memory() {
    let fx = fixture();
    let bomb = fx
        .module("bomb.wasm", &program("(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))", ""));
    let outcome = fx.runtime.invoke(Invocation { memory_mb: 8, ..fx.invocation(&bomb, b"") }).unwrap();
    assert!(outcome.memory_exceeded && outcome.exit_code.is_none(), "{outcome:?}");
    // a module declaring more memory than the job may have cannot even start
    let big = "(module (memory 512) (func (export \"_start\")))";
    let big = fx.module("big.wasm", big);
    let outcome = fx.runtime.invoke(Invocation { memory_mb: 8, ..fx.invocation(&big, b"") }).unwrap();
    assert!(outcome.memory_exceeded, "{outcome:?}");
}

#[test]
fn deep_recursion_traps_and_the_trap_says_why() {
    let fx = fixture();
    let deep = "(module (func $f (call $f)) (func (export \"_start\") (call $f)))";
    let outcome = fx.run(&fx.module("deep.wasm", deep), b"");
    let trap = outcome.trap.expect("a trap");
    assert!(trap.contains("call stack exhausted"), "{trap}");
    let unreachable = "(module (func (export \"_start\") unreachable))";
    let trap = fx.run(&fx.module("unreachable.wasm", unreachable), b"").trap.expect("a trap");
    assert!(trap.contains("unreachable"), "{trap}");
}

#[test]
fn a_huge_stdout_stops_the_run_at_its_cap() {
    let fx = fixture();
    let flood = fx.module(
        "flood.wasm",
        &program("(loop $l (call $out (i32.const 1) (i32.const 0) (i32.const 60000)) (br $l))", ""),
    );
    let outcome = fx.runtime.invoke(Invocation { stdout_max_bytes: 1 << 20, ..fx.invocation(&flood, b"") }).unwrap();
    assert!(outcome.stdout_overflow && outcome.exit_code.is_none(), "{outcome:?}");
    assert!(outcome.stdout.len() <= 1 << 20);
}

#[test]
fn paths_outside_the_preopens_cannot_be_opened() {
    let fx = fixture();
    std::fs::write(fx.dir.path().join("secret"), "host").unwrap();
    // path_open on the first preopen (fd 3, /code) of `path`; exits with its errno
    let open = |path: &str| {
        let body = format!(
            "(call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const {})
               (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))",
            path.len()
        );
        let outcome = fx.run(&fx.module("open.wasm", &program(&body, path)), b"");
        assert!(outcome.trap.is_none(), "{outcome:?}");
        outcome.exit_code
    };
    std::fs::write(fx.code().join("inside"), "x").unwrap();
    assert_eq!(open("inside"), Some(0));
    for outside in ["../secret", "/etc/passwd", "../../../../etc/passwd"] {
        assert_ne!(open(outside), Some(0), "{outside}");
    }
    std::os::unix::fs::symlink(fx.dir.path().join("secret"), fx.code().join("link")).unwrap();
    assert_ne!(open("link"), Some(0));
}

#[test]
fn bad_modules_are_refused_with_their_reason() {
    let fx = fixture();
    let foreign = "(module (import \"env\" \"launch\" (func)) (func (export \"_start\")))";
    let module = fx.module("foreign.wasm", foreign);
    let refused = fx.runtime.invoke(fx.invocation(&module, b"")).unwrap_err();
    assert_eq!(refused, WasmError::UnknownImport { entry: "foreign.wasm".into(), import: "env::launch".into() });
    assert!(refused.is_rejection());
    let garbage = fx.code().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0garbage").unwrap();
    let refused = fx.runtime.invoke(fx.invocation(&garbage, b"")).unwrap_err();
    assert!(matches!(&refused, WasmError::Invalid { entry, .. } if entry == "garbage.wasm"), "{refused}");
    let library = fx.module("library.wasm", "(module (func (export \"run\")))");
    assert_eq!(
        fx.runtime.invoke(fx.invocation(&library, b"")).unwrap_err(),
        WasmError::NotCommand { entry: "library.wasm".into() }
    );
    let huge = fx.code().join("huge.wasm");
    std::fs::File::create(&huge).unwrap().set_len(100 << 20).unwrap(); // sparse: no disk used
    assert_eq!(
        fx.runtime.invoke(fx.invocation(&huge, b"")).unwrap_err(),
        WasmError::TooLarge { entry: "huge.wasm".into(), max_mb: 64 }
    );
}

const GO_MAIN: &str = r#"package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	in, _ := io.ReadAll(os.Stdin)
	var input any
	if err := json.Unmarshal(in, &input); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	_, hostErr := os.ReadFile("/etc/hostname")
	code, codeErr := os.ReadFile("/code/data.txt")
	writeCodeErr := os.WriteFile("/code/new.txt", []byte("x"), 0o644)
	outputErr := os.WriteFile("/output/result.txt", []byte("written"), 0o644)
	fmt.Fprintln(os.Stderr, "hello from go")
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"input": input, "args": os.Args[1:], "env": len(os.Environ()),
		"host_readable": hostErr == nil, "code": string(code), "code_readable": codeErr == nil,
		"code_writable": writeCodeErr == nil, "output_writable": outputErr == nil,
	})
}
"#;

/// A Go-built WASI module (GOOS=wasip1), when Go (1.21 or later) is installed.
#[test]
fn a_go_built_module_runs_with_the_command_contract_and_its_preopens() {
    let fx = fixture();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("main.go"), GO_MAIN).unwrap();
    std::fs::write(src.path().join("go.mod"), "module hello\n\ngo 1.21\n").unwrap();
    let module = fx.code().join("main.wasm");
    let built = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&module)
        .arg(".")
        .current_dir(src.path())
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("GOFLAGS", "-mod=mod")
        .status();
    match built {
        Ok(status) => assert!(status.success(), "go build failed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return eprintln!("go is not installed; skipped"),
        Err(e) => panic!("go: {e}"),
    }
    std::fs::write(fx.code().join("data.txt"), "checked in").unwrap();
    let args = vec!["main.wasm".to_owned(), "a b".to_owned(), "ü".to_owned()];
    let outcome = fx.runtime.invoke(Invocation { args, ..fx.invocation(&module, br#"{"n":2}"#) }).unwrap();
    assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
    let output: serde_json::Value = serde_json::from_slice(&outcome.stdout).unwrap();
    assert_eq!(
        output,
        serde_json::json!({
            "input": {"n": 2}, "args": ["a b", "ü"], "env": 0, "host_readable": false,
            "code": "checked in", "code_readable": true, "code_writable": false, "output_writable": true,
        })
    );
    assert_eq!(outcome.stderr_tail, "hello from go\n");
    assert_eq!(std::fs::read_to_string(fx.dir.path().join("output/result.txt")).unwrap(), "written");
    assert!(!fx.code().join("new.txt").exists());
}

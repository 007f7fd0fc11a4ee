//! One invocation: a fresh store and instance of a prepared module, its WASI
//! context (arguments, stdin, stdout, stderr, preopened directories; nothing
//! else), its limits, and how its end reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::error::WasmError;
use crate::runtime::WasmRuntime;
use crate::streams::{Sink, Stderr, StderrOutlet, Stdout};

/// Where the checkout, the input and the output appear to the module.
pub const CODE_DIR: &str = "/code";
pub const INPUT_DIR: &str = "/input";
pub const OUTPUT_DIR: &str = "/output";

/// One run of a module.
pub struct Invocation {
    /// The module file, inside the checkout.
    pub module: PathBuf,
    /// The module as the job named it (for reasons).
    pub entry: String,
    /// The program's arguments, the first being its name.
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
    /// Preopened as `/code` (read-only), `/input` (read-only) and `/output`.
    pub code_dir: PathBuf,
    pub input_dir: Option<PathBuf>,
    pub output_dir: Option<PathBuf>,
    /// The most its linear memory may grow to (capped by the pool's slot).
    pub memory_mb: u32,
    pub timeout: Duration,
    pub stdout_max_bytes: usize,
    pub stderr_tail_bytes: usize,
    /// Stderr as it is written (the live log).
    pub stderr: StderrOutlet,
    pub cancel: CancellationToken,
}

/// How a run ended, in the terms the sandbox's outcome uses.
#[derive(Debug, Default)]
pub struct WasmOutcome {
    /// The code it exited with (`proc_exit`, or 0 when `_start` returned); none
    /// when it trapped or was stopped.
    pub exit_code: Option<i64>,
    pub stdout: Vec<u8>,
    pub stdout_overflow: bool,
    pub stderr_tail: String,
    pub timed_out: bool,
    /// Its memory would have grown past its limit.
    pub memory_exceeded: bool,
    pub cancelled: bool,
    /// The trap that ended it, for any other trap.
    pub trap: Option<String>,
    /// Its instantiation and run (the prepared module's), excluding compilation.
    pub took: Duration,
    /// This invocation compiled its module (or loaded it from the disk cache):
    /// the first of the module in this process.
    pub prepared: bool,
}

/// Why the epoch callback stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
enum Stopped {
    #[error("the run's time limit passed")]
    TimedOut,
    #[error("the job was cancelled")]
    Cancelled,
}

/// A store's data: its WASI context, its limits, and what stopped it.
pub(crate) struct State {
    pub(crate) wasi: WasiP1Ctx,
    limits: Limits,
    stopped: Option<Stopped>,
}

impl State {
    pub(crate) fn empty() -> Self {
        Self { wasi: WasiCtxBuilder::new().build_p1(), limits: Limits::default(), stopped: None }
    }
}

/// A run's memory and table bounds; one instance, one memory.
#[derive(Default)]
struct Limits {
    memory_bytes: usize,
    table_elements: usize,
    memory_exceeded: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("memory limit of {0} bytes reached")]
struct MemoryLimit(usize);

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::new(MemoryLimit(self.memory_bytes)));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

impl WasmRuntime {
    /// Runs `invocation` on a blocking thread; the thread is awaited.
    pub async fn run(self: Arc<Self>, invocation: Invocation) -> Result<WasmOutcome, WasmError> {
        tokio::task::spawn_blocking(move || self.invoke(invocation))
            .await
            .unwrap_or_else(|e| Err(WasmError::Host(format!("wasm run task failed: {e}"))))
    }

    /// Runs `invocation` on this thread, in a fresh instance, to its end.
    pub fn invoke(&self, invocation: Invocation) -> Result<WasmOutcome, WasmError> {
        let (pre, prepared) = self.prepare(&invocation.module, &invocation.entry)?;
        let clock = Instant::now();
        let stdout = Stdout::new(invocation.stdout_max_bytes);
        let stderr = Stderr::new(invocation.stderr_tail_bytes, invocation.stderr);
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&invocation.args)
            .stdin(MemoryInputPipe::new(invocation.stdin))
            .stdout(Sink::Stdout(stdout.clone()))
            .stderr(Sink::Stderr(stderr.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let dirs = [
            (Some(&invocation.code_dir), CODE_DIR, FsPerms::ReadOnly),
            (invocation.input_dir.as_ref(), INPUT_DIR, FsPerms::ReadOnly),
            (invocation.output_dir.as_ref(), OUTPUT_DIR, FsPerms::ReadWrite),
        ];
        for (host, guest, perms) in dirs {
            if let Some(host) = host {
                wasi.preopened_dir(host, guest, perms)
                    .map_err(|e| WasmError::Host(format!("opening {}: {e:#}", host.display())))?;
            }
        }
        let memory_mb = invocation.memory_mb.min(self.settings.max_memory_mb);
        let limits = Limits {
            memory_bytes: (memory_mb as usize) << 20,
            table_elements: self.settings.table_elements,
            memory_exceeded: false,
        };
        let mut store = Store::new(&self.engine, State { wasi: wasi.build_p1(), limits, stopped: None });
        store.limiter(|state| &mut state.limits);
        let (deadline, cancel) = (Instant::now() + invocation.timeout, invocation.cancel.clone());
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut context| {
            let stopped = match (cancel.is_cancelled(), Instant::now() >= deadline) {
                (true, _) => Stopped::Cancelled,
                (false, true) => Stopped::TimedOut,
                (false, false) => return Ok(UpdateDeadline::Continue(1)),
            };
            context.data_mut().stopped = Some(stopped);
            Err(wasmtime::Error::new(stopped))
        });
        let ended = pre.instantiate(&mut store).and_then(|instance| {
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call(&mut store, ())
        });
        let took = clock.elapsed();
        let state = store.into_data();
        let (stdout, stdout_overflow) = stdout.taken();
        let stderr_tail = stderr.tail();
        let mut outcome =
            WasmOutcome { stdout, stdout_overflow, stderr_tail, took, prepared, ..WasmOutcome::default() };
        match ended {
            Ok(()) => outcome.exit_code = Some(0),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) if !stdout_overflow => outcome.exit_code = Some(i64::from(exit.0)),
                _ if stdout_overflow => {}
                _ if state.stopped == Some(Stopped::Cancelled) => outcome.cancelled = true,
                _ if state.stopped == Some(Stopped::TimedOut) => outcome.timed_out = true,
                _ if state.limits.memory_exceeded => outcome.memory_exceeded = true,
                _ => outcome.trap = Some(trap_message(&e)),
            },
        }
        Ok(outcome)
    }
}

/// What a trap says: the trap's own words, else the innermost error's.
fn trap_message(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    }
}

//! The `wasm` runtime's run: a planned module run by the process's
//! [`WasmRuntime`] (no image, no container), its end read as a sandbox outcome so
//! the one [`interpret`] says what it means — the command runtime's contract and
//! results. Beyond it: a trap ends the job `failed` with the trap's words, memory
//! past the job's `memory_mb` is `oom_killed`, and a module that cannot run at
//! all (malformed, too large, importing what the host does not offer, not a
//! command) is `rejected` with why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gitfaas_common::schema::Attempt;
use gitfaas_common::JobResult;
use gitfaas_wasm::{Invocation, WasmError, WasmRuntime};
use tokio_util::sync::CancellationToken;

use crate::docker::SandboxOutcome;
use crate::logs::LogSink;
use crate::metrics::WasmMetrics;
use crate::outcome::interpret;
use crate::runtime::Launch;

/// One planned wasm run and its bounds.
pub struct WasmRun {
    pub launch: Launch,
    pub code_dir: PathBuf,
    pub input_dir: PathBuf,
    pub output_dir: PathBuf,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub stdout_max_bytes: usize,
    pub stderr_tail_bytes: usize,
    /// Its stderr as it is written (the live log).
    pub log: LogSink,
    pub metrics: WasmMetrics,
}

/// Runs `run` and reads its end as attempt `at`'s result; `Err` is the host's own
/// trouble (worth retrying elsewhere), never the module's.
pub async fn run_wasm(
    runtime: &Arc<WasmRuntime>,
    at: &Attempt,
    run: WasmRun,
    cancel: &CancellationToken,
) -> Result<JobResult, String> {
    let timeout_secs = u32::try_from(run.timeout.as_secs()).unwrap_or(u32::MAX);
    let (stdout_max, reading) = (run.stdout_max_bytes, run.launch.reading.clone());
    let entry = run.launch.command.first().cloned().unwrap_or_default();
    let (log, metrics) = (run.log, run.metrics);
    let invocation = Invocation {
        module: run.code_dir.join(&entry),
        entry,
        args: run.launch.command.clone(),
        stdin: run.launch.stdin.to_vec(),
        code_dir: run.code_dir,
        input_dir: Some(run.input_dir),
        output_dir: Some(run.output_dir),
        memory_mb: run.memory_mb,
        timeout: run.timeout,
        stdout_max_bytes: stdout_max,
        stderr_tail_bytes: run.stderr_tail_bytes,
        stderr: Box::new(move |bytes| log.push(bytes)),
        cancel: cancel.clone(),
    };
    let outcome = match runtime.clone().run(invocation).await {
        Ok(outcome) => outcome,
        Err(e @ WasmError::Host(_)) => return Err(e.to_string()),
        Err(e) => return Ok(JobResult::rejected(at, e.to_string())),
    };
    metrics.runs.observe(outcome.took.as_secs_f64());
    if outcome.prepared {
        metrics.prepared.inc();
    }
    if let Some(trap) = outcome.trap.filter(|_| !outcome.cancelled && !outcome.timed_out) {
        return Ok(JobResult::failed(at, format!("function trapped: {trap}")).with_process(None, outcome.stderr_tail));
    }
    let out = SandboxOutcome {
        exit_code: outcome.exit_code,
        stdout: outcome.stdout,
        stdout_overflow: outcome.stdout_overflow,
        stderr_tail: outcome.stderr_tail,
        timed_out: outcome.timed_out,
        oom_killed: outcome.memory_exceeded,
        cancelled: outcome.cancelled,
    };
    Ok(interpret(at, out, &reading, timeout_secs, stdout_max))
}

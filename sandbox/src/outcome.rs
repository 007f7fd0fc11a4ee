//! What a finished run of a function means, as one terminal result: the one
//! reading of a [`SandboxOutcome`], for jobs and for `gitfaas local run`.

use gitfaas_common::limits;
use gitfaas_common::schema::Attempt;
use gitfaas_common::JobResult;
use serde_json::Value;

use crate::docker::SandboxOutcome;

/// The terminal result of attempt `at` whose run ended as `out`.
pub fn interpret(at: &Attempt, out: SandboxOutcome, timeout_secs: u32, stdout_max_bytes: usize) -> JobResult {
    let result = if out.cancelled {
        JobResult::cancelled_while_running(at)
    } else if out.timed_out {
        JobResult::timed_out(at, timeout_secs)
    } else if out.stdout_overflow {
        JobResult::stdout_too_large(at, stdout_max_bytes)
    } else if out.oom_killed {
        JobResult::oom_killed(at)
    } else if out.exit_code != Some(0) {
        JobResult::exited_with(at, out.exit_code)
    } else {
        match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(value) if limits::check_depth(&value).is_err() => JobResult::bad_output(at, limits::LimitError::TooDeep),
            Ok(value) => JobResult::succeeded(at, value),
            // serde_json's own limit (128 levels) is past ours: the same reason
            Err(e) if e.to_string().starts_with("recursion limit exceeded") => {
                JobResult::bad_output(at, limits::LimitError::TooDeep)
            }
            Err(e) => JobResult::bad_output(at, format!("not valid json: {e}")),
        }
    };
    result.with_process(out.exit_code, out.stderr_tail)
}

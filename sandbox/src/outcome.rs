//! What a finished run of a function means, as one terminal result: the one
//! reading of a [`SandboxOutcome`], for jobs and for `gitfaas local run`.
//!
//! The python and node runners end a run whose function raised (on import or
//! on call) with the traceback and one last stderr line, `gitfaas: raised TYPE:
//! MESSAGE`; a failed run's reason is that line, so it says why rather than
//! only the exit code. An entry that names an export or function its module
//! does not define ends the run with `gitfaas: rejected: WHY`: the job is
//! `rejected` for that reason, as a missing entry file is by the plan; so is a
//! command script whose `#!` interpreter is not in the image.

use gitfaas_common::limits;
use gitfaas_common::schema::Attempt;
use gitfaas_common::state::Effects;
use gitfaas_common::JobResult;
use serde_json::Value;

use crate::docker::{SandboxError, SandboxOutcome};
use crate::runtime::{Interpreter, Reading};

/// The terminal result of attempt `at` whose run ended as `out`.
pub fn interpret(
    at: &Attempt,
    out: SandboxOutcome,
    reading: &Reading,
    timeout_secs: u32,
    stdout_max_bytes: usize,
) -> JobResult {
    // a runner's last line, when one of ours ran (a script's stderr is its own)
    let runner_failed = out.exit_code.filter(|code| *code != 0 && !reading.text_output);
    let result = if out.cancelled {
        JobResult::cancelled_while_running(at)
    } else if out.timed_out {
        JobResult::timed_out(at, timeout_secs)
    } else if out.stdout_overflow {
        JobResult::stdout_too_large(at, stdout_max_bytes)
    } else if out.oom_killed {
        JobResult::oom_killed(at)
    } else if let Some(why) = out.exit_code.filter(|code| *code != 0).and(unstartable(reading, &out.stderr_tail)) {
        JobResult::rejected(at, why)
    } else if let Some(why) = runner_failed.and(runner_refusal(&out.stderr_tail)) {
        JobResult::rejected(at, why)
    } else if let Some(raised) = runner_failed.and(raised(&out.stderr_tail)) {
        JobResult::failed(at, format!("function {raised}"))
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
            // a script's output is its text when it is not JSON
            Err(_) if reading.text_output => match String::from_utf8(out.stdout.clone()) {
                Ok(text) => JobResult::succeeded(at, Value::String(text)),
                Err(_) => JobResult::bad_output(at, "neither json nor UTF-8 text"),
            },
            Err(e) => JobResult::bad_output(at, format!("not valid json: {e}")),
        }
    };
    result.with_process(out.exit_code, out.stderr_tail)
}

/// A run given a context answers `{"value": V, "effects": E}` on stdout: this
/// leaves V as its stdout and returns E. A run that did not end with 0 (or was
/// stopped) keeps its stdout and has no effects; one whose stdout is not that
/// shape is refused with the reason (its output is bad).
pub fn take_effects(out: &mut SandboxOutcome, reading: &Reading) -> Result<Option<Effects>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope {
        value: Value,
        effects: Effects,
    }
    let stopped = out.cancelled || out.timed_out || out.stdout_overflow || out.oom_killed;
    if !reading.context || stopped || out.exit_code != Some(0) {
        return Ok(None);
    }
    let envelope: Envelope = serde_json::from_slice(&out.stdout).map_err(|e| match e.to_string() {
        // serde_json's own limit (128 levels) is past ours: the same reason as `interpret`'s
        text if text.starts_with("recursion limit exceeded") => limits::LimitError::TooDeep.to_string(),
        text => format!("not valid json: {text}"),
    })?;
    out.stdout = serde_json::to_vec(&envelope.value).expect("json values serialise");
    Ok(Some(envelope.effects))
}

/// The runners' last line for an exception, `gitfaas: raised …`: the words from
/// `raised` on, at most [`MAX_RAISED_CHARS`] of them.
fn raised(stderr_tail: &str) -> Option<String> {
    let raised = runner_line(stderr_tail)?;
    raised.starts_with("raised ").then(|| raised.chars().take(MAX_RAISED_CHARS).collect())
}

/// The runners' last line for an entry that names nothing to call (`gitfaas:
/// rejected: "handler.js" exports no function `go``): what the plan cannot see
/// in the checkout, so the run itself refuses it.
fn runner_refusal(stderr_tail: &str) -> Option<String> {
    runner_line(stderr_tail)?.strip_prefix("rejected: ").map(|why| why.chars().take(MAX_RAISED_CHARS).collect())
}

/// A command script whose `#!` interpreter the image lacks: the container's
/// runtime could not exec it and said so as the run's only line (runc's `exec
/// PATH: no such file or directory`).
fn unstartable(reading: &Reading, stderr_tail: &str) -> Option<String> {
    let it = reading.interpreter.as_ref()?;
    let last = stderr_tail.lines().rev().find(|line| !line.trim().is_empty())?;
    (last.trim_end() == format!("exec {}: no such file or directory", it.path)).then(|| cannot_start(it))
}

/// The reason for a start the container runtime refused because it could not
/// load a command script (gVisor's `failed to load PATH`, runc's `exec: "PATH"`
/// at start), or found no `#!/usr/bin/env NAME`'s NAME on the image's PATH
/// (runc's `exec: "NAME": executable file not found in $PATH`, gVisor's `error
/// finding executable "NAME" in PATH`): the job is rejected, never retried as the
/// executor's failure.
pub fn refused_start(reading: &Reading, error: &SandboxError) -> Option<String> {
    let (it, SandboxError::Docker(error)) = (reading.interpreter.as_ref()?, error) else { return None };
    let text = error.to_string();
    let mut named = vec![format!("failed to load {}:", it.path), format!("exec: \"{}\"", it.path)];
    if let Some(name) = &it.looked_up {
        // `#!/usr/bin/env NAME` runs as NAME: runc's and gVisor's words for no NAME on the PATH
        named
            .extend([format!("exec: \"{name}\": executable file not found"), format!("finding executable \"{name}\"")]);
    }
    named.iter().any(|n| text.contains(n)).then(|| cannot_start(it))
}

fn cannot_start(it: &Interpreter) -> String {
    if let Some(name) = &it.looked_up {
        return format!(
            "entry `{}` cannot start: its `#!` interpreter `{name}` (looked up by `{}`) is not on the PATH of the image `{}`",
            it.entry, it.interpreter, it.image
        );
    }
    format!(
        "entry `{}` cannot start: its `#!` interpreter `{}` is not in the image `{}`",
        it.entry, it.interpreter, it.image
    )
}

fn runner_line(stderr_tail: &str) -> Option<&str> {
    let last = stderr_tail.lines().rev().find(|line| !line.trim().is_empty())?;
    Some(last.strip_prefix("gitfaas: ")?.trim_end())
}

/// Bounds the reason a function's own exception message makes.
const MAX_RAISED_CHARS: usize = 600;

#[cfg(test)]
mod tests {
    use super::{raised, refused_start, runner_refusal};
    use crate::docker::SandboxError;
    use crate::runtime::{Interpreter, Reading};

    #[test]
    fn no_env_interpreter_on_the_images_path_is_a_start_refused_naming_it() {
        let reading = Reading {
            interpreter: Some(Interpreter {
                entry: "bin/py".into(),
                path: "/code/bin/py".into(),
                interpreter: "/usr/bin/env".into(),
                looked_up: Some("python3".into()),
                image: "busybox".into(),
            }),
            text_output: false,
            context: false,
        };
        let why = "entry `bin/py` cannot start: its `#!` interpreter `python3` (looked up by `/usr/bin/env`) \
                   is not on the PATH of the image `busybox`";
        let runc = "runc create failed: unable to start container process: exec: \"python3\": executable file not found in $PATH: unknown";
        let gvisor = "starting sandbox: error finding executable \"python3\" in PATH [/bin]: no such file or directory";
        for said in [runc, gvisor] {
            let error = SandboxError::Docker(bollard::errors::Error::DockerResponseServerError {
                status_code: 400,
                message: said.into(),
            });
            assert_eq!(refused_start(&reading, &error).as_deref(), Some(why));
        }
        let other = SandboxError::Docker(bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "exec: \"node\": executable file not found in $PATH".into(),
        });
        assert_eq!(refused_start(&reading, &other), None);
    }

    #[test]
    fn the_runners_refusal_of_an_entry_rejects_the_job() {
        let tail = "gitfaas: rejected: \"fn.js\" exports no function `go`\n";
        assert_eq!(runner_refusal(tail).as_deref(), Some("\"fn.js\" exports no function `go`"));
        assert_eq!(runner_refusal("gitfaas: raised X\n"), None);
        assert_eq!(runner_refusal("gitfaas: rejected: x\nprinted after\n"), None);
    }

    #[test]
    fn the_runners_last_line_for_an_exception_is_the_reason() {
        let tail = "Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'x'\n\
                    gitfaas: raised ModuleNotFoundError: No module named 'x' (while importing 'main.py')\n";
        assert_eq!(
            raised(tail).as_deref(),
            Some("raised ModuleNotFoundError: No module named 'x' (while importing 'main.py')")
        );
        assert_eq!(raised("gitfaas: raised ValueError\n\n").as_deref(), Some("raised ValueError"));
        assert_eq!(raised("gitfaas: raised X\nprinted after\n"), None);
        assert_eq!(raised("gitfaas: entry file 'x' not found\n"), None);
        assert_eq!(raised(""), None);
        assert_eq!(raised(&format!("gitfaas: raised {}", "y".repeat(900))).map(|r| r.len()), Some(600));
    }
}

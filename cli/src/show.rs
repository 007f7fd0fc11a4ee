//! How jobs, lists and results are printed: `--output json` prints what the API
//! answered (the same JSON value; see [`crate::escape`]); `table` a few aligned
//! columns or `key: value` lines. Everything printed goes through [`out!`] or
//! [`err!`], which show a terminal's control characters instead of sending them.

use std::io::IsTerminal;

use serde_json::Value;

use crate::args::Output;
use crate::escape;

/// `println!` with control characters shown ([`escape::text`]), that stops quietly
/// at a closed pipe (`gitfaas ls | head -1`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        let _ = writeln!(std::io::stdout(), "{}", $crate::escape::text(&text));
    }};
}
pub(crate) use out;

/// `eprintln!` with control characters shown ([`escape::text`]).
macro_rules! err {
    () => {
        eprintln!()
    };
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        eprintln!("{}", $crate::escape::text(&text));
    }};
}
pub(crate) use err;

/// Bytes on stdout, unchanged, a closed pipe ignored: only for what the CLI made
/// itself, or what the user asked to get raw (`logs --raw`).
pub fn raw(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
}

/// Text from a server on stdout, controls shown, a closed pipe ignored.
pub fn text(text: &str) {
    raw(escape::text(text).as_bytes());
}

/// A JSON value on stdout: pretty on a terminal, one line in a pipe.
pub fn json(value: &Value) {
    out!("{}", pretty(value));
}

/// A JSON value as text to print: pretty on a terminal, one line in a pipe; DEL and
/// C1 controls escaped as `\u00NN` (the same value).
fn pretty(value: &Value) -> String {
    let text = if std::io::stdout().is_terminal() {
        serde_json::to_string_pretty(value).expect("json values serialise")
    } else {
        value.to_string()
    };
    escape::json(&text).into_owned()
}

/// A field as one line of text: strings unquoted, absent as `-`, controls shown.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    escape::line(&text).into_owned()
}

fn pairs(value: &Value, keys: &[&str]) {
    for key in keys {
        if !value[*key].is_null() {
            out!("{:<13} {}", format!("{key}:"), cell(&value[*key]));
        }
    }
}

/// `gitfaas status`.
pub fn job(output: Output, view: &Value) {
    match output {
        Output::Json => json(view),
        Output::Table => pairs(
            view,
            &[
                "id",
                "status",
                "repo",
                "ref",
                "runtime",
                "attempt",
                "executor_id",
                "commit_sha",
                "submitted_at",
                "started_at",
                "finished_at",
                "cancel_requested_at",
            ],
        ),
    }
}

/// `gitfaas result` (and `run --output table`'s summary is on stderr instead).
pub fn result(output: Output, result: &Value) {
    match output {
        Output::Json => json(result),
        Output::Table => {
            pairs(result, &["job_id", "status", "reason", "exit_code", "commit_sha", "executor_id", "attempt"]);
            out!("{:<13} {}", "timings:", timings(result));
            if let Some(summary) = dependencies(&result["dependencies"]) {
                out!("{:<13} {summary}", "dependencies:");
            }
            for note in result["notes"].as_array().into_iter().flatten() {
                out!("{:<13} {}", "note:", cell(note));
            }
            if let Some(out) = result.get("output") {
                let pretty = serde_json::to_string_pretty(out).expect("json values serialise");
                out!("output:\n{}", escape::json(&pretty));
            }
        }
    }
}

/// `requirements.txt, built in 5210 ms` (or `reused`), when the run had a layer.
pub fn dependencies(build: &Value) -> Option<String> {
    let file = cell(build.get("file")?);
    let how = match build["built"].as_bool() {
        Some(true) => format!("built in {} ms", cell(&build["build_ms"])),
        _ => "a cached layer reused".into(),
    };
    Some(format!("{file}, {how}"))
}

/// `queue 1 ms, run 206 ms, total 207 ms`.
pub fn timings(result: &Value) -> String {
    let t = &result["timings"];
    format!("queue {} ms, run {} ms, total {} ms", cell(&t["queue_ms"]), cell(&t["run_ms"]), cell(&t["total_ms"]))
}

/// `gitfaas ls`.
pub fn list(output: Output, list: &Value) {
    if output == Output::Json {
        return json(list);
    }
    let columns = ["id", "status", "runtime", "submitted_at", "repo", "ref"];
    let jobs = list["jobs"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = jobs.iter().map(|job| columns.iter().map(|c| cell(&job[*c])).collect()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([columns[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
    if let Some(next) = list["next"].as_str() {
        err!("more: gitfaas ls --before {next}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_results_dependency_layer_is_one_line() {
        let built = json!({"file": "fns/a/requirements.txt", "built": true, "build_ms": 5210});
        assert_eq!(super::dependencies(&built).as_deref(), Some("fns/a/requirements.txt, built in 5210 ms"));
        let reused = json!({"file": "package.json", "built": false, "build_ms": 2});
        assert_eq!(super::dependencies(&reused).as_deref(), Some("package.json, a cached layer reused"));
        assert_eq!(super::dependencies(&serde_json::Value::Null), None);
    }
}

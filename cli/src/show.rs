//! How jobs, lists and results are printed: `--output json` prints what the API
//! answered, unchanged; `table` a few aligned columns or `key: value` lines.

use std::io::IsTerminal;

use serde_json::Value;

use crate::args::Output;

/// `println!` that stops quietly at a closed pipe (`gitfaas ls | head -1`) instead
/// of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use out;

/// Bytes on stdout, a closed pipe ignored.
pub fn raw(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
}

/// A JSON value on stdout: pretty on a terminal, one line in a pipe.
pub fn json(value: &Value) {
    if std::io::stdout().is_terminal() {
        out!("{}", serde_json::to_string_pretty(value).expect("json values serialise"));
    } else {
        out!("{value}");
    }
}

/// A field as text: strings unquoted, absent as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn pairs(value: &Value, keys: &[&str]) {
    for key in keys {
        if !value[*key].is_null() {
            out!("{:<13} {}", format!("{key}:"), text(&value[*key]));
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
            if let Some(out) = result.get("output") {
                out!("output:\n{}", serde_json::to_string_pretty(out).expect("json values serialise"));
            }
        }
    }
}

/// `queue 1 ms, run 206 ms, total 207 ms`.
pub fn timings(result: &Value) -> String {
    let t = &result["timings"];
    format!("queue {} ms, run {} ms, total {} ms", text(&t["queue_ms"]), text(&t["run_ms"]), text(&t["total_ms"]))
}

/// `gitfaas ls`.
pub fn list(output: Output, list: &Value) {
    if output == Output::Json {
        return json(list);
    }
    let columns = ["id", "status", "runtime", "submitted_at", "repo", "ref"];
    let jobs = list["jobs"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = jobs.iter().map(|job| columns.iter().map(|c| text(&job[*c])).collect()).collect();
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
        eprintln!("more: gitfaas ls --before {next}");
    }
}

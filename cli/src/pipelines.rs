//! `gitfaas pipeline …`: runs of named functions in order — start one and follow
//! it to its end (the last step's output JSON goes to stdout), see one, list
//! them, cancel one. A run exits like `run` does for a job.

use std::process::ExitCode;

use gitfaas_common::JobStatus;
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::Api;
use crate::args::{Output, PipelineCommand};
use crate::error::{exit_of, CliError};
use crate::show::{self, err, out};

/// How long each read of a running run is held for its end.
const WAIT_SECS: u64 = 30;

fn path(id: &str, rest: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/v1/pipelines/{id}{rest}")
}

pub async fn run(api: &Api, output: Output, command: PipelineCommand) -> Result<ExitCode, CliError> {
    match command {
        PipelineCommand::Run { steps, input } => {
            let input = crate::input::read(input.as_deref())?.unwrap_or(Value::Null);
            let body = json!({ "steps": steps, "input": input });
            let (_, started) = api.call(Method::POST, "/v1/pipelines", Some(&body), 0).await?;
            let id = started["id"].as_str().unwrap_or_default().to_owned();
            err!("pipeline run {id}: {} steps", steps.len());
            let run = follow(api, &id).await?;
            for step in run["steps"].as_array().into_iter().flatten() {
                err!("{}", step_line(step));
            }
            if let Some(reason) = run["reason"].as_str() {
                err!("{}: {reason}", run["status"].as_str().unwrap_or(""));
            }
            if output == Output::Json || run["status"] == "succeeded" {
                show::json(&run["output"]);
            }
            Ok(exit_of(status_of(&run)))
        }
        PipelineCommand::Status { id } => {
            let (_, run) = api.call(Method::GET, &path(&id, ""), None, 0).await?;
            print(output, &run);
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Ls => {
            let (_, list) = api.call(Method::GET, "/v1/pipelines", None, 0).await?;
            match output {
                Output::Json => show::json(&list),
                Output::Table => {
                    for run in list["runs"].as_array().into_iter().flatten() {
                        let steps: Vec<&str> = run["steps"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s["function"].as_str())
                            .collect();
                        let (id, status) = (run["id"].as_str().unwrap_or(""), run["status"].as_str().unwrap_or(""));
                        out!("{id}\t{status}\t{}", steps.join(" → "));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Cancel { id } => {
            let (_, run) = api.call(Method::POST, &path(&id, "/cancel"), None, 0).await?;
            err!("pipeline run {id}: {}", run["status"].as_str().unwrap_or(""));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the run, holding each read for its end, until it ends.
async fn follow(api: &Api, id: &str) -> Result<Value, CliError> {
    let mut last_step = None;
    loop {
        let (_, run) = api.call_held(Method::GET, &path(id, &format!("?wait={WAIT_SECS}")), None, 0, WAIT_SECS).await?;
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            return Ok(run);
        }
        let at = run["steps"].as_array().and_then(|s| s.iter().position(|s| s["status"] != "succeeded"));
        if at != last_step {
            if let Some(step) = at.and_then(|i| run["steps"].get(i)) {
                err!("{}", step_line(step));
            }
            last_step = at;
        }
    }
}

fn step_line(step: &Value) -> String {
    let elapsed = step["elapsed_ms"].as_u64().map(|ms| format!(" ({ms} ms)")).unwrap_or_default();
    let version = step["version"].as_u64().map(|v| format!(" v{v}")).unwrap_or_default();
    format!(
        "step {} {}{version}: {}{elapsed}",
        step["index"],
        step["function"].as_str().unwrap_or(""),
        step["status"].as_str().unwrap_or("")
    )
}

/// The exit of a run: that of a job with its status.
fn status_of(run: &Value) -> JobStatus {
    match run["status"].as_str() {
        Some("succeeded") => JobStatus::Succeeded,
        Some("cancelled") => JobStatus::Cancelled,
        _ => JobStatus::Failed,
    }
}

fn print(output: Output, run: &Value) {
    match output {
        Output::Json => show::json(run),
        Output::Table => {
            out!("{}\t{}", run["id"].as_str().unwrap_or(""), run["status"].as_str().unwrap_or(""));
            for step in run["steps"].as_array().into_iter().flatten() {
                out!("{}", step_line(step));
            }
            if let Some(reason) = run["reason"].as_str() {
                out!("{reason}");
            }
        }
    }
}

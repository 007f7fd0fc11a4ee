//! The commands on one job or the list: `status`, `result`, `logs`, `ls`, `cancel`, `rm`.

use std::process::ExitCode;

use gitfaas_common::JobStatus;
use serde_json::Value;

use crate::api::Api;
use crate::args::{LogsArgs, LsArgs, Output, ResultArgs};
use crate::error::{exit_of, CliError};
use crate::live::{LiveLog, Piece};
use crate::show::{self, err, out};

/// The longest wait the API takes in one request; longer waits are several.
pub const MAX_WAIT_SECS: u64 = 60;

pub async fn status(api: &Api, output: Output, id: &str) -> Result<(), CliError> {
    show::job(output, &api.status(id).await?);
    Ok(())
}

/// Waits up to `wait` seconds (in requests of at most a minute; `None`: until the
/// job ends) for the result.
pub async fn wait_for_result(api: &Api, id: &str, wait: Option<u64>) -> Result<Option<Value>, CliError> {
    let deadline = wait.and_then(|secs| std::time::Instant::now().checked_add(std::time::Duration::from_secs(secs)));
    loop {
        let left = deadline.map_or(MAX_WAIT_SECS, |d| d.saturating_duration_since(std::time::Instant::now()).as_secs());
        match api.result(id, left.min(MAX_WAIT_SECS)).await? {
            Some(result) => return Ok(Some(result)),
            None if left == 0 => return Ok(None),
            None => {}
        }
    }
}

/// The terminal status a result names.
pub fn status_of(result: &Value) -> Result<JobStatus, CliError> {
    serde_json::from_value(result["status"].clone())
        .map_err(|_| CliError::Protocol { url: "the result".into(), reason: format!("unknown status in {result}") })
}

/// `gitfaas result`: exits with the job's code, so scripts can branch on it.
pub async fn result(api: &Api, output: Output, args: &ResultArgs) -> Result<ExitCode, CliError> {
    match wait_for_result(api, &args.id, Some(args.wait)).await? {
        Some(result) => {
            show::result(output, &result);
            Ok(exit_of(status_of(&result)?))
        }
        None => {
            let view = api.status(&args.id).await?;
            Err(CliError::Api(crate::error::Problem {
                status: 409,
                title: "The job has not finished".into(),
                detail: Some(format!(
                    "its status is {}; wait with --wait SECS",
                    view["status"].as_str().unwrap_or("?")
                )),
                field: None,
            }))
        }
    }
}

/// `gitfaas logs`: the job's log so far; with `-f`, followed live until the job
/// ends. The log is this command's output: it goes to stdout.
pub async fn logs(api: &Api, args: &LogsArgs) -> Result<(), CliError> {
    // the log is the function's: its controls are shown, unless asked for raw
    let print = |text: &str| if args.raw { show::raw(text.as_bytes()) } else { show::text(text) };
    if !args.follow {
        print(&api.logs(&args.id).await?);
        return Ok(());
    }
    let mut live = LiveLog::open(api, &args.id).await?;
    loop {
        match live.next().await? {
            Some(Piece::Text(text)) => print(&text),
            Some(Piece::End(end)) => {
                err!("job {} ended {}", args.id, end["status"].as_str().unwrap_or("(erased)"));
                return Ok(());
            }
            None => {
                return Err(CliError::Protocol {
                    url: api.base().to_owned(),
                    reason: "the log stream closed before the job ended".into(),
                })
            }
        }
    }
}

fn show_status(view: &Value) -> &str {
    view["status"].as_str().unwrap_or("unknown")
}

pub async fn list(api: &Api, output: Output, args: &LsArgs) -> Result<(), CliError> {
    let list = api.list(args.status.as_deref(), args.limit, args.before.as_deref()).await?;
    show::list(output, &list);
    Ok(())
}

pub async fn cancel(api: &Api, output: Output, id: &str) -> Result<(), CliError> {
    let view = api.cancel(id).await?;
    match output {
        Output::Json => show::json(&view),
        Output::Table if view["cancel_requested_at"].is_string() => {
            out!("{id} {}: cancel requested, the executor is stopping it", show_status(&view))
        }
        Output::Table => out!("{id} {}", show_status(&view)),
    }
    Ok(())
}

pub async fn erase(api: &Api, id: &str) -> Result<(), CliError> {
    api.erase(id).await?;
    err!("erased {id}");
    Ok(())
}

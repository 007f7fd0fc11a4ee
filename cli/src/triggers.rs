//! `gitfaas trigger …`: schedules and topic bindings of your functions — make,
//! list, pause, resume, delete.

use std::process::ExitCode;

use reqwest::Method;
use serde_json::{json, Value};

use crate::api::Api;
use crate::args::{Output, TriggerCommand};
use crate::error::CliError;
use crate::show::{self, err, out};

fn path(name: &str, rest: &str) -> String {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("/v1/triggers/{name}{rest}")
}

pub async fn run(api: &Api, output: Output, command: TriggerCommand) -> Result<ExitCode, CliError> {
    let trigger = match command {
        TriggerCommand::Schedule { name, function, cron, timezone, catch_up, input } => {
            let mut schedule = json!({ "cron": cron, "missed": if catch_up { "catch_up" } else { "skip" } });
            if let Some(timezone) = timezone {
                schedule["timezone"] = timezone.into();
            }
            if let Some(input) = crate::input::read(input.as_deref())? {
                schedule["input"] = input;
            }
            let body = json!({ "function": function, "schedule": schedule });
            api.call(Method::PUT, &path(&name, ""), Some(&body), 0).await?.1
        }
        TriggerCommand::Bind { name, function, input, output: to, concurrency } => {
            let mut topic = json!({ "input": input });
            if let Some(to) = to {
                topic["output"] = to.into();
            }
            if let Some(concurrency) = concurrency {
                topic["concurrency"] = concurrency.into();
            }
            let body = json!({ "function": function, "topic": topic });
            api.call(Method::PUT, &path(&name, ""), Some(&body), 0).await?.1
        }
        TriggerCommand::Ls => {
            let (_, list) = api.call(Method::GET, "/v1/triggers", None, 0).await?;
            match output {
                Output::Json => show::json(&list),
                Output::Table => list["triggers"].as_array().into_iter().flatten().for_each(line),
            }
            return Ok(ExitCode::SUCCESS);
        }
        TriggerCommand::Pause { name } => api.call(Method::POST, &path(&name, "/pause"), None, 0).await?.1,
        TriggerCommand::Resume { name } => api.call(Method::POST, &path(&name, "/resume"), None, 0).await?.1,
        TriggerCommand::Rm { name } => {
            api.call(Method::DELETE, &path(&name, ""), None, 0).await?;
            err!("{name} deleted");
            return Ok(ExitCode::SUCCESS);
        }
    };
    match output {
        Output::Json => show::json(&trigger),
        Output::Table => line(&trigger),
    }
    Ok(ExitCode::SUCCESS)
}

/// NAME, FUNCTION, active|paused, what fires it, and a schedule's next tick.
fn line(t: &Value) {
    let source = if let Some(s) = t.get("schedule") {
        format!("schedule {} {}", s["cron"].as_str().unwrap_or(""), s["timezone"].as_str().unwrap_or(""))
    } else {
        let topic = &t["topic"];
        let to = topic["output"].as_str().map(|o| format!(" -> {o}")).unwrap_or_default();
        format!("topic {}{to}", topic["input"].as_str().unwrap_or(""))
    };
    out!(
        "{}\t{}\t{}\t{source}\t{}",
        t["name"].as_str().unwrap_or(""),
        t["function"].as_str().unwrap_or(""),
        if t["enabled"] == true { "active" } else { "paused" },
        t["next_tick"].as_str().unwrap_or("")
    );
}

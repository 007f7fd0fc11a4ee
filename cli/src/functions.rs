//! `gitfaas fn …`: named functions — deploy a version, invoke by name, list, see
//! versions, roll back, delete, read and delete their state. Invoking waits for
//! the result and exits like `run`.

use std::process::ExitCode;

use gitfaas_common::JobStatus;
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::Api;
use crate::args::{FnCommand, Output};
use crate::error::{exit_of, CliError};
use crate::escape;
use crate::jobs::{status_of, wait_for_result};
use crate::show::{self, err, out};

/// How long `invoke` asks the frontend to hold the answer for the result.
const INVOKE_WAIT_SECS: u64 = 30;
/// The longest the frontend holds a deployment while its ref is resolved.
const DEPLOY_HOLD_SECS: u64 = 60;

fn path(name: &str, rest: &str) -> String {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("/v1/functions/{name}{rest}")
}

pub async fn run(api: &Api, output: Output, command: FnCommand) -> Result<ExitCode, CliError> {
    match command {
        FnCommand::Deploy { name, repo, runtime, submodules, target } => {
            let (repo, git_ref) = match repo.rsplit_once('@').filter(|(url, _)| url.contains("://")) {
                Some((url, r)) => (url.to_owned(), Some(r.to_owned())),
                None => (repo, None),
            };
            let mut body = json!({ "repo": repo });
            if let Some(git_ref) = git_ref {
                body["ref"] = git_ref.into();
            }
            if let Some(runtime) = runtime {
                body["runtime"] = runtime.into();
            }
            if let Some(submodules) = submodules {
                body["submodules"] = submodules.into();
            }
            target.add_to(&mut body);
            err!("deploying {name} (an executor resolves the ref to a commit and plans the function there)");
            // the frontend holds a deployment up to a minute while an executor resolves its ref
            let (_, function) = api.call_held(Method::PUT, &path(&name, ""), Some(&body), 0, DEPLOY_HOLD_SECS).await?;
            let current = &function["current"];
            err!("{name} version {} at commit {}", current["version"], current["commit_sha"].as_str().unwrap_or("?"));
            print(output, &function);
            Ok(ExitCode::SUCCESS)
        }
        FnCommand::Invoke { name, input } => {
            let input = crate::input::read(input.as_deref())?.unwrap_or(Value::Null);
            let body = json!({ "input": input });
            let (status, answer) =
                api.call(Method::POST, &path(&name, "/invoke"), Some(&body), INVOKE_WAIT_SECS).await?;
            let result = if status == 200 {
                answer
            } else {
                let id = answer["id"].as_str().unwrap_or_default().to_owned();
                err!("job {id} is still running; waiting for its result");
                wait_for_result(api, &id, None).await?.unwrap_or(Value::Null)
            };
            let status = status_of(&result)?;
            // only a success has an output: a failure is its reason, on stderr
            match (status, result["reason"].as_str()) {
                (JobStatus::Succeeded, _) => show::json(&result["output"]),
                (_, Some(reason)) => err!("{name} {status}: {reason}"),
                (_, None) => err!("{name} {status}"),
            }
            Ok(exit_of(status))
        }
        FnCommand::Ls => {
            let (_, list) = api.call(Method::GET, "/v1/functions", None, 0).await?;
            match output {
                Output::Json => show::json(&list),
                Output::Table => {
                    for f in list["functions"].as_array().into_iter().flatten() {
                        let current = &f["current"];
                        let commit = current["commit_sha"].as_str().unwrap_or("").get(..12).unwrap_or("");
                        let (repo, git_ref) =
                            (current["repo"].as_str().unwrap_or(""), current["ref"].as_str().unwrap_or(""));
                        out!(
                            "{}\tv{}\t{commit}\t{repo}@{git_ref}\t{}",
                            f["name"].as_str().unwrap_or(""),
                            current["version"],
                            what_runs(current)
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FnCommand::Versions { name } => {
            let (_, versions) = api.call(Method::GET, &path(&name, "/versions"), None, 0).await?;
            match output {
                Output::Json => show::json(&versions),
                Output::Table => {
                    for v in versions["versions"].as_array().into_iter().flatten() {
                        let mark = if v["version"] == versions["current"] { "*" } else { " " };
                        out!(
                            "{mark} v{}\t{}\t{}\t{}",
                            v["version"],
                            v["commit_sha"].as_str().unwrap_or(""),
                            v["created_by"].as_str().unwrap_or(""),
                            v["created_at"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FnCommand::Rollback { name, version } => {
            let body = json!({ "version": version });
            let (_, function) = api.call(Method::POST, &path(&name, "/rollback"), Some(&body), 0).await?;
            err!("{name} is at version {}", function["current"]["version"]);
            print(output, &function);
            Ok(ExitCode::SUCCESS)
        }
        FnCommand::Rm { name } => {
            api.call(Method::DELETE, &path(&name, ""), None, 0).await?;
            err!("{name} deleted");
            Ok(ExitCode::SUCCESS)
        }
        FnCommand::State { name, key, prefix, delete } => {
            state(api, output, &name, key.as_deref(), prefix.as_deref(), delete).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `fn state`: NAME's keys and values (those starting with `prefix`), one key's
/// value, or `delete`: that key or every key.
async fn state(
    api: &Api,
    output: Output,
    name: &str,
    key: Option<&str>,
    prefix: Option<&str>,
    delete: bool,
) -> Result<(), CliError> {
    let route = match key {
        Some(key) => path(name, &format!("/state/{}", key_segment(key)?)),
        None => path(name, "/state"),
    };
    if delete {
        let (_, deleted) = api.call(Method::DELETE, &route, None, 0).await?;
        match (output, key) {
            (Output::Json, _) => show::json(&deleted),
            (Output::Table, Some(key)) => err!("{name}: deleted key {}", escape::line(key)),
            (Output::Table, None) => err!("{name}: deleted all its keys ({})", deleted["deleted"]),
        }
        return Ok(());
    }
    if key.is_some() {
        let (_, entry) = api.call(Method::GET, &route, None, 0).await?;
        match output {
            Output::Json => show::json(&entry),
            Output::Table => show::json(&entry["value"]),
        }
        return Ok(());
    }
    let route = match prefix {
        Some(prefix) => {
            let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("prefix", prefix).finish();
            format!("{route}?{query}")
        }
        None => route,
    };
    let (_, view) = api.call(Method::GET, &route, None, 0).await?;
    match output {
        Output::Json => show::json(&view),
        Output::Table => state_table(name, &view),
    }
    Ok(())
}

/// `KEY  VALUE` lines, the values as compact JSON, keys and values on one line each.
fn state_table(name: &str, view: &Value) {
    let rows: Vec<(String, String)> = view["keys"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| (escape::line(key).into_owned(), escape::line(&value.to_string()).into_owned()))
        .collect();
    if rows.is_empty() {
        err!("{name} has no state");
        return;
    }
    let width = rows.iter().map(|(key, _)| key.chars().count()).chain(["KEY".len()]).max().unwrap_or(0);
    out!("{:<width$}  VALUE", "KEY");
    for (key, value) in rows {
        out!("{key:<width$}  {value}");
    }
}

/// A state key as one path segment: every byte but the unreserved ones
/// percent-encoded (a `+` or a space kept apart, a `/` inside the segment). A key
/// of dots only would be a URL's `.`/`..` segment, resolved away (`DELETE
/// …/state/..` deleting the function itself): refused.
fn key_segment(key: &str) -> Result<String, CliError> {
    if key.chars().all(|c| c == '.') && key.len() <= 2 {
        return Err(CliError::Usage(format!(
            "the key `{key}` cannot be named in a URL; `gitfaas fn state NAME` lists it"
        )));
    }
    Ok(key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect())
}

fn print(output: Output, function: &Value) {
    match output {
        Output::Json => show::json(function),
        Output::Table => {
            let current = &function["current"];
            out!(
                "{}\tv{}\t{}\t{}",
                function["name"].as_str().unwrap_or(""),
                current["version"],
                current["commit_sha"].as_str().unwrap_or(""),
                what_runs(current)
            );
        }
    }
}

/// A version's runtime, entry and workdir as `runtime=… entry=… workdir=…`
/// (`-` for what the manifest or the default decides).
fn what_runs(version: &Value) -> String {
    let field = |key: &str| version[key].as_str().unwrap_or("-").to_owned();
    let mode = version["mode"].as_str().map(|mode| format!(" mode={mode}")).unwrap_or_default();
    format!("runtime={} entry={} workdir={}{mode}", field("runtime"), field("entry"), field("workdir"))
}

#[cfg(test)]
mod tests {
    use super::key_segment;

    #[test]
    fn a_state_key_is_one_path_segment() {
        assert_eq!(key_segment("w").unwrap(), "w");
        assert_eq!(key_segment("a b+c/d%e").unwrap(), "a%20b%2Bc%2Fd%25e");
        assert_eq!(key_segment("ü?#").unwrap(), "%C3%BC%3F%23");
        assert_eq!(key_segment("...").unwrap(), "...");
        assert!(key_segment(".").is_err() && key_segment("..").is_err());
    }
}

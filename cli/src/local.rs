//! `gitfaas local run`: the function in a local directory, run once in the
//! executor's sandbox through the sandbox library (`gitfaas_sandbox::run_local`),
//! with the executor's images and limits: from `--config`, `GITFAAS_CONFIG_DIR` or
//! `./config` when one has an `executor.yaml`, else the shipped defaults compiled in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use gitfaas_common::schema::{Mode, Resources};
use gitfaas_sandbox::{Chosen, LocalRun, SandboxSettings};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::args::LocalRunArgs;
use crate::error::{exit_of, CliError};
use crate::show::err;
use crate::{input, show};

const SHIPPED_BASE: &str = include_str!("../../config/base.yaml");
const SHIPPED_EXECUTOR: &str = include_str!("../../config/executor.yaml");
/// A job's default limits, as the shipped `config/frontend.yaml` sets them.
const DEFAULT_TIMEOUT_SECS: u32 = 60;
const DEFAULT_RESOURCES: Resources = Resources { memory_mb: 256, cpu_millis: 1000, pids: 128 };

pub async fn run(args: LocalRunArgs) -> Result<ExitCode, CliError> {
    let settings = settings(args.config.as_deref())?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        return Err(CliError::Usage(format!("{} is not a directory", dir.display())));
    }
    let input = input::read(args.input.as_deref())?.unwrap_or(Value::Null);
    let resources = Resources {
        memory_mb: args.memory_mb.unwrap_or(DEFAULT_RESOURCES.memory_mb),
        cpu_millis: args.cpu_millis.unwrap_or(DEFAULT_RESOURCES.cpu_millis),
        pids: DEFAULT_RESOURCES.pids,
    };
    let timeout = Duration::from_secs(u64::from(args.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)));
    let dependencies = !args.skip_dependencies && args.target.dependencies.as_deref() != Some("skip");
    let target = &args.target;
    let mode = target.mode.as_deref().map(|m| if m == "script" { Mode::Script } else { Mode::Function });
    let chosen = Chosen {
        entry: target.entry.as_deref(),
        args: &target.args,
        workdir: target.workdir.as_deref(),
        mode,
        context: None,
    };
    let run = LocalRun {
        dir: &dir,
        runtime: args.runtime.as_deref(),
        input: &input,
        resources,
        timeout,
        live_log: true,
        dependencies,
        chosen,
    };
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel(); // the container is killed and removed
        }
    });
    err!("running {} in the sandbox", dir.display());
    let outcome =
        gitfaas_sandbox::run_local(&settings, run, &cancel).await.map_err(|e| CliError::Local(format!("{e:#}")))?;
    // the function's stderr was printed live: only end its last line
    if !outcome.stderr_tail.is_empty() && !outcome.stderr_tail.ends_with('\n') {
        err!();
    }
    let reason = outcome.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    let image = match (outcome.runtime.as_str(), outcome.image.is_empty()) {
        ("", _) => String::new(),
        (runtime, true) => format!(" ({runtime}, in this process)"),
        (runtime, false) => format!(" ({runtime} in {})", outcome.image),
    };
    if let Some(build) = &outcome.dependencies {
        let build = serde_json::to_value(build).expect("json values serialise");
        err!("dependencies: {}", show::dependencies(&build).unwrap_or_default());
    }
    err!("{}{reason}{image}", outcome.status);
    if let Some(output) = &outcome.output {
        show::json(output);
    }
    Ok(exit_of(outcome.status))
}

/// The executor's files as a local run reads them: the sandbox's keys of the
/// `executor` section (the executor itself refuses keys it does not know).
#[derive(Deserialize)]
struct ExecutorFile {
    executor: SandboxSettings,
}

/// The sandbox's settings, layered as the executor loads them (files, then
/// `GITFAAS__*` variables).
fn settings(flag: Option<&Path>) -> Result<SandboxSettings, CliError> {
    let env_dir = std::env::var_os("GITFAAS_CONFIG_DIR").map(PathBuf::from);
    let chosen = flag.map(Path::to_owned).or(env_dir).or_else(|| Some(PathBuf::from("config")));
    let shipped;
    let dir = match chosen.filter(|d| d.join("executor.yaml").is_file()) {
        Some(dir) => dir,
        None if flag.is_some() => {
            return Err(CliError::Usage(format!("{} has no executor.yaml", flag.unwrap().display())))
        }
        None => {
            shipped = tempfile::tempdir().map_err(|e| CliError::Local(e.to_string()))?;
            for (name, text) in [("base.yaml", SHIPPED_BASE), ("executor.yaml", SHIPPED_EXECUTOR)] {
                std::fs::write(shipped.path().join(name), text).map_err(|e| CliError::Local(e.to_string()))?;
            }
            shipped.path().to_owned()
        }
    };
    let file: ExecutorFile = gitfaas_common::settings::load_from(&dir, "executor")
        .map_err(|e| CliError::Config(format!("{}: {e}", dir.display())))?;
    file.executor.validate().map_err(|e| CliError::Config(e.to_string()))?;
    Ok(file.executor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_run_reads_the_sandbox_keys_of_the_executors_files_and_needs_them_there() {
        let shipped = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config"));
        let sandbox = settings(Some(shipped)).unwrap();
        assert_eq!(sandbox.images["python"], "gitfaas/python:bookworm");
        assert_eq!((sandbox.oci_runtime.as_str(), sandbox.user.as_str()), ("runc", "65534:65534"));

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(settings(Some(empty.path())), Err(CliError::Usage(_))));
    }
}

//! `gitfaas`, the command-line client: a pure REST client of the frontend, plus a
//! local run of a function in the executor's own sandbox.
//!
//! - [`args`]: the command line (clap);
//! - [`config`]: the config directory, `config.toml`, and flag → env → file defaults;
//! - [`auth`]: `login` (device grant, client credentials), `logout`, the token cache;
//! - [`api`]: one method per REST route, refusals as problems; every answer read
//!   within a size bound and every request within timeouts;
//! - [`follow`]: `run` — submit, then follow queued → running → done;
//! - [`jobs`]: `status`, `result`, `logs`, `ls`, `cancel`, `rm`; [`live`]: a job's
//!   log followed over Server-Sent Events (`logs -f`, `run`);
//! - [`show`]: how a job, a list and a result are printed (table or json), through
//!   [`escape`], which shows a terminal's control characters instead of sending them;
//! - [`upstream`]: the pushed upstream commit of the current git checkout;
//! - [`pipelines`]: `pipeline run` (followed to its end), `status`, `ls`, `cancel`;
//! - [`local`]: `local run`, through the sandbox library the executor runs jobs with;
//! - [`error`]: the CLI's errors, their hints, and the exit codes.
//!
//! Everything a user pipes goes to stdout (a job's output JSON, ids, tables);
//! progress, logs and errors go to stderr.

mod api;
mod args;
mod auth;
mod config;
mod error;
mod escape;
mod follow;
mod functions;
mod input;
mod jobs;
mod live;
mod local;
mod pipelines;
mod show;
mod triggers;
mod upstream;

use std::process::ExitCode;

pub use crate::args::Cli;
use crate::args::{Command, LocalCommand};
use crate::config::Context;
use crate::error::CliError;

/// Runs one command line; what it printed is done, its exit code is returned.
pub async fn main(cli: Cli) -> ExitCode {
    let api_hint = cli.global.api.clone().unwrap_or_else(|| config::DEFAULT_API.into());
    match dispatch(cli).await {
        Ok(code) => code,
        Err(error) => {
            show::err!("error: {error}");
            if let Some(hint) = error.hint(&api_hint) {
                show::err!("hint: {hint}");
            }
            error.exit_code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let command = cli.command;
    if let Command::Completions { shell } = command {
        let mut clap_command = <Cli as clap::CommandFactory>::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut clap_command, "gitfaas", &mut script);
        show::raw(&script);
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Local(LocalCommand::Run(args)) = command {
        return local::run(args).await;
    }
    let ctx = Context::resolve(cli.global)?;
    let api = || async { auth::access_token(&ctx).await.map(|token| api::Api::new(&ctx.api, token, ctx.timeouts)) };
    let ok = |()| ExitCode::SUCCESS;
    match command {
        Command::Login(args) => auth::login(&ctx, args).await.map(ok),
        Command::Logout => {
            let had = auth::logout()?;
            show::err!("{}", if had { "logged out" } else { "no session to forget" });
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => follow::run(&api().await?, ctx.output, args).await,
        Command::Status(id) => jobs::status(&api().await?, ctx.output, &id.id).await.map(ok),
        Command::Result(args) => jobs::result(&api().await?, ctx.output, &args).await,
        Command::Logs(args) => jobs::logs(&api().await?, &args).await.map(ok),
        Command::Ls(args) => jobs::list(&api().await?, ctx.output, &args).await.map(ok),
        Command::Cancel(id) => jobs::cancel(&api().await?, ctx.output, &id.id).await.map(ok),
        Command::Rm(id) => jobs::erase(&api().await?, &id.id).await.map(ok),
        Command::Fn(command) => functions::run(&api().await?, ctx.output, command).await,
        Command::Trigger(command) => triggers::run(&api().await?, ctx.output, command).await,
        Command::Pipeline(command) => pipelines::run(&api().await?, ctx.output, command).await,
        Command::Completions { .. } | Command::Local(_) => unreachable!("handled above"),
    }
}

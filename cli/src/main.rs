use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    gitfaas_cli::main(gitfaas_cli::Cli::parse()).await
}

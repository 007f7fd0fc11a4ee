//! Starts and drains executor processes on this machine as the observer's reports ask.

use anyhow::Context;
use gitfaas_scaler::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading scaler configuration")?;
    let telemetry = gitfaas_common::telemetry::init("gitfaas-scaler", &settings.telemetry)?;
    let outcome = gitfaas_scaler::run(settings, gitfaas_common::shutdown::signal()).await;
    if let Err(error) = &outcome {
        tracing::error!(error = format!("{error:#}"), "scaler failed");
    }
    telemetry.shutdown();
    outcome
}

use anyhow::Context;
use gitfaas_executor::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading executor configuration")?;
    let telemetry = gitfaas_common::telemetry::init("gitfaas-executor", &settings.telemetry)?;
    let outcome = gitfaas_executor::run(settings, gitfaas_common::shutdown::signal()).await;
    if let Err(error) = &outcome {
        tracing::error!(error = format!("{error:#}"), "executor failed");
    }
    telemetry.shutdown();
    outcome
}

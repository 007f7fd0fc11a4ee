use anyhow::Context;
use gitfaas_frontend::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading frontend configuration")?;
    let telemetry = gitfaas_common::telemetry::init("gitfaas-frontend", &settings.telemetry)?;
    let outcome = gitfaas_frontend::run(settings, gitfaas_common::shutdown::signal()).await;
    if let Err(error) = &outcome {
        tracing::error!(error = format!("{error:#}"), "frontend failed");
    }
    telemetry.shutdown();
    outcome
}

use anyhow::Context;
use gitfaas_observer::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading observer configuration")?;
    let telemetry = gitfaas_common::telemetry::init("gitfaas-observer", &settings.telemetry)?;
    let outcome = gitfaas_observer::run(settings, gitfaas_common::shutdown::signal()).await;
    if let Err(error) = &outcome {
        tracing::error!(error = format!("{error:#}"), "observer failed");
    }
    telemetry.shutdown();
    outcome
}

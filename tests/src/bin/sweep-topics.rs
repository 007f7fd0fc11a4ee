//! Deletes the topics test runs left on the shared broker, so that it does not collect
//! thousands of partitions across runs (a broker with ~6,000 of them took longer than 90 s
//! to start).
//!   sweep-topics RUN…      topics of these runs (names holding `-RUN`, see `gitfaas_tests::unique`)
//!   sweep-topics --legacy  also the topics of runs from before run tags (`t-<12 hex>.…`)
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut legacy = false;
    let mut runs = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--legacy" => legacy = true,
            run if gitfaas_tests::is_run_tag(run) => runs.push(format!("-{run}")),
            other => anyhow::bail!("not a run tag: {other:?} (expected r + 6 hex digits, or --legacy)"),
        }
    }
    let brokers = gitfaas_tests::infra::brokers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
    let doomed: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|name| runs.iter().any(|run| name.contains(run.as_str())) || (legacy && is_legacy(name)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(60)));
    let mut failed = 0;
    for batch in doomed.chunks(200) {
        let names: Vec<&str> = batch.iter().map(String::as_str).collect();
        for outcome in admin.delete_topics(&names, &options).await? {
            if let Err((topic, code)) = outcome {
                failed += 1;
                eprintln!("sweep-topics: {topic}: {code}");
            }
        }
    }
    println!("sweep-topics: deleted {} topics on {brokers} ({failed} failed)", doomed.len() - failed);
    Ok(())
}

/// A test topic named before run tags: `<letters>-<12 hex>.<topic>`, e.g. `t-000ff00be52a.jobs`.
fn is_legacy(name: &str) -> bool {
    let Some((head, _)) = name.split_once('.') else { return false };
    let Some((kind, tail)) = head.rsplit_once('-') else { return false };
    !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        && tail.len() == 12
        && tail.bytes().all(|b| b.is_ascii_hexdigit())
}

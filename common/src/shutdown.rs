//! One signal path for every service: the first SIGINT/SIGTERM asks for a graceful
//! shutdown, a second one exits at once.

/// Completes on the first SIGINT or SIGTERM, and arms a watcher that exits the
/// process on the next one.
pub async fn signal() {
    wait_for_signal().await;
    tracing::info!("shutdown requested; send the signal again to exit now");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

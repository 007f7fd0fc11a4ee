//! Where the live log chunks of every run go: the logs topic.

use gitfaas_sandbox::Outlet;

/// The publisher the live log chunks of every run go out through (to the logs topic).
pub struct LogTopic {
    pub publisher: gitfaas_common::kafka::Publisher,
}

impl LogTopic {
    /// An outlet publishing one run's chunks in order, keyed by job id; a chunk the
    /// broker refuses is logged and skipped (a log is best effort, the result is not).
    pub(super) fn outlet(&self) -> Outlet {
        let publisher = self.publisher.clone();
        Box::new(move |chunk| {
            let publisher = publisher.clone();
            Box::pin(async move {
                if let Err(error) = publisher.publish(&chunk).await {
                    tracing::warn!(%error, seq = chunk.seq, "log chunk not published");
                }
            })
        })
    }
}

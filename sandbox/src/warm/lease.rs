//! A warm sandbox held by one run, from the moment it is taken (an idle one of
//! its key) or placed (a ready one claimed, or one started for it) until
//! [`WarmPool::finish`] gives it back or discards it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::docker::SandboxOutcome;
use crate::logs::LogSink;
use crate::workspace::Workspace;

use super::container::WarmContainer;
use super::{WarmKey, WarmPool};

pub struct Lease {
    pub(super) key: WarmKey,
    pub(super) container: Option<WarmContainer>,
    pub(super) pool: Arc<WarmPool>,
    /// Whether the sandbox had served an invocation before this one.
    pub warm: bool,
    /// Whether it was a ready sandbox, started before this run asked for it.
    pub ready: bool,
    pub(super) reusable: bool,
}

impl Lease {
    pub fn workspace(&self) -> &Workspace {
        &self.container.as_ref().expect("a lease holds its container until finished").workspace
    }

    /// The run ends without an invocation after it gave the sandbox something
    /// (its input): the sandbox serves no other.
    pub fn discard(&mut self) {
        self.reusable = false;
    }

    /// Runs the invocation; the lease remembers whether the sandbox may serve another.
    pub async fn invoke(
        &mut self,
        request: &[u8],
        timeout: Duration,
        log: &LogSink,
        cancel: &CancellationToken,
    ) -> SandboxOutcome {
        let container = self.container.as_mut().expect("a lease holds its container until finished");
        let invocation = container.invoke(&self.pool.sandbox, request, timeout, log, cancel).await;
        self.reusable = invocation.reusable;
        invocation.outcome
    }
}

impl Drop for Lease {
    /// A lease dropped before [`WarmPool::finish`] (an abandoned run) is discarded.
    fn drop(&mut self) {
        if let Some(container) = self.container.take() {
            self.pool.engine().release(self.key.memory_mb);
            self.pool.count();
            let sandbox = self.pool.sandbox.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { container.remove(&sandbox).await });
            }
        }
    }
}

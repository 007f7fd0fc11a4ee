//! A dependency build's container: a job sandbox's, but with the build's scratch
//! space and log tail, and — for an executor not running as root — its user.

use super::Sandbox;

impl Sandbox {
    /// This sandbox with a `/tmp` of `tmpfs_mb` MiB and a stderr tail of
    /// `stderr_tail_bytes` instead of the policy's: a dependency build's scratch
    /// space and log; run as this process' own user when that is not root.
    pub(crate) fn for_build(&self, tmpfs_mb: u32, stderr_tail_bytes: usize) -> Sandbox {
        let mut sandbox = self.clone();
        (sandbox.policy.tmpfs_mb, sandbox.policy.stderr_tail_bytes) = (tmpfs_mb, stderr_tail_bytes);
        // the executor seals what a build wrote: not being root, it can only seal its own files
        if let Some((uid, gid)) = crate::process::own_ids().filter(|(uid, _)| *uid != 0) {
            sandbox.policy.user = format!("{uid}:{gid}");
        }
        sandbox
    }
}

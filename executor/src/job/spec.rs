//! The container a run gets: its name, image, command, labels, mounts and limits.

use std::collections::HashMap;
use std::time::Duration;

use gitfaas_common::Job;
use gitfaas_sandbox::{Launch, LogSink, SandboxSpec, Workspace, EXECUTOR_LABEL, JOB_LABEL};

use super::{JobRunner, CODE_MOUNT};

impl JobRunner {
    pub(super) fn sandbox_spec(&self, job: &Job, launch: Launch, dirs: &Workspace, kind: &str) -> SandboxSpec {
        let suffix = uuid::Uuid::now_v7().simple().to_string(); // last hex digits are random
        SandboxSpec {
            name: format!("gitfaas-{kind}-{}-{}", job.id, &suffix[24..]),
            image: launch.image,
            command: launch.command,
            labels: HashMap::from([
                (EXECUTOR_LABEL.to_owned(), self.executor_id.clone()),
                (JOB_LABEL.to_owned(), job.id.to_string()),
            ]),
            code_dir: dirs.code(),
            code_mount: CODE_MOUNT.to_owned(),
            working_dir: launch.working_dir,
            input_dir: Some(dirs.input()),
            output_dir: Some(dirs.output()),
            job_network: self.settings.job_network,
            network: None,
            mounts: Vec::new(),
            env: launch.env,
            stdin: launch.stdin,
            memory_mb: job.spec.resources.memory_mb,
            cpu_millis: job.spec.resources.cpu_millis,
            pids: job.spec.resources.pids,
            timeout: Duration::from_secs(u64::from(job.spec.timeout_secs)),
            log: LogSink::off(),
        }
    }
}

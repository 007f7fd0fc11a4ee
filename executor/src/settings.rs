//! Executor configuration (`config/executor.yaml`, `GITFAAS__EXECUTOR__*`). The
//! sandbox's keys (images, container policy, logs, warm, dependencies) sit flat in
//! the `executor` section, as they always have; [`ExecutorSettings::sandbox`]
//! gathers them into the sandbox crate's settings, which check them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gitfaas_common::sealed::PrivateKey;
use gitfaas_common::settings::{KafkaSettings, SettingsError, TelemetrySettings};
use gitfaas_sandbox::{DependencySettings, SandboxSettings, WarmSettings, WasmSettings};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    pub executor: ExecutorSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSettings {
    /// Stable identity of this executor; containers it leaves behind after a crash
    /// are removed when an executor with the same id starts. Default: the host name.
    #[serde(default)]
    pub id: Option<String>,
    pub group_id: String,
    /// Jobs run at the same time.
    pub slots: usize,
    /// Jobs fetched ahead and kept waiting for a slot (the partitions are paused
    /// only once this many wait and every slot is busy): a slot that frees takes
    /// the next job at once instead of after a fetch. 0 pauses as soon as every
    /// slot is busy.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// How old a ref resolution may be and still serve a job: 0 (the default)
    /// resolves each job's ref against the git server unless a resolution started
    /// after the job was submitted; a window of w lets one made up to w before the
    /// submission serve it too (a push less than w before a submit may then be
    /// missed by that job).
    #[serde(default)]
    pub ref_freshness_ms: u64,
    /// Per-job checkouts are created (and removed) here.
    pub work_dir: PathBuf,
    /// Bare mirrors of the repositories jobs came from.
    pub cache_dir: PathBuf,
    pub max_repo_mb: u64,
    /// Bounds on one checkout: total bytes, files, largest file (a job's
    /// repository and its fetched submodules together).
    #[serde(default)]
    pub checkout: crate::tree::CheckoutLimits,
    /// How deep a job's `"submodules": "fetch"` goes: submodules of submodules
    /// nested deeper fail the job.
    #[serde(default = "default_max_submodule_depth")]
    pub max_submodule_depth: u32,
    /// Bounds of a named function's state and of one job's state changes and
    /// published records.
    #[serde(default)]
    pub state: gitfaas_common::state::StateLimits,
    /// Runtime name → image. Only these runtimes are offered.
    pub images: BTreeMap<String, String>,
    /// `runc`, or `runsc` (gVisor).
    pub oci_runtime: String,
    pub user: String,
    pub tmpfs_mb: u32,
    pub nofile: i64,
    pub stdout_max_bytes: usize,
    pub stderr_tail_bytes: usize,
    /// How long running jobs may take to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// How far back a starting executor reads cancel requests; at least the
    /// frontend's `job_ttl_secs` (older jobs expire anyway).
    #[serde(default = "default_cancel_lookback_secs")]
    pub cancel_lookback_secs: u64,
    /// How long jobs of a partition taken away by a rebalance may take to finish
    /// before they are abandoned (killed, no result; the new owner runs them).
    #[serde(default = "default_revoke_grace_secs")]
    pub revoke_grace_secs: u64,
    /// Retries of infrastructure failures, job expiry.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Repository schemes and hosts, data-link hosts, internal ranges allowed:
    /// the same shape as `frontend.policy`; the executor's is the authority.
    #[serde(default)]
    pub policy: gitfaas_common::policy::PolicySettings,
    /// Images a repository may name itself (`image = "..."` in `gitfaas.toml`).
    #[serde(default)]
    pub allowed_images: Vec<String>,
    /// Give each job a network of its own (bridge, no other containers on it).
    /// Off by default: jobs have no network interface but loopback.
    #[serde(default)]
    pub job_network: bool,
    /// Base64 X25519 private key opening sealed credentials
    /// (`GITFAAS__EXECUTOR__PRIVATE_KEY`); or read from `private_key_file`.
    #[serde(default)]
    pub private_key: Option<SecretString>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Caps on downloads into /input and uploads from /output.
    #[serde(default)]
    pub data: DataLimits,
    /// Warm sandboxes: on by default (`warm.enabled: false` turns them off).
    #[serde(default)]
    pub warm: WarmSettings,
    /// Address of the `/metrics`, `/health/live` and `/health/ready` listener
    /// (port 0 picks one); none when unset.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Live logs on the logs topic: per-job byte cap, chunk size, chunk interval.
    #[serde(default)]
    pub logs: gitfaas_common::logs::LogLimits,
    /// Package indexes, the layer cache and the bounds of dependency builds.
    #[serde(default)]
    pub dependencies: DependencySettings,
    /// The `wasm` runtime, run in this process: with no `images`, an executor
    /// needs no Docker engine.
    #[serde(default)]
    pub wasm: WasmSettings,
}

fn default_max_submodule_depth() -> u32 {
    3
}

fn default_prefetch() -> usize {
    4
}

fn default_cancel_lookback_secs() -> u64 {
    3600
}

fn default_revoke_grace_secs() -> u64 {
    10
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataLimits {
    /// Largest total of a job's downloaded sources.
    pub max_source_bytes: u64,
    /// Largest total of a job's uploaded outputs.
    pub max_output_bytes: u64,
    /// Time allowed for each download or upload.
    pub transfer_timeout_secs: u64,
    /// Most sources or sinks per job.
    pub max_links: usize,
}

impl Default for DataLimits {
    fn default() -> Self {
        Self { max_source_bytes: 64 << 20, max_output_bytes: 64 << 20, transfer_timeout_secs: 30, max_links: 16 }
    }
}

impl ExecutorSettings {
    /// The sandbox's own settings, out of this section's keys.
    pub fn sandbox(&self) -> SandboxSettings {
        SandboxSettings {
            images: self.images.clone(),
            allowed_images: self.allowed_images.clone(),
            oci_runtime: self.oci_runtime.clone(),
            user: self.user.clone(),
            tmpfs_mb: self.tmpfs_mb,
            nofile: self.nofile,
            stdout_max_bytes: self.stdout_max_bytes,
            stderr_tail_bytes: self.stderr_tail_bytes,
            job_network: self.job_network,
            logs: self.logs.clone(),
            warm: self.warm.clone(),
            dependencies: self.dependencies.clone(),
            wasm: self.wasm.clone(),
        }
    }

    /// The key that opens sealed credentials, if this executor has one.
    pub fn private_key(&self) -> Result<Option<PrivateKey>, SettingsError> {
        let bad = |e: &dyn std::fmt::Display| SettingsError::Invalid(format!("executor private key: {e}"));
        let text = match (&self.private_key, &self.private_key_file) {
            (Some(key), _) => zeroize::Zeroizing::new(key.expose_secret().to_owned()),
            (None, Some(path)) => zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(&e))?),
            (None, None) => return Ok(None),
        };
        PrivateKey::from_base64(&text).map(Some).map_err(|e| bad(&e))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Attempts after an infrastructure failure (Docker, disk) before the job is
    /// dead-lettered with a terminal `failed` result.
    pub infrastructure_retries: u32,
    /// First backoff between attempts; doubles each time, at most 30 s.
    pub retry_backoff_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self { infrastructure_retries: 3, retry_backoff_ms: 500 }
    }
}

impl Settings {
    pub fn load() -> Result<Self, SettingsError> {
        let settings: Self = gitfaas_common::settings::load("executor")?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let e = &self.executor;
        let invalid = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        if e.slots == 0 {
            return invalid("executor.slots must be at least 1");
        }
        if e.prefetch > 10_000 {
            return invalid("executor.prefetch must be at most 10000 (fetched jobs are held in memory)");
        }
        if e.ref_freshness_ms > 60_000 {
            return invalid("executor.ref_freshness_ms must be at most 60000");
        }
        e.sandbox().validate()?;
        if let Err(why) = e.policy.validate() {
            return invalid(&format!("executor.{why}"));
        }
        e.private_key()?;
        Ok(())
    }

    pub fn executor_id(&self) -> String {
        self.executor.id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "executor".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped files, with `extra` appended to the executor's section.
    fn shipped_with(extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
        std::fs::copy(format!("{config}/base.yaml"), dir.path().join("base.yaml")).unwrap();
        let executor = std::fs::read_to_string(format!("{config}/executor.yaml")).unwrap();
        std::fs::write(
            dir.path().join("executor.yaml"),
            executor.replacen("executor:\n", &format!("executor:\n{extra}"), 1),
        )
        .unwrap();
        dir
    }

    #[test]
    fn the_sandbox_keys_stay_flat_in_the_executor_section_and_unknown_keys_are_refused() {
        let dir = shipped_with("");
        let settings: Settings = gitfaas_common::settings::load_from(dir.path(), "executor").unwrap();
        settings.validate().unwrap();
        let sandbox = settings.executor.sandbox();
        assert_eq!(sandbox.images, settings.executor.images);
        assert_eq!((sandbox.user.as_str(), sandbox.tmpfs_mb), ("65534:65534", 64));
        assert_eq!(sandbox.warm.max_containers, settings.executor.warm.max_containers);

        let dir = shipped_with("  tmpfs_mbb: 32\n");
        let error = gitfaas_common::settings::load_from::<Settings>(dir.path(), "executor").unwrap_err();
        assert!(error.to_string().contains("tmpfs_mbb"), "{error}");

        // the sandbox's checks run on the executor's keys
        let mut settings = settings;
        settings.executor.user = "root".into();
        let refused = settings.validate().unwrap_err().to_string();
        assert!(refused.contains("executor.user must not be root"), "{refused}");
        for named in ["nobody", "65534:nogroup", "1:2:3", "65534:"] {
            settings.executor.user = named.into();
            let refused = settings.validate().unwrap_err().to_string();
            assert!(refused.contains("numeric"), "{named}: {refused}");
        }
        settings.executor.user = "1000".into();
        assert!(settings.validate().is_ok());
    }
}

//! The sandbox's settings: images offered, the container policy, live-log bounds,
//! warm sandboxes and dependency builds. They are keys of the executor's section
//! (`executor.images`, `executor.user`, `executor.warm`…, env
//! `GITFAAS__EXECUTOR__*`), so `gitfaas local run` reads them from the executor's
//! own files.
//!
//! The executor's settings keep these keys flat and convert into this struct
//! rather than embed it with `#[serde(flatten)]`: flattening buffers values
//! untyped, so a number-looking environment value (`GITFAAS__EXECUTOR__USER=1000`)
//! would no longer read as a string and errors would lose their key. Read on its
//! own (the CLI), the struct ignores the executor's other keys: the executor's
//! `deny_unknown_fields` is the one check of the whole section.

use std::collections::BTreeMap;

use gitfaas_common::logs::LogLimits;
use gitfaas_common::settings::SettingsError;
use serde::Deserialize;

use crate::deps::DependencySettings;
use crate::docker::SandboxPolicy;
use crate::warm::WarmSettings;
use gitfaas_wasm::WasmSettings;

#[derive(Clone, Debug, Deserialize)]
pub struct SandboxSettings {
    /// Runtime name → image. Only these runtimes are offered.
    pub images: BTreeMap<String, String>,
    /// Images a repository may name itself (`image = "..."` in `gitfaas.toml`).
    #[serde(default)]
    pub allowed_images: Vec<String>,
    /// `runc`, or `runsc` (gVisor).
    pub oci_runtime: String,
    pub user: String,
    pub tmpfs_mb: u32,
    pub nofile: i64,
    pub stdout_max_bytes: usize,
    pub stderr_tail_bytes: usize,
    /// Give each run a network of its own (bridge, no other containers on it).
    /// Off by default: runs have no network interface but loopback.
    #[serde(default)]
    pub job_network: bool,
    /// Live logs: per-run byte cap, chunk size, chunk interval.
    #[serde(default)]
    pub logs: LogLimits,
    /// Warm sandboxes: on by default (`warm.enabled: false` turns them off).
    #[serde(default)]
    pub warm: WarmSettings,
    /// Package indexes, the layer cache and the bounds of dependency builds.
    #[serde(default)]
    pub dependencies: DependencySettings,
    /// The `wasm` runtime (in-process, no Docker): off unless enabled.
    #[serde(default)]
    pub wasm: WasmSettings,
}

impl SandboxSettings {
    /// Why these settings are unusable, if they are; keys are named as the
    /// executor's section has them.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        if self.images.is_empty() && !self.wasm.enabled {
            return invalid(
                "executor.images must map at least one runtime to an image (or executor.wasm.enabled be true)",
            );
        }
        if !["runc", "runsc"].contains(&self.oci_runtime.as_str()) {
            return invalid("executor.oci_runtime must be `runc` or `runsc`");
        }
        if let Err(why) = self.logs.validate() {
            return invalid(&format!("executor.{why}"));
        }
        if let Err(why) = self.dependencies.validate() {
            return invalid(&format!("executor.{why}"));
        }
        if self.warm.enabled && (self.warm.max_containers == 0 || self.warm.memory_budget_mb == 0) {
            return invalid(
                "executor.warm.max_containers and memory_budget_mb must be at least 1 (or warm.enabled false)",
            );
        }
        if self.user.starts_with("0:") || self.user == "0" || self.user == "root" {
            return invalid("executor.user must not be root");
        }
        // a warm sandbox's runner switches to it by number (there is no passwd to read)
        let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !self.user.split(':').all(numeric) || self.user.split(':').count() > 2 {
            return invalid("executor.user must be a numeric `uid:gid` (or `uid`)");
        }
        Ok(())
    }

    /// The policy every container of these settings gets.
    pub fn policy(&self) -> SandboxPolicy {
        SandboxPolicy {
            oci_runtime: self.oci_runtime.clone(),
            user: self.user.clone(),
            tmpfs_mb: self.tmpfs_mb,
            nofile: self.nofile,
            stdout_max_bytes: self.stdout_max_bytes,
            stderr_tail_bytes: self.stderr_tail_bytes,
        }
    }
}

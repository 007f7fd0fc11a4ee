//! Scaler configuration (`config/scaler.yaml`, `GITFAAS__SCALER__*`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use gitfaas_common::settings::{host_name, KafkaSettings, SettingsError, TelemetrySettings};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    pub scaler: ScalerSettings,
}

/// Starts and stops executor processes on this machine as reports ask.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalerSettings {
    /// Names this scaler's events. Default: `scaler-<host name>`.
    #[serde(default)]
    pub id: Option<String>,
    /// Consumer group of the reports consumer (it assigns partitions itself and
    /// commits nothing, so the group only names it on the broker).
    pub group_id: String,
    pub executor_bin: PathBuf,
    /// Executors get the ids `<prefix>-1`, `<prefix>-2`, …; a freed number is reused,
    /// so a restarted executor cleans up containers its crashed namesake left.
    pub executor_id_prefix: String,
    /// Each executor's output goes to `<log_dir>/<executor id>.log`.
    pub log_dir: PathBuf,
    /// Extra environment of the executors (on top of the scaler's own).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A started executor that has sent no heartbeat yet counts as coming for this long.
    pub startup_timeout_secs: u64,
    /// A draining executor still running after this long is killed. Keep it above
    /// the executors' `shutdown_grace_secs`.
    pub drain_timeout_secs: u64,
    /// Address of the `/metrics`, `/health/live` and `/health/ready` listener
    /// (port 0 picks one); none when unset. The executors it starts pick a port
    /// each (`127.0.0.1:0`, in their logs) unless `env` sets
    /// `GITFAAS__EXECUTOR__METRICS_LISTEN`.
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

impl Settings {
    pub fn load() -> Result<Self, SettingsError> {
        let settings: Self = gitfaas_common::settings::load("scaler")?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.scaler.executor_id_prefix.is_empty() {
            return Err(SettingsError::Invalid("scaler.executor_id_prefix must not be empty".into()));
        }
        Ok(())
    }

    pub fn scaler_id(&self) -> String {
        self.scaler.id.clone().unwrap_or_else(|| format!("scaler-{}", host_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configuration_loads_and_validates() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let settings: Settings = gitfaas_common::settings::load_from(&dir, "scaler").unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.scaler.executor_id_prefix, "executor-auto");
    }

    #[test]
    fn an_empty_executor_id_prefix_is_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut settings: Settings = gitfaas_common::settings::load_from(&dir, "scaler").unwrap();
        settings.scaler.executor_id_prefix.clear();
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("executor_id_prefix"), "{error}");
    }
}

//! Observer and scaler configuration (`config/observer.yaml`, `GITFAAS__OBSERVER__*`,
//! `GITFAAS__SCALER__*`). `observer.params` are only the starting parameters: config
//! messages on the observer topic override them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gitfaas_common::observer::ObserverParams;
use gitfaas_common::settings::{KafkaSettings, SettingsError, TelemetrySettings};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    pub observer: ObserverSettings,
    #[serde(default)]
    pub scaler: Option<ScalerSettings>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserverSettings {
    /// Names this observer's reports. Default: the host name.
    #[serde(default)]
    pub id: Option<String>,
    pub group_id: String,
    /// How far back jobs and results are re-read on start, to rebuild the windows
    /// and the backlog; also how long job ids are remembered to spot duplicates.
    pub lookback_secs: u64,
    /// How often measurements are turned into a decision.
    pub evaluate_every_ms: u64,
    /// An executor without a heartbeat for this long no longer counts.
    pub worker_timeout_secs: u64,
    /// Slots of a worker when no heartbeat tells.
    pub default_slots: u32,
    /// Longest wait for the start-up replay before deciding on what is there.
    pub replay_timeout_secs: u64,
    pub params: ObserverParams,
}

/// Starts and stops executor processes on this machine as reports ask.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalerSettings {
    /// Names this scaler's events. Default: `scaler-<host name>`.
    #[serde(default)]
    pub id: Option<String>,
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
}

impl Settings {
    pub fn load() -> Result<Self, SettingsError> {
        let settings: Self = gitfaas_common::settings::load("observer")?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let o = &self.observer;
        let invalid = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        o.params.validate().map_err(|e| SettingsError::Invalid(format!("observer.params: {}", e.0)))?;
        if o.evaluate_every_ms == 0 || o.worker_timeout_secs == 0 || o.default_slots == 0 {
            return invalid("observer.evaluate_every_ms, worker_timeout_secs and default_slots must be positive");
        }
        if o.lookback_secs < o.params.rate_window_secs.max(o.params.latency_window_secs) {
            return invalid("observer.lookback_secs must cover the rate and latency windows");
        }
        if let Some(s) = &self.scaler {
            if s.executor_id_prefix.is_empty() {
                return invalid("scaler.executor_id_prefix must not be empty");
            }
        }
        Ok(())
    }

    pub fn observer_id(&self) -> String {
        self.observer.id.clone().unwrap_or_else(|| format!("observer-{}", host_name()))
    }
}

pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configuration_loads_and_validates() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let settings: Settings = gitfaas_common::settings::load_from(&dir, "observer").unwrap();
        settings.validate().unwrap();
        assert!(settings.scaler.is_some());
        assert_eq!(settings.observer.params, settings.observer.params.apply(&Default::default()).unwrap());
    }
}

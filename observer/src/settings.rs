//! Observer configuration (`config/observer.yaml`, `GITFAAS__OBSERVER__*`).
//! `observer.params` are only the starting parameters: config messages on the
//! observer topic override them.

use gitfaas_common::observer::ObserverParams;
use gitfaas_common::settings::{host_name, KafkaSettings, SettingsError, TelemetrySettings};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    pub observer: ObserverSettings,
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
    /// Address of the `/metrics`, `/health/live` and `/health/ready` listener
    /// (port 0 picks one); none when unset.
    #[serde(default)]
    pub metrics_listen: Option<String>,
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
        Ok(())
    }

    pub fn observer_id(&self) -> String {
        self.observer.id.clone().unwrap_or_else(|| format!("observer-{}", host_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configuration_loads_and_validates() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let settings: Settings = gitfaas_common::settings::load_from(&dir, "observer").unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.observer.params, settings.observer.params.apply(&Default::default()).unwrap());
    }
}

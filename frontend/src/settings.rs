//! Frontend configuration (`config/frontend.yaml`, `GITFAAS__FRONTEND__*`).

use gitfaas_common::settings::{KafkaSettings, SettingsError, TelemetrySettings};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    pub frontend: FrontendSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendSettings {
    /// `host:port`; port 0 picks a free port.
    pub listen: String,
    pub redis_url: String,
    /// Prefix of every Redis key this frontend writes.
    pub key_prefix: String,
    /// Consumer group reading the results topic into Redis.
    pub group_id: String,
    pub max_body_bytes: usize,
    pub limits: JobLimits,
    /// URL schemes a job's repository may use.
    pub allowed_schemes: Vec<String>,
    /// Runtimes a job may name.
    pub runtimes: Vec<String>,
    pub auth: AuthSettings,
}

/// Defaults for what a request leaves out, and the most it may ask for.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    pub timeout_secs: u32,
    pub max_timeout_secs: u32,
    pub memory_mb: u32,
    pub max_memory_mb: u32,
    pub cpu_millis: u32,
    pub max_cpu_millis: u32,
    pub pids: u32,
    pub max_pids: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthSettings {
    /// No authentication: every caller is the same `subject`. For local use only.
    None { subject: String },
}

impl Settings {
    pub fn load() -> Result<Self, SettingsError> {
        let settings: Self = gitfaas_common::settings::load("frontend")?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let l = &self.frontend.limits;
        let pairs = [
            ("timeout_secs", l.timeout_secs, l.max_timeout_secs),
            ("memory_mb", l.memory_mb, l.max_memory_mb),
            ("cpu_millis", l.cpu_millis, l.max_cpu_millis),
            ("pids", l.pids, l.max_pids),
        ];
        for (name, default, max) in pairs {
            if default == 0 || default > max {
                return Err(SettingsError::Invalid(format!("frontend.limits.{name} must be between 1 and max_{name}")));
            }
        }
        Ok(())
    }
}

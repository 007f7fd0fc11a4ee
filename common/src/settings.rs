//! Typed, layered configuration shared by the services.
//!
//! Layers, later wins: `<dir>/base.yaml`, `<dir>/<service>.yaml`,
//! `<dir>/<service>.<GITFAAS_ENV>.yaml` (optional), then environment variables
//! `GITFAAS__SECTION__KEY` (double underscore separates levels). `<dir>` is
//! `GITFAAS_CONFIG_DIR`, default `./config`. Each service defines its own settings
//! struct and embeds the shared sections below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("could not load configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Kafka connection and topics. `client` is handed to librdkafka unchanged
/// (e.g. `security.protocol`, `sasl.mechanism`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topics: TopicSettings,
    /// Partitions to create topics with when they do not exist.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default)]
    pub client: BTreeMap<String, String>,
}

fn default_partitions() -> i32 {
    4
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub jobs: String,
    pub results: String,
    pub observer: String,
    /// Control traffic to every executor (cancel requests).
    pub control: String,
    pub dead_letter: String,
    /// Named functions' definitions: compacted, one message per function.
    #[serde(default = "default_functions_topic")]
    pub functions: String,
    /// Live log chunks of running jobs, keyed by job id.
    #[serde(default = "default_logs_topic")]
    pub logs: String,
    /// Triggers' definitions: compacted, one message per trigger, one partition
    /// (whose consumer-group owner is the one active scheduler).
    #[serde(default = "default_triggers_topic")]
    pub triggers: String,
    /// Jobs handed over to executors with container runtimes by an executor
    /// without them (a wasm-only one), keyed by job id.
    #[serde(default = "default_jobs_containers_topic")]
    pub jobs_containers: String,
    /// Jobs handed over to executors with the wasm runtime by one without it.
    #[serde(default = "default_jobs_wasm_topic")]
    pub jobs_wasm: String,
    /// Named functions' state commits, keyed by function, kept forever: every
    /// state view is folded from it.
    #[serde(default = "default_state_topic")]
    pub state: String,
}

fn default_state_topic() -> String {
    "gitfaas.state".into()
}

fn default_jobs_containers_topic() -> String {
    "gitfaas.jobs-containers".into()
}

fn default_jobs_wasm_topic() -> String {
    "gitfaas.jobs-wasm".into()
}

fn default_triggers_topic() -> String {
    "gitfaas.triggers".into()
}

fn default_functions_topic() -> String {
    "gitfaas.functions".into()
}

fn default_logs_topic() -> String {
    "gitfaas.logs".into()
}

impl TopicSettings {
    /// Topic names with a common prefix, for isolated test runs.
    pub fn prefixed(prefix: &str) -> Self {
        Self {
            jobs: format!("{prefix}jobs"),
            results: format!("{prefix}results"),
            observer: format!("{prefix}observer"),
            control: format!("{prefix}control"),
            dead_letter: format!("{prefix}dead-letter"),
            functions: format!("{prefix}functions"),
            logs: format!("{prefix}logs"),
            triggers: format!("{prefix}triggers"),
            jobs_containers: format!("{prefix}jobs-containers"),
            jobs_wasm: format!("{prefix}jobs-wasm"),
            state: format!("{prefix}state"),
        }
    }

    pub fn all(&self) -> [&str; 11] {
        [
            &self.jobs,
            &self.results,
            &self.observer,
            &self.control,
            &self.dead_letter,
            &self.functions,
            &self.logs,
            &self.triggers,
            &self.jobs_containers,
            &self.jobs_wasm,
            &self.state,
        ]
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    #[serde(default)]
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter; `RUST_LOG` itself wins when set.
    #[serde(default = "default_filter")]
    pub log_filter: String,
    /// OTLP/HTTP endpoint (e.g. `http://127.0.0.1:4318/v1/traces`); no export when unset.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

fn default_filter() -> String {
    "info".into()
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { log_format: LogFormat::Pretty, log_filter: default_filter(), otlp_endpoint: None }
    }
}

/// The directory configuration files are read from.
pub fn config_dir() -> PathBuf {
    std::env::var_os("GITFAAS_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("config"))
}

/// This machine's host name (`/etc/hostname`), or `localhost`: the default id of the
/// services that name themselves after the machine they run on.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Loads `T` for `service` from the layers described in the module docs. A
/// section set only through the environment must still appear in the files (`{}`).
pub fn load<T: DeserializeOwned>(service: &str) -> Result<T, SettingsError> {
    load_from(&config_dir(), service)
}

pub fn load_from<T: DeserializeOwned>(dir: &Path, service: &str) -> Result<T, SettingsError> {
    let env = std::env::var("GITFAAS_ENV").ok();
    let mut files = config::Config::builder()
        .add_source(config::File::from(dir.join("base.yaml")).required(false))
        .add_source(config::File::from(dir.join(format!("{service}.yaml"))).required(false));
    if let Some(env) = env {
        files = files.add_source(config::File::from(dir.join(format!("{service}.{env}.yaml"))).required(false));
    }
    // Environment variables are read only for the sections this service's files
    // have: a shared environment (compose, a shell) may carry other services' keys.
    let sections: Vec<String> =
        files.build_cloned()?.try_deserialize::<BTreeMap<String, config::Value>>()?.into_keys().collect();
    let wanted = |key: &str| {
        let rest = key.strip_prefix("GITFAAS__").unwrap_or_default().to_ascii_lowercase();
        sections.iter().any(|section| rest.starts_with(&format!("{section}__")))
    };
    let vars: config::Map<String, String> = std::env::vars().filter(|(key, _)| wanted(key)).collect();
    let settings = files
        .add_source(
            config::Environment::with_prefix("GITFAAS")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(vars)),
        )
        .build()?;
    Ok(settings.try_deserialize()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        kafka: KafkaSettings,
        #[serde(default)]
        telemetry: TelemetrySettings,
        port: u16,
    }

    #[test]
    fn files_layer_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("gitfaas-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("base.yaml"),
            "kafka:\n  brokers: a:1\n  topics: {jobs: j, results: r, observer: o, control: c, dead_letter: d, functions: f}\n",
        )
        .unwrap();
        std::fs::write(dir.join("svc.yaml"), "port: 81\nkafka:\n  brokers: b:2\n").unwrap();
        let s: Sample = load_from(&dir, "svc").unwrap();
        assert_eq!(s.kafka.brokers, "b:2");
        assert_eq!(s.kafka.topics.jobs, "j");
        assert_eq!(s.port, 81);
        assert_eq!(s.telemetry.log_filter, "info");

        // the environment overrides the service's own sections and leaves others' alone
        std::env::set_var("GITFAAS__KAFKA__BROKERS", "env:3");
        std::env::set_var("GITFAAS__FRONTEND__LISTEN", "0.0.0.0:1");
        let s: Sample = load_from(&dir, "svc").unwrap();
        std::env::remove_var("GITFAAS__KAFKA__BROKERS");
        std::env::remove_var("GITFAAS__FRONTEND__LISTEN");
        assert_eq!(s.kafka.brokers, "env:3");

        // librdkafka keys have dots: they must stay whole keys of the pass-through map
        std::fs::write(dir.join("dots.yaml"), "port: 1\nkafka:\n  client:\n    session.timeout.ms: \"9000\"\n")
            .unwrap();
        let s: Sample = load_from(&dir, "dots").unwrap();
        assert_eq!(s.kafka.client.get("session.timeout.ms").map(String::as_str), Some("9000"), "{:?}", s.kafka.client);

        std::fs::write(dir.join("bad.yaml"), "port: 81\nportt: 82\n").unwrap();
        let err = load_from::<Sample>(&dir, "bad").unwrap_err().to_string();
        assert!(err.contains("portt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

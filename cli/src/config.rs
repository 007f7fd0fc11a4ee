//! Where the CLI keeps its state and how its defaults are layered: flag, then
//! environment (clap reads `GITFAAS_*`), then `config.toml` in the config directory
//! (`$XDG_CONFIG_HOME/gitfaas/`, else `~/.config/gitfaas/`), then built-in defaults.
//! The same goes for the HTTP timeouts (`--http-timeout`, `--connect-timeout`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::api::Timeouts;
use crate::args::{Global, Output};
use crate::error::CliError;

pub const DEFAULT_API: &str = "http://127.0.0.1:8080";
pub const DEFAULT_CLIENT_ID: &str = "gitfaas-cli";

/// `config.toml`: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub api: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub output: Option<Output>,
    /// Seconds, as `--http-timeout`.
    pub http_timeout: Option<u64>,
    /// Seconds, as `--connect-timeout`.
    pub connect_timeout: Option<u64>,
}

/// The directory of `config.toml` and the token cache.
pub fn dir() -> Result<PathBuf, CliError> {
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("gitfaas"));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or_else(|| {
        CliError::Config("neither XDG_CONFIG_HOME nor HOME is set: there is no config directory".into())
    })?;
    Ok(PathBuf::from(home).join(".config").join("gitfaas"))
}

impl FileConfig {
    pub fn load() -> Result<Self, CliError> {
        let path = dir()?.join("config.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| CliError::Config(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CliError::Config(format!("{}: {e}", path.display()))),
        }
    }
}

/// The resolved global settings every command uses.
#[derive(Debug)]
pub struct Context {
    pub api: String,
    pub token: Option<String>,
    pub output: Output,
    pub timeouts: Timeouts,
    pub file: FileConfig,
}

impl Context {
    pub fn resolve(global: Global) -> Result<Self, CliError> {
        let file = FileConfig::load()?;
        let api = global.api.or_else(|| file.api.clone()).unwrap_or_else(|| DEFAULT_API.into());
        let api = api.trim_end_matches('/').to_owned();
        url::Url::parse(&api).map_err(|e| CliError::Config(format!("api url `{api}`: {e}")))?;
        let output = global.output.or(file.output).unwrap_or(Output::Table);
        let secs = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file).filter(|s| *s > 0).map_or(default, Duration::from_secs)
        };
        let timeouts = Timeouts {
            connect: secs(global.connect_timeout, file.connect_timeout, Timeouts::DEFAULT.connect),
            overall: secs(global.http_timeout, file.http_timeout, Timeouts::DEFAULT.overall),
        };
        Ok(Self { api, token: global.token.filter(|t| !t.is_empty()), output, timeouts, file })
    }
}

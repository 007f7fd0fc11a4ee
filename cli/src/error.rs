//! What can go wrong in the CLI itself, with a hint for each, and the exit codes
//! (documented in `gitfaas --help`): a job's terminal status maps to 0/1/3/4/5, the
//! CLI's own failures to 2 (usage) or 6.

use std::process::ExitCode;

use gitfaas_common::JobStatus;

/// An RFC 7807 problem the frontend answered with.
#[derive(Debug, thiserror::Error)]
#[error("{title} ({status}){}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
    field.as_deref().map(|f| format!(" [field `{f}`]")).unwrap_or_default())]
pub struct Problem {
    pub status: u16,
    pub title: String,
    pub detail: Option<String>,
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Api(#[from] Problem),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("{url} did not answer in time")]
    TimedOut { url: String },
    #[error("{url} sent an answer larger than {} MiB; nothing of it was used", limit >> 20)]
    TooLarge { url: String, limit: usize },
    #[error("not logged in")]
    NotLoggedIn,
    #[error("login failed: {0}")]
    Login(String),
    #[error("git: {0}")]
    Git(String),
    #[error("local run: {0}")]
    Local(String),
    #[error("interrupted; job {id} goes on")]
    Interrupted { id: String },
}

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_REJECTED: u8 = 3;
pub const EXIT_TIMED_OUT: u8 = 4;
pub const EXIT_CANCELLED: u8 = 5;
pub const EXIT_ERROR: u8 = 6;
/// 128 + SIGINT, as a shell reports a process ended by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Interrupted { .. } => EXIT_INTERRUPTED,
            _ => EXIT_ERROR,
        })
    }

    /// What the user may do about it.
    pub fn hint(&self, api: &str) -> Option<String> {
        let hint = match self {
            CliError::Api(p) => match p.status {
                401 => "run `gitfaas login` (or set GITFAAS_TOKEN) and try again".into(),
                403 => "this needs a role your account lacks".into(),
                404 if p.title == "No such key" => "`gitfaas fn state NAME` lists the function's keys".into(),
                404 if p.detail.as_deref() == Some("function not found") => {
                    "`gitfaas fn ls` lists your functions".into()
                }
                404 => "no job of yours has that id: `gitfaas ls` lists them".into(),
                409 => "see the job's state with `gitfaas status ID`".into(),
                400 | 422 => "fix the named field and submit again".into(),
                413 => "the request is too large: send a smaller input".into(),
                429 | 503 => "the service is busy: try again in a few seconds".into(),
                _ => return None,
            },
            CliError::Unreachable { .. } => {
                format!("is the frontend up at {api}? set --api or GITFAAS_API (or `api` in config.toml)")
            }
            CliError::TimedOut { .. } => {
                "a slow server or network: raise --http-timeout / GITFAAS_HTTP_TIMEOUT (seconds, default 30) \
                 or --connect-timeout / GITFAAS_CONNECT_TIMEOUT (default 10)"
                    .into()
            }
            CliError::TooLarge { .. } => {
                "neither a gitfaas frontend nor an identity provider sends that much: check --api and the issuer".into()
            }
            CliError::NotLoggedIn => "run `gitfaas login`, or set GITFAAS_TOKEN".into(),
            CliError::Login(_) => "check --issuer and --client-id (or GITFAAS_ISSUER, GITFAAS_CLIENT_ID)".into(),
            CliError::Local(_) => "is Docker running and are the runtime images built (scripts/images.sh)?".into(),
            CliError::Interrupted { id } => {
                format!("`gitfaas result {id} --wait 60` waits for it, `gitfaas cancel {id}` stops it")
            }
            _ => return None,
        };
        Some(hint)
    }
}

/// The exit code of a job that ended with `status`.
pub fn exit_of(status: JobStatus) -> ExitCode {
    ExitCode::from(match status {
        JobStatus::Succeeded => 0,
        JobStatus::Rejected => EXIT_REJECTED,
        JobStatus::TimedOut => EXIT_TIMED_OUT,
        JobStatus::Cancelled => EXIT_CANCELLED,
        _ => EXIT_FAILED,
    })
}

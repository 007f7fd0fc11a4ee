//! The command line: every subcommand and flag, parsed by clap. Global flags take
//! their defaults from the environment, then the config file (see [`crate::config`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "Exit codes of `run`, `result` and `local run`:
  0  the job succeeded
  1  the job failed (also oom_killed, output_too_large, expired)
  2  usage error
  3  the job was rejected (policy, manifest, unknown runtime)
  4  the job timed out
  5  the job was cancelled
  6  the API, the identity provider or the sandbox refused or could not be reached
  130  interrupted while following (the job goes on)";

#[derive(Debug, Parser)]
#[command(name = "gitfaas", version, about = "Run functions from git on gitfaas, and manage your jobs", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The frontend's base URL [default: config file `api`, else http://127.0.0.1:8080]
    #[arg(long, global = true, env = "GITFAAS_API")]
    pub api: Option<String>,
    /// An access token to use instead of the one `gitfaas login` cached
    #[arg(long, global = true, env = "GITFAAS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How to print what a command shows [default: config file `output`, else table]
    #[arg(long, short = 'o', global = true, env = "GITFAAS_OUTPUT")]
    pub output: Option<Output>,
    /// Seconds a request to the API or the identity provider may take, answer
    /// included; a long-poll gets its wait on top, and a followed log may be silent
    /// this long (at least 30 s) [default: 30]
    #[arg(long, global = true, env = "GITFAAS_HTTP_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub http_timeout: Option<u64>,
    /// Seconds to wait for a connection to the API or the identity provider [default: 10]
    #[arg(long, global = true, env = "GITFAAS_CONNECT_TIMEOUT", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub connect_timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    Json,
    Table,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in: the device authorization grant (a URL and a code to open), or a client's credentials
    Login(LoginArgs),
    /// Forget the cached tokens
    Logout,
    /// Submit a job and follow it to its end; its output JSON goes to stdout
    Run(RunArgs),
    /// A job's status
    Status(IdArg),
    /// A finished job's result (`--wait` seconds for it to finish)
    Result(ResultArgs),
    /// A job's log so far, or followed live (-f) until the job ends
    Logs(LogsArgs),
    /// Your jobs, newest first
    Ls(LsArgs),
    /// Cancel a queued or running job
    Cancel(IdArg),
    /// Erase a finished job
    Rm(IdArg),
    /// Named functions: deploy, invoke by name, list, versions, roll back, delete, state
    #[command(subcommand, name = "fn")]
    Fn(FnCommand),
    /// Triggers of your functions: schedules and topic bindings
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Pipelines: run named functions in order, each one's output the next one's input
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Run a function from a local directory
    #[command(subcommand)]
    Local(LocalCommand),
    /// Print a shell completion script
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum FnCommand {
    /// Deploy a new version of NAME: REPO[@REF] resolved to a commit now
    Deploy {
        name: String,
        repo: String,
        /// The runtime the function expects (python, node, command)
        #[arg(long)]
        runtime: Option<String>,
        /// The repository's submodules: empty directories (the default) or fetched
        #[arg(long, value_parser = ["empty", "fetch"])]
        submodules: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Invoke NAME's current version; its output JSON goes to stdout
    Invoke {
        name: String,
        /// The input: JSON text, @FILE, or - for stdin
        #[arg(long, short)]
        input: Option<String>,
    },
    /// Your functions and their current versions
    Ls,
    /// NAME's kept versions (* marks the current one)
    Versions { name: String },
    /// Make an earlier version of NAME current again
    Rollback { name: String, version: u32 },
    /// Delete NAME and its versions
    Rm { name: String },
    /// NAME's state: its keys and values, one KEY's value, or (--delete) remove them
    State {
        name: String,
        /// The key to show (or with --delete, the one to remove)
        #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
        key: Option<String>,
        /// Only the keys starting with this
        #[arg(long, conflicts_with_all = ["key", "delete"])]
        prefix: Option<String>,
        /// Delete KEY, or without KEY every key of NAME
        #[arg(long)]
        delete: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Run FUNCTION on a cron schedule: each tick one job
    Schedule {
        name: String,
        function: String,
        /// Five fields (minute first), or six with seconds first
        cron: String,
        /// IANA time zone the expression is read in [default: UTC]
        #[arg(long)]
        timezone: Option<String>,
        /// Fire ticks missed while no scheduler ran (default: skip them)
        #[arg(long)]
        catch_up: bool,
        /// The input of every tick's job: JSON text, @FILE, or - for stdin
        #[arg(long, short)]
        input: Option<String>,
    },
    /// Run FUNCTION on each record of the Kafka topic INPUT (one the operator allows)
    Bind {
        name: String,
        function: String,
        input: String,
        /// Where succeeded jobs' outputs go, with the input record's key
        #[arg(long)]
        output: Option<String>,
        /// Records in flight at once, per frontend
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// Your triggers
    Ls,
    /// Stop NAME from making jobs
    Pause { name: String },
    /// Let NAME make jobs again (a schedule from its next tick on)
    Resume { name: String },
    /// Delete NAME (the jobs it made stay)
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Run STEPS (function names) in order and follow the run; the last output JSON goes to stdout
    Run {
        #[arg(required = true, num_args = 1..=16)]
        steps: Vec<String>,
        /// The first step's input: JSON text, @FILE, or - for stdin
        #[arg(long, short)]
        input: Option<String>,
    },
    /// A run: each step's function, status and timing
    Status { id: String },
    /// Your runs, newest first
    Ls,
    /// Cancel a run: its running step is cancelled, and no later one starts
    Cancel { id: String },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Use the client credentials grant (a confidential client) instead of the device grant
    #[arg(long)]
    pub client_credentials: bool,
    /// The OAuth client [default: config file `client_id`, else gitfaas-cli]
    #[arg(long, env = "GITFAAS_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The client's secret, for --client-credentials
    #[arg(long, env = "GITFAAS_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The OpenID issuer [default: config file `issuer`, else the one the frontend names]
    #[arg(long, env = "GITFAAS_ISSUER")]
    pub issuer: Option<String>,
    /// Scopes to ask for
    #[arg(long, default_value = "openid")]
    pub scope: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Repository URL, optionally with @REF (branch, tag or commit); default: the pushed
    /// upstream commit of the current git checkout's branch
    pub repo: Option<String>,
    /// The job's input: JSON text, @FILE, or - for stdin
    #[arg(long, short)]
    pub input: Option<String>,
    /// The runtime the job expects (python, node, command)
    #[arg(long)]
    pub runtime: Option<String>,
    /// The job's timeout in seconds
    #[arg(long)]
    pub timeout: Option<u32>,
    /// The repository's submodules: empty directories (the default, as git clone
    /// leaves them) or fetched at the commits they pin
    #[arg(long, value_parser = ["empty", "fetch"])]
    pub submodules: Option<String>,
    #[command(flatten)]
    pub target: Target,
    /// Print the job id and return at once instead of following the job
    #[arg(long, short)]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The job id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ResultArgs {
    pub id: String,
    /// Wait up to this many seconds for the job to finish
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub id: String,
    /// Follow the log live until the job ends
    #[arg(long, short)]
    pub follow: bool,
    /// Print the log's bytes unchanged, terminal control characters too (for a file;
    /// by default they are shown as `\xNN`)
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only jobs with this status (queued, running, succeeded, failed, …)
    #[arg(long)]
    pub status: Option<String>,
    /// Page size, 1 to 100
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only jobs older than this job id (the `next` of the previous page)
    #[arg(long)]
    pub before: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Run the function in DIR in the executor's sandbox (Docker), without broker or frontend
    Run(LocalRunArgs),
}

#[derive(Debug, Args)]
pub struct LocalRunArgs {
    /// The function's directory [default: .]
    pub dir: Option<PathBuf>,
    /// The input: JSON text, @FILE, or - for stdin
    #[arg(long, short)]
    pub input: Option<String>,
    /// The runtime, when the directory has no gitfaas.toml (or to check it)
    #[arg(long)]
    pub runtime: Option<String>,
    /// Timeout in seconds [default: the frontend's default limit]
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Memory limit in MiB
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// CPU quota in thousandths of a core
    #[arg(long)]
    pub cpu_millis: Option<u32>,
    /// Ignore the dependencies the directory declares (as --dependencies skip)
    #[arg(long)]
    pub skip_dependencies: bool,
    #[command(flatten)]
    pub target: Target,
    /// The gitfaas config directory to read the executor's images and limits from
    /// [default: GITFAAS_CONFIG_DIR, else ./config when it exists, else the shipped defaults]
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// What to run in the repository, over its manifest: the API's `entry`,
/// `workdir`, `args` and `dependencies`.
#[derive(Debug, Args, Default)]
pub struct Target {
    /// The entry over the manifest's: a file, python's `package.module:function`,
    /// node's `file.js:export`
    #[arg(long)]
    pub entry: Option<String>,
    /// The directory inside the repository the function runs in [default: its root]
    #[arg(long)]
    pub workdir: Option<String>,
    /// One argument of the command runtime's executable, passed exactly; repeat
    /// for each (`--args=-v` for one that starts with a dash)
    #[arg(long = "args", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Whether the dependencies the checkout declares (requirements.txt,
    /// package.json) are installed [default: install]
    #[arg(long, value_parser = ["install", "skip"])]
    pub dependencies: Option<String>,
    /// `script` runs a python or node entry as `python3 ENTRY ARGS…` (or `-m MODULE`
    /// as the first args) / `node ENTRY ARGS…`: input on stdin, stdout the output
    /// [default: the manifest's, else function]
    #[arg(long, value_parser = ["function", "script"])]
    pub mode: Option<String>,
}

impl Target {
    /// Adds the fields given to a submit or deploy body.
    pub fn add_to(&self, body: &mut serde_json::Value) {
        if let Some(entry) = &self.entry {
            body["entry"] = entry.as_str().into();
        }
        if let Some(workdir) = &self.workdir {
            body["workdir"] = workdir.as_str().into();
        }
        if !self.args.is_empty() {
            body["args"] = self.args.clone().into();
        }
        if let Some(dependencies) = &self.dependencies {
            body["dependencies"] = dependencies.as_str().into();
        }
        if let Some(mode) = &self.mode {
            body["mode"] = mode.as_str().into();
        }
    }
}

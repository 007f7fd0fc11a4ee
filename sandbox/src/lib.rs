//! gitfaas sandbox: runs a function from a directory on this machine, once, in a
//! locked-down Docker container, and says what its run means. The executor runs
//! each job's checkout through it; `gitfaas local run` runs a local directory
//! through it ([`run_local`]), so both get the same images, policy and reading of
//! the outcome.
//!
//! The boundary: everything between "a directory with code" and "a result" is
//! here; where the code comes from (Kafka jobs, git checkouts, sealed
//! credentials, data links) and where results go stay in the executor. The crate
//! depends on `common` only: no Kafka client, no git library.
//!
//! - `runtime`: the function contract (`gitfaas.toml`), turned into a [`Launch`]
//!   (image, command, stdin) by [`plan`]; the cold runners `runner.py`, `runner.js`;
//! - `docker`: the only code that talks to Docker — [`Sandbox::run`] takes a
//!   [`SandboxSpec`] and returns a [`SandboxOutcome`], under one [`SandboxPolicy`];
//!   `tail` keeps a run's stderr tail;
//! - `outcome`: [`interpret`], the one reading of an outcome as a job's result;
//! - `warm`: warm sandboxes kept between runs of one function, ready ones kept
//!   before any function asks, and their pool (a pure engine plus the containers);
//! - `deps`: dependencies a directory declares, built once into cached layers
//!   behind an `egress` proxy that reaches only the package index;
//! - `egress`: the CONNECT proxy that holds a connection to checked addresses
//!   (the executor's git fetches use it too), and [`quickack`], which it and the
//!   executor's `git://` transport set around their reads;
//! - `logs`: what a running function writes, redacted and capped, as chunks
//!   handed to an outlet (the logs topic, or a terminal);
//! - `wasm`: the `wasm` runtime's run, in this process through `gitfaas-wasm`
//!   (no container), read by the same [`interpret`];
//! - `workspace`: a run's `code`, `input` and `output` directories;
//! - `settings`: [`SandboxSettings`], the sandbox keys of the executor's section;
//! - `metrics`: what the sandbox and the warm pool count, registered by the caller;
//! - `local`: [`run_local`], one run of a local directory with no broker or git.

mod deps;
mod docker;
mod egress;
mod local;
mod logs;
mod metrics;
mod outcome;
mod process;
mod runtime;
mod settings;
mod tail;
mod warm;
mod wasm;
mod workspace;

pub use deps::{declares as declares_dependencies, Dependencies, DependencySettings, DepsError, Prepared};
pub use docker::seccomp;
pub use docker::{Sandbox, SandboxError, SandboxOutcome, SandboxPolicy, SandboxSpec, EXECUTOR_LABEL, JOB_LABEL};
pub use egress::{quickack, ConnectProxy};
pub use gitfaas_wasm::{WasmRuntime, WasmSettings};
pub use local::{run_local, LocalOutcome, LocalRun};
pub use logs::{LogSink, LogStreamer, Outlet, Redactor};
pub use metrics::{SandboxMetrics, WarmMetrics, WasmMetrics};
pub use outcome::{interpret, refused_start, take_effects};
pub use runtime::{plan, Chosen, Interpreter, Launch, ManifestError, Offer, Reading, WASM_RUNTIME};
pub use settings::SandboxSettings;
pub use warm::{owner_digest, warm_args, Function, Lease, ReadySettings, Template, WarmPool, WarmSettings, WARM_LABEL};
pub use wasm::{run_wasm, WasmRun};
pub use workspace::Workspace;

//! The function contract: how a repository declares its runtime, and how each
//! runtime is turned into a container command and stdin.
//!
//! A repository has `gitfaas.toml` at its root:
//!
//! ```toml
//! runtime = "python"   # or "node", "command", "wasm"
//! entry = "main.py"    # python: file defining main(data, credentials); default main.py
//!                      # node: module exporting main(data, credentials); default main.js,
//!                      #   or `file.js:handler` for another export
//!                      # command: executable reading JSON on stdin; default ./main
//!                      # wasm: WASI command module with the command contract; default main.wasm
//! image = "..."        # optional; only an image in `executor.allowed_images`
//! mode = "script"      # optional, python and node: run the entry as a script (see [`script`])
//! ```
//!
//! A job may name its own `entry` (for python also `package.module:function`, for
//! node `file.js:export`),
//! `workdir` and, for `command` and `wasm`, `args`; with a `runtime`, a repository needs no
//! manifest. Where they point is checked in [`entry`].

use std::collections::BTreeMap;
use std::path::Path;

use gitfaas_common::schema::Mode;
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

mod entry;
mod script;

pub const MANIFEST_FILE: &str = "gitfaas.toml";
/// A manifest is a few lines; anything longer is refused unread.
const MANIFEST_MAX_BYTES: u64 = 64 << 10;
const PYTHON_RUNNER: &str = include_str!("runner.py");
/// Where a dependency layer is mounted in a run (see `crate::deps`): here, below
/// both, since a script's search path names it.
pub(crate) const DEPS_MOUNT: &str = "/deps";
const NODE_RUNNER: &str = include_str!("runner.js");
/// The runtime that runs a WebAssembly module in the executor's own process (no
/// image, no container): see `crate::wasm`.
pub const WASM_RUNTIME: &str = "wasm";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("repository has no {MANIFEST_FILE} and the job names no runtime")]
    Missing,
    #[error("{MANIFEST_FILE} is invalid: {0}")]
    Invalid(String),
    /// A symlink, directory or oversized file; the message never says what it points at.
    #[error("{MANIFEST_FILE} must be a regular file of at most {MANIFEST_MAX_BYTES} bytes (not a symlink)")]
    NotRegular,
    #[error("runtime `{0}` is not offered by this executor (known: {1})")]
    UnknownRuntime(String, String),
    #[error("job asks for runtime `{requested}` but the repository declares `{declared}`")]
    Mismatch { requested: String, declared: String },
    #[error("entry `{0}` must be a relative path inside the repository")]
    BadEntry(String),
    #[error("entry `{0}` not found in the repository")]
    EntryMissing(String),
    #[error("workdir `{0}` must be a directory inside the repository")]
    BadWorkdir(String),
    #[error("{0}")]
    BadArgs(String),
    #[error("image `{0}` is not in this executor's allowed images")]
    ImageNotAllowed(String),
    #[error("entry `{0}` is not executable (its file has no x bit in the commit: `git update-index --chmod=+x {0}`)")]
    NotExecutable(String),
    #[error("entry `{0}` has a `#!` line that names no absolute interpreter path")]
    BadShebang(String),
    #[error("mode `script` is for the python and node runtimes, not `{0}`")]
    NoScripts(String),
}

impl ManifestError {
    /// The same refusal of a part of `entry` (a node entry's file), naming the
    /// whole entry as the job wrote it.
    fn naming(self, entry: &str) -> Self {
        match self {
            Self::BadEntry(_) => Self::BadEntry(entry.to_owned()),
            Self::EntryMissing(_) => Self::EntryMissing(entry.to_owned()),
            other => other,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    runtime: String,
    entry: Option<String>,
    image: Option<String>,
    mode: Option<Mode>,
}

/// A resolved plan for running a function. `stdin` may hold credentials: it is
/// zeroized on drop and left out of `Debug`.
#[derive(Clone, PartialEq)]
pub struct Launch {
    pub runtime: String,
    pub image: String,
    pub command: Vec<String>,
    /// The container's working directory (the code mount or a directory in it).
    pub working_dir: String,
    pub stdin: Zeroizing<Vec<u8>>,
    /// The entry's directory relative to the checkout (`.` for its root): a file
    /// entry's parent, a python module's package directory under the workdir.
    /// Where the search for its dependency declaration starts.
    pub entry_dir: String,
    /// How the run's end is read (see [`crate::outcome`]).
    pub reading: Reading,
    /// `NAME=value` for the container (a script's search path).
    pub env: Vec<String>,
}

/// What reading a run's end needs of its plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// A command entry's `#!` interpreter, with the entry (as the job named it)
    /// and the image: a run the image cannot start is rejected naming them.
    pub interpreter: Option<Interpreter>,
    /// A script's stdout is its output as JSON when it parses, else as text.
    pub text_output: bool,
    /// The runner was given a context: its stdout is `{"value", "effects"}`.
    pub context: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Interpreter {
    pub entry: String,
    /// The executable's path in the container.
    pub path: String,
    pub interpreter: String,
    /// `#!/usr/bin/env NAME`: the NAME env would look up, the run's command (`NAME PATH ARGS…`).
    pub looked_up: Option<String>,
    pub image: String,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch").field("runtime", &self.runtime).field("image", &self.image).finish_non_exhaustive()
    }
}

/// What the operator offers: runtime → image, and images a repository may name.
pub struct Offer<'a> {
    pub images: &'a BTreeMap<String, String>,
    pub allowed_images: &'a [String],
    /// The `wasm` runtime runs here.
    pub wasm: bool,
}

/// What the job itself says of what to run, over the manifest.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chosen<'a> {
    pub entry: Option<&'a str>,
    pub args: &'a [String],
    pub workdir: Option<&'a str>,
    /// The job's mode, over the manifest's.
    pub mode: Option<Mode>,
    /// The context python and node functions get (their third parameter), as
    /// JSON: given, the runner answers `{"value", "effects"}` ([`crate::take_effects`]).
    pub context: Option<&'a [u8]>,
}

impl<'a> Chosen<'a> {
    pub fn of(spec: &'a gitfaas_common::JobSpec) -> Self {
        let (entry, workdir) = (spec.entry.as_deref(), spec.workdir.as_deref());
        Self { entry, args: &spec.args, workdir, mode: spec.mode, context: None }
    }
}

/// The cold runner of `runtime` (the text its interpreter is given), if it has one.
pub(crate) fn cold_runner(runtime: &str) -> Option<&'static str> {
    match runtime {
        "python" => Some(PYTHON_RUNNER),
        "node" => Some(NODE_RUNNER),
        _ => None,
    }
}

/// Reads the manifest in `checkout` and decides image, command and stdin.
/// `credentials` is the opened credentials object's JSON text.
pub fn plan(
    checkout: &Path,
    code_mount: &str,
    requested: Option<&str>,
    chosen: &Chosen<'_>,
    offer: &Offer<'_>,
    input: &Value,
    credentials: &[u8],
) -> Result<Launch, ManifestError> {
    let images = offer.images;
    let manifest = match read_manifest(checkout)? {
        Some(text) => Some(toml::from_str::<Manifest>(&text).map_err(|e| ManifestError::Invalid(explain(&text, &e)))?),
        None => None,
    };
    let (runtime, entry) = match (&manifest, requested) {
        (Some(m), Some(r)) if m.runtime != r => {
            return Err(ManifestError::Mismatch { requested: r.to_owned(), declared: m.runtime.clone() })
        }
        (Some(m), _) => (m.runtime.clone(), m.entry.clone()),
        (None, Some(r)) => (r.to_owned(), None),
        (None, None) => return Err(ManifestError::Missing),
    };
    let wasm = offer.wasm && runtime == WASM_RUNTIME;
    let mut image = match wasm {
        true => String::new(),
        false => images.get(&runtime).cloned().ok_or_else(|| {
            let known = images.keys().map(String::as_str).chain(offer.wasm.then_some(WASM_RUNTIME));
            ManifestError::UnknownRuntime(runtime.clone(), known.collect::<Vec<_>>().join(", "))
        })?,
    };
    if let Some(declared) = manifest.as_ref().and_then(|m| m.image.clone()) {
        if !offer.allowed_images.contains(&declared) {
            return Err(ManifestError::ImageNotAllowed(declared));
        }
        image = declared;
    }
    gitfaas_common::schema::check_args(chosen.args).map_err(ManifestError::BadArgs)?;
    let script = chosen.mode.or(manifest.as_ref().and_then(|m| m.mode)).unwrap_or_default() == Mode::Script;
    if !chosen.args.is_empty() && !matches!(runtime.as_str(), "command" | WASM_RUNTIME) && !script {
        return Err(ManifestError::BadArgs(
            "args are taken by the command and wasm runtimes and by scripts only".into(),
        ));
    }
    let workdir = entry::checked_workdir(checkout, chosen.workdir)?;
    let input_json = serde_json::to_vec(input).expect("json values serialise");
    if script {
        let to_run =
            script::Script { entry: chosen.entry.map(str::to_owned), manifest_entry: entry, args: chosen.args };
        let (command, entry_dir, env) = to_run.command(checkout, code_mount, &runtime, &workdir)?;
        let working_dir = if workdir == "." { code_mount.to_owned() } else { format!("{code_mount}/{workdir}") };
        let (stdin, reading) = (Zeroizing::new(input_json), Reading { text_output: true, ..Reading::default() });
        return Ok(Launch { runtime, image, command, working_dir, stdin, entry_dir, reading, env });
    }
    let entry = chosen.entry.map(str::to_owned).or(entry);
    let mut reading = Reading::default();
    let (command, stdin, entry_dir) = match runtime.as_str() {
        "python" => {
            let entry = entry.unwrap_or_else(|| "main.py".into());
            let (entry, entry_dir) = match entry::python_module(&entry) {
                Some((module, _)) => {
                    entry::checked_module(checkout, &workdir, &entry, module)?;
                    (entry.clone(), entry::module_dir(&workdir, module))
                }
                None => entry::checked_file(checkout, entry).map(|e| (e.clone(), entry::parent(&e)))?,
            };
            let command = ["python3", "-I", "-c", PYTHON_RUNNER, code_mount, &entry].map(String::from).to_vec();
            (command, request(&input_json, credentials, chosen.context), entry_dir)
        }
        "node" => {
            let entry = entry.unwrap_or_else(|| "main.js".into());
            let file = match entry::node_export(&entry) {
                Some((file, _)) => entry::checked_file(checkout, file.to_owned()).map_err(|e| e.naming(&entry))?,
                None => entry::checked_file(checkout, entry.clone())?,
            };
            let command = ["node", "-e", NODE_RUNNER, code_mount, &entry].map(String::from).to_vec();
            (command, request(&input_json, credentials, chosen.context), entry::parent(&file))
        }
        // the module's path in the checkout, as its program name, then the args
        WASM_RUNTIME => {
            let entry = entry::checked_file(checkout, entry.unwrap_or_else(|| "main.wasm".into()))?;
            let command = std::iter::once(entry.clone()).chain(chosen.args.iter().cloned()).collect();
            (command, Zeroizing::new(input_json), entry::parent(&entry))
        }
        _ => {
            let entry = entry::checked_file(checkout, entry.unwrap_or_else(|| "main".into()))?;
            let path = format!("{code_mount}/{entry}");
            reading.interpreter = entry::checked_executable(checkout, &entry)?.map(|shebang| Interpreter {
                entry: entry.clone(),
                path: path.clone(),
                interpreter: shebang.interpreter,
                looked_up: shebang.looked_up,
                image: image.clone(),
            });
            let looked_up = reading.interpreter.as_ref().and_then(|it| it.looked_up.clone());
            let command = looked_up.into_iter().chain([path]).chain(chosen.args.iter().cloned()).collect();
            (command, Zeroizing::new(input_json), entry::parent(&entry))
        }
    };
    reading.context = chosen.context.is_some() && matches!(runtime.as_str(), "python" | "node");
    let (mut command, mut working_dir) = (command, code_mount.to_owned());
    if workdir != "." {
        working_dir = format!("{code_mount}/{workdir}");
        if !matches!(runtime.as_str(), "command" | WASM_RUNTIME) {
            command.push(workdir); // the runners' last argument, so part of a warm sandbox's key
        }
    }
    Ok(Launch { runtime, image, command, working_dir, stdin, entry_dir, reading, env: Vec::new() })
}

/// `{"data": <input>, "credentials": <credentials>[, "context": <context>]}`,
/// built without a parsed copy of the credentials.
fn request(input_json: &[u8], credentials: &[u8], context: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
    let extra = context.map_or(0, |c| c.len() + 16);
    let mut out = Zeroizing::new(Vec::with_capacity(input_json.len() + credentials.len() + extra + 32));
    out.extend_from_slice(b"{\"data\":");
    out.extend_from_slice(input_json);
    out.extend_from_slice(b",\"credentials\":");
    out.extend_from_slice(credentials);
    if let Some(context) = context {
        out.extend_from_slice(b",\"context\":");
        out.extend_from_slice(context);
    }
    out.push(b'}');
    out
}

/// The manifest's text, or `None` when the repository has none: read by
/// [`read_regular`], so a manifest linked to a host file, a device or a huge file
/// is refused unread.
fn read_manifest(checkout: &Path) -> Result<Option<String>, ManifestError> {
    let bytes =
        read_regular(&checkout.join(MANIFEST_FILE), MANIFEST_MAX_BYTES).map_err(|()| ManifestError::NotRegular)?;
    bytes.map(|b| String::from_utf8(b).map_err(|_| ManifestError::Invalid("not UTF-8 text".into()))).transpose()
}

/// The bytes of the regular file at `path`, `None` when there is none, `Err` for
/// a symlink, a non-regular file or one past `max` bytes. Opened without following
/// a symlink (the checkout is the executor's own directory, so only the last
/// component can be one) and read no further than the cap.
pub(crate) fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>, ()> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const O_NOFOLLOW: i32 = 0o400000;
    const O_NONBLOCK: i32 = 0o4000; // a fifo must not block the open
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(O_NOFOLLOW | O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(()), // ELOOP: a symlink
    };
    let meta = file.metadata().map_err(|_| ())?;
    if !meta.file_type().is_file() || meta.len() > max {
        return Err(());
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(|_| ())?;
    if bytes.len() as u64 > max {
        return Err(());
    }
    Ok(Some(bytes))
}

/// Where a manifest is wrong, by line and column, and what is wrong, without the
/// source excerpt the TOML parser's display adds.
fn explain(text: &str, error: &toml::de::Error) -> String {
    let mut message: String = error.message().chars().take(200).collect();
    if let Some(span) = error.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        message = format!("line {line}, column {column}: {message}");
    }
    message
}

#[cfg(test)]
mod tests;

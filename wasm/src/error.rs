//! Why a module cannot run at all: the job's fault (rejected) or the host's.

/// Why an invocation did not start.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WasmError {
    #[error("module `{entry}` is larger than the {max_mb} MiB a wasm module may be")]
    TooLarge { entry: String, max_mb: u32 },
    #[error("module `{entry}` is not a valid WebAssembly module: {why}")]
    Invalid { entry: String, why: String },
    #[error("module `{entry}` imports `{import}`, which the wasm runtime does not offer (only WASI preview 1)")]
    UnknownImport { entry: String, import: String },
    #[error("module `{entry}` is not a WASI command: it exports no `_start` function")]
    NotCommand { entry: String },
    /// The host's own trouble (a directory it could not open, a full pool): worth retrying.
    #[error("wasm runtime error: {0}")]
    Host(String),
}

impl WasmError {
    /// The job's own module is at fault: it is rejected, never retried.
    pub fn is_rejection(&self) -> bool {
        !matches!(self, WasmError::Host(_))
    }
}

//! The `wasm` keys of the executor's settings: where compiled modules are cached,
//! how large a module and a pool slot may be, and how many instances run at once.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WasmSettings {
    /// Offer the `wasm` runtime (an executor with no `images` needs no Docker).
    pub enabled: bool,
    /// Where wasmtime keeps compiled modules, keyed by their content (and the
    /// engine's configuration), so a module is compiled once per host.
    pub cache_dir: PathBuf,
    /// The largest module file read, in MiB; a larger one is rejected unread.
    pub max_module_mb: u32,
    /// The largest linear memory any invocation may grow to, in MiB: the size of
    /// a slot of the pooling allocator (a job's `resources.memory_mb` bounds its own).
    pub max_memory_mb: u32,
    /// Instances the pooling allocator holds at once (at least the executor's slots).
    pub pool_instances: u32,
    /// The most elements a table may hold (a Go module's function table is large).
    pub table_elements: usize,
    /// Pre-instantiated modules kept in memory (the compiled code stays on disk).
    pub modules_kept: usize,
}

impl Default for WasmSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            cache_dir: std::env::temp_dir().join("gitfaas-wasm-cache"),
            max_module_mb: 64,
            max_memory_mb: 1024,
            pool_instances: 64,
            table_elements: 200_000,
            modules_kept: 64,
        }
    }
}

//! gitfaas wasm: runs a WASI (preview 1) command module once per invocation in
//! wasmtime, with no container engine. Each invocation gets a fresh instance —
//! nothing survives between two runs, not even of the same module for the same
//! owner — and only its preopened directories (`/code` and `/input` read-only,
//! `/output` read-write), its arguments, stdin, stdout, stderr, a clock and
//! random numbers: no network, no environment.
//!
//! - `settings`: [`WasmSettings`], the executor's `wasm` keys (cache, pool, bounds);
//! - `runtime`: [`WasmRuntime`], the engine (pooling allocator, epoch
//!   interruption and its ticker), the linker with WASI, and compiled modules —
//!   on disk by wasmtime's content-keyed cache, in memory as pre-instantiated
//!   modules by their SHA-256;
//! - `invoke`: [`Invocation`], one run to its [`WasmOutcome`] under its limits
//!   (memory through a resource limiter, time and cancellation through epoch
//!   deadlines, stdout through a capped stream);
//! - `streams`: the capped stdout and the stderr that goes to the live log and a tail;
//! - `error`: [`WasmError`], why a module cannot run at all.

mod error;
mod invoke;
mod runtime;
mod settings;
mod streams;

pub use error::WasmError;
pub use invoke::{Invocation, WasmOutcome};
pub use runtime::WasmRuntime;
pub use settings::WasmSettings;

#[cfg(test)]
mod tests;

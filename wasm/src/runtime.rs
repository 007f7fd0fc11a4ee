//! The engine every invocation shares: compiled code, the pooling allocator, the
//! epoch ticker, the linker with WASI preview 1, and the modules already prepared.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store,
};

use crate::error::WasmError;
use crate::invoke::State;
use crate::settings::WasmSettings;

/// How often the epoch advances: the granularity of timeouts and cancellation.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// The wasm runtime of one process: build it once, invoke it for every run.
pub struct WasmRuntime {
    pub(crate) engine: Engine,
    linker: Linker<State>,
    /// Every `module::name` the linker offers, for naming the one a module lacks.
    offered: BTreeSet<(String, String)>,
    prepared: Mutex<Prepared>,
    pub(crate) settings: WasmSettings,
    /// Advances the epoch while the runtime lives.
    _ticker: Ticker,
}

/// Modules already compiled and linked, by the SHA-256 of their bytes, oldest first.
#[derive(Default)]
struct Prepared {
    modules: HashMap<[u8; 32], InstancePre<State>>,
    order: VecDeque<[u8; 32]>,
}

/// The thread that advances the engine's epoch every [`TICK`]; stopped and
/// joined when the runtime is dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl WasmRuntime {
    /// The engine for `settings`: compiled code cached under `cache_dir`.
    pub fn new(settings: &WasmSettings) -> Result<Self, WasmError> {
        let host = |what: &str, e: wasmtime::Error| WasmError::Host(format!("{what}: {e:#}"));
        std::fs::create_dir_all(&settings.cache_dir)
            .map_err(|e| WasmError::Host(format!("creating {}: {e}", settings.cache_dir.display())))?;
        let mut cache = CacheConfig::new();
        cache.with_directory(&settings.cache_dir);
        let cache = Cache::new(cache).map_err(|e| host("the module cache", e))?;
        let max_memory = (settings.max_memory_mb as usize) << 20;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(settings.pool_instances)
            .total_memories(settings.pool_instances)
            .total_tables(settings.pool_instances)
            .total_stacks(settings.pool_instances)
            .total_component_instances(0)
            .max_memory_size(max_memory)
            .table_elements(settings.table_elements)
            .max_tables_per_module(4)
            .max_memories_per_module(1);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .cache(Some(cache))
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_reservation(max_memory as u64)
            .max_wasm_stack(1 << 20);
        let engine = Engine::new(&config).map_err(|e| host("the engine", e))?;
        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut State| &mut state.wasi)
            .map_err(|e| host("linking WASI", e))?;
        let mut store = Store::new(&engine, State::empty());
        let offered = linker.iter(&mut store).map(|(module, name, _)| (module.to_owned(), name.to_owned())).collect();
        drop(store);
        let stop = Arc::new(AtomicBool::new(false));
        let (ticking, stopping) = (engine.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| WasmError::Host(format!("starting the epoch ticker: {e}")))?;
        Ok(Self {
            engine,
            linker,
            offered,
            prepared: Mutex::default(),
            settings: settings.clone(),
            _ticker: Ticker { stop, thread: Some(thread) },
        })
    }

    /// The module at `path` (the job's `entry`), compiled (or found in the cache)
    /// and linked: bounded in size, valid, a command, importing only WASI; true
    /// when it was not prepared in this process before.
    pub(crate) fn prepare(&self, path: &Path, entry: &str) -> Result<(InstancePre<State>, bool), WasmError> {
        let max = u64::from(self.settings.max_module_mb) << 20;
        let bytes = read_bounded(path, max).map_err(|e| match e {
            Bounded::TooLarge => WasmError::TooLarge { entry: entry.to_owned(), max_mb: self.settings.max_module_mb },
            Bounded::Io(why) => WasmError::Invalid { entry: entry.to_owned(), why },
        })?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(pre) = self.prepared.lock().expect("prepared lock").modules.get(&digest) {
            return Ok((pre.clone(), false));
        }
        let invalid = |e: wasmtime::Error| WasmError::Invalid { entry: entry.to_owned(), why: format!("{e:#}") };
        let module = Module::new(&self.engine, &bytes).map_err(invalid)?;
        if let Some(import) = module.imports().find(|i| !self.offered.contains(&(i.module().into(), i.name().into()))) {
            let import = format!("{}::{}", import.module(), import.name());
            return Err(WasmError::UnknownImport { entry: entry.to_owned(), import });
        }
        if module.get_export("_start").is_none() {
            return Err(WasmError::NotCommand { entry: entry.to_owned() });
        }
        let pre = self.linker.instantiate_pre(&module).map_err(invalid)?;
        let mut prepared = self.prepared.lock().expect("prepared lock");
        if prepared.modules.insert(digest, pre.clone()).is_none() {
            prepared.order.push_back(digest);
        }
        while prepared.order.len() > self.settings.modules_kept.max(1) {
            if let Some(oldest) = prepared.order.pop_front() {
                prepared.modules.remove(&oldest);
            }
        }
        Ok((pre, true))
    }
}

enum Bounded {
    TooLarge,
    Io(String),
}

/// The file's bytes when it is a regular file of at most `max` bytes, read no
/// further than that.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Bounded> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Bounded::Io(e.to_string()))?;
    let meta = file.metadata().map_err(|e| Bounded::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(Bounded::Io("not a regular file".into()));
    }
    if meta.len() > max {
        return Err(Bounded::TooLarge);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| Bounded::Io(e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(Bounded::TooLarge);
    }
    Ok(bytes)
}

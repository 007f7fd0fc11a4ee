//! The executor's Prometheus metrics. Each part goes to the code it measures
//! (`Processing` the jobs', the sandbox its container calls, the warm pool its
//! own, the git cache its fetches); a part made with `Default` and never
//! registered (unit tests) counts for nobody. The sandbox's and the warm pool's
//! types are the sandbox crate's: registered here, recorded there.

use gitfaas_common::metrics::{seconds_histogram, ConsumerLag, Registry};
use gitfaas_common::JobResult;
use gitfaas_sandbox::{SandboxMetrics, WarmMetrics, WasmMetrics};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

/// Every metric of one executor.
#[derive(Clone)]
pub struct ExecutorMetrics {
    pub jobs: JobMetrics,
    pub sandbox: SandboxMetrics,
    pub warm: WarmMetrics,
    pub wasm: WasmMetrics,
    pub git: GitMetrics,
    pub lag: ConsumerLag,
}

impl ExecutorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let jobs = JobMetrics::default();
        let r = &mut *registry;
        r.register("jobs_started", "Attempts started (the started event published)", jobs.started.clone());
        r.register("jobs_finished", "Terminal results published, by status", jobs.finished.clone());
        r.register("job_queue_wait_seconds", "From submission to the start of the attempt", jobs.queue_wait.clone());
        r.register("job_run_seconds", "From the start of the attempt to its result", jobs.run.clone());
        r.register("job_total_seconds", "From submission to the result", jobs.total.clone());
        r.register("executor_slots_busy", "Job slots in use", jobs.slots_busy.clone());
        r.register("executor_slots", "Job slots of this executor", jobs.slots.clone());
        r.register("executor_jobs_prefetched", "Jobs fetched and waiting for a slot", jobs.prefetched.clone());
        let sandbox = SandboxMetrics::default();
        r.register("sandbox_create_seconds", "Docker container creation, by kind", sandbox.create.clone());
        r.register("sandbox_start_seconds", "Docker container start, by kind", sandbox.start.clone());
        let warm = WarmMetrics::default();
        r.register("warm_pool_containers", "Warm sandboxes in the pool, busy and idle", warm.containers.clone());
        r.register("warm_pool_hits", "Runs served by an idle warm sandbox", warm.hits.clone());
        r.register("warm_pool_misses", "Runs of a warm runtime that found no idle sandbox", warm.misses.clone());
        r.register(
            "warm_pool_ready_claims",
            "Runs whose new warm sandbox was a ready one, started before they asked",
            warm.ready_claims.clone(),
        );
        r.register("warm_pool_evictions", "Idle warm sandboxes removed for room or age", warm.evictions.clone());
        let wasm = WasmMetrics::default();
        r.register("wasm_run_seconds", "Instantiation and run of a prepared wasm module", wasm.runs.clone());
        r.register(
            "wasm_modules_prepared",
            "Wasm modules compiled or loaded from the disk cache",
            wasm.prepared.clone(),
        );
        let git = GitMetrics::default();
        r.register("git_cache_hits", "Ref resolutions the mirror answered without a fetch", git.hits.clone());
        r.register("git_cache_misses", "Ref resolutions that fetched into the mirror", git.misses.clone());
        r.register("git_fetch_seconds", "Fetches into a mirror", git.fetch.clone());
        let lag = ConsumerLag::register(registry);
        Self { jobs, sandbox, warm, wasm, git, lag }
    }
}

#[derive(Clone)]
pub struct JobMetrics {
    pub started: Counter,
    pub finished: Family<StatusLabels, Counter>,
    pub queue_wait: Histogram,
    pub run: Histogram,
    pub total: Histogram,
    pub slots_busy: Gauge,
    pub slots: Gauge,
    pub prefetched: Gauge,
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self {
            started: Counter::default(),
            finished: Family::default(),
            queue_wait: seconds_histogram(),
            run: seconds_histogram(),
            total: seconds_histogram(),
            slots_busy: Gauge::default(),
            slots: Gauge::default(),
            prefetched: Gauge::default(),
        }
    }
}

impl JobMetrics {
    /// A terminal result the broker acknowledged.
    pub fn finished(&self, result: &JobResult) {
        self.finished.get_or_create(&StatusLabels { status: result.status.to_string() }).inc();
        let seconds = |ms: u64| ms as f64 / 1e3;
        self.queue_wait.observe(seconds(result.timings.queue_ms));
        self.run.observe(seconds(result.timings.run_ms));
        self.total.observe(seconds(result.timings.total_ms));
    }
}

#[derive(Clone)]
pub struct GitMetrics {
    pub hits: Counter,
    pub misses: Counter,
    pub fetch: Histogram,
}

impl Default for GitMetrics {
    fn default() -> Self {
        Self { hits: Counter::default(), misses: Counter::default(), fetch: seconds_histogram() }
    }
}

impl GitMetrics {
    pub fn fetched(&self, took: std::time::Duration) {
        self.fetch.observe(took.as_secs_f64());
    }
}

//! Runs one job attempt: policy, credentials, checkout, sources, plan, sandbox,
//! sinks, and the mapping of what happened to exactly one terminal [`JobResult`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfaas_common::kafka::Topic;
use gitfaas_common::schema::Attempt;
use gitfaas_common::state::Effects;
use gitfaas_common::{Job, JobResult, JobStatus};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use std::path::Path;

mod checkout;
mod log_topic;
mod spec;

pub use log_topic::LogTopic;

use crate::context::{self, FunctionState};
use crate::credentials::{Credentials, GIT_TOKEN};
use crate::data::{self, DataError};
use crate::git::GitCache;
use crate::refs::SharedResolutions;
use crate::settings::ExecutorSettings;
use gitfaas_common::policy::RepoUrl;
use gitfaas_sandbox::{
    interpret, owner_digest, plan, refused_start, run_wasm, take_effects, warm_args, Chosen, Dependencies, DepsError,
    Function, Launch, Lease, LogSink, LogStreamer, ManifestError, Offer, Prepared, Redactor, Sandbox, SandboxError,
    SandboxSpec, WarmPool, WasmMetrics, WasmRun, WasmRuntime, Workspace, WASM_RUNTIME,
};

pub(crate) const CODE_MOUNT: &str = "/code";

pub struct JobRunner {
    pub executor_id: String,
    pub settings: ExecutorSettings,
    pub git: Arc<GitCache>,
    pub sandbox: Sandbox,
    /// Warm sandboxes; `None` when `executor.warm.enabled` is off.
    pub warm: Option<Arc<WarmPool>>,
    /// Dependency layers, built once and mounted into the runs that declare them.
    pub deps: Arc<Dependencies>,
    /// Ref resolutions shared by the jobs submitted before they started.
    pub refs: SharedResolutions,
    /// Where live log chunks go.
    pub logs: LogTopic,
    /// The `wasm` runtime, when `executor.wasm.enabled` is on.
    pub wasm: Option<Arc<WasmRuntime>>,
    pub wasm_metrics: WasmMetrics,
    /// Named functions' state, and the bounds of what a run may change.
    pub state: FunctionState,
}

/// Where an attempt runs: a warm sandbox (its own workspace), or a fresh container
/// (with the dependency layer it mounts, if any).
enum Place {
    Warm(Box<Lease>),
    Cold(Workspace, Option<Prepared>),
}

impl Place {
    fn workspace(&self) -> &Workspace {
        match self {
            Place::Warm(lease) => lease.workspace(),
            Place::Cold(workspace, _) => workspace,
        }
    }
}

/// How an attempt ended: its result, and whether a failure was the executor's own.
struct Ending {
    result: JobResult,
    /// What a succeeded run of a function with a context asked for besides its output.
    effects: Option<Effects>,
    /// The executor's own trouble (disk, Docker), not the job's: worth retrying.
    infrastructure: bool,
    /// The job's runtime is one this executor lacks but others may have: the
    /// topic of the executors that have it (see `crate::handover`).
    handover: Option<Topic>,
}

impl From<JobResult> for Ending {
    fn from(result: JobResult) -> Self {
        Self { result, effects: None, infrastructure: false, handover: None }
    }
}

impl Ending {
    fn infrastructure(attempt: &Attempt, reason: impl Into<String>) -> Self {
        Self { result: JobResult::failed(attempt, reason), effects: None, infrastructure: true, handover: None }
    }
}

/// One attempt's result, whether its failure was the executor's own, and where
/// the job goes instead when its runtime is not offered here.
pub struct RunOutcome {
    pub result: JobResult,
    /// The succeeded run's checked state changes and records to publish, if any.
    pub effects: Option<Effects>,
    pub infrastructure_failure: bool,
    pub handover: Option<Topic>,
}

impl JobRunner {
    /// Runs one attempt; `cancel` kills the function and ends it as `cancelled`.
    pub async fn run(
        &self,
        job: &Job,
        attempt: u32,
        started_at: DateTime<Utc>,
        cancel: &CancellationToken,
    ) -> RunOutcome {
        let at = Attempt::of(job, &self.executor_id, attempt).started(started_at);
        let (mut commit_sha, mut warm) = (None, (false, false));
        // opened once per attempt: what to redact from its log, and what it uses
        let credentials = self.open_credentials(job, &at);
        let redactor = credentials.as_ref().map(|c| Redactor::of_credentials(c.json())).ok();
        let run =
            gitfaas_common::logs::LogRun { job_id: job.id, attempt, executor_id: self.executor_id.clone(), started_at };
        let streamer = LogStreamer::start(run, &self.settings.logs, redactor.unwrap_or_default(), self.logs.outlet());
        let ending = self.attempt(job, &at, credentials, (&mut commit_sha, &mut warm), &streamer.sink(), cancel).await;
        let log_chunks = streamer.finish().await; // the log's last chunk goes out before the result
        let (warm, ready) = warm;
        let succeeded = ending.result.status == JobStatus::Succeeded;
        let (result, effects) = match ending.effects.filter(|_| succeeded).map(|e| self.state.check(job, e)) {
            Some(Err(refused)) => (JobResult::failed(&at, refused.to_string()), None),
            checked => (ending.result, checked.and_then(Result::ok).flatten()),
        };
        let result = JobResult { commit_sha, warm, ready, log_chunks, ..result.finished(Utc::now()) };
        RunOutcome { result, effects, infrastructure_failure: ending.infrastructure, handover: ending.handover }
    }

    async fn attempt(
        &self,
        job: &Job,
        at: &Attempt,
        credentials: Result<Credentials, Box<Ending>>,
        (commit_sha, warm): (&mut Option<String>, &mut (bool, bool)),
        log: &LogSink,
        cancel: &CancellationToken,
    ) -> Ending {
        let spec = &job.spec;
        let policy = &self.settings.policy;
        // the URL's and the ref's shapes were checked as the job was read
        let repo = match spec.repo.permitted(policy) {
            Ok(repo) => repo,
            Err(e) => return JobResult::rejected(at, e.to_string()).into(),
        };
        let limits = &self.settings.data;
        if let Err(e) = data::check_links(&spec.sources, false, limits, policy).and(data::check_links(
            &spec.sinks,
            true,
            limits,
            policy,
        )) {
            return JobResult::rejected(at, e.to_string()).into();
        }
        let credentials = match credentials {
            Ok(credentials) => credentials,
            Err(ending) => return *ending,
        };
        let token = credentials.get(GIT_TOKEN);
        let clock = std::time::Instant::now();
        let mirror = self.git.mirror_path_of(repo.as_str(), token.as_deref().map(|t| t.as_str()));
        let resolve = || self.git_task(at, repo.clone(), spec.git_ref.to_string(), token.clone());
        let fetch_span = tracing::info_span!("git fetch", git.r#ref = %spec.git_ref);
        let sha = match self.refs.resolve(mirror, &spec.git_ref, job.submitted_at, resolve).instrument(fetch_span).await
        {
            Ok(sha) => sha,
            Err(ending) => return ending,
        };
        if spec.resolve_only {
            // a deployment: the commit is the answer, once the function can be planned there
            if let Err(ending) = self.check_plan(job, at, (repo.clone(), sha.clone()), token).await {
                return ending;
            }
            *commit_sha = Some(sha.clone());
            return JobResult::succeeded(at, serde_json::json!({ "commit": sha })).into();
        }
        let context = match self.state.context(job, at, &sha).await {
            Ok(context) => context,
            Err(why) => return Ending::infrastructure(at, why),
        };
        let offer = self.offer();
        let plan = |dir: &Path| {
            let chosen = Chosen { context: Some(&context), ..Chosen::of(spec) };
            plan(dir, CODE_MOUNT, spec.runtime.as_deref(), &chosen, &offer, &spec.input, credentials.json())
        };
        let resolved = clock.elapsed();
        let placed = self.place(job, at, &repo, &sha, token, plan, log, cancel).await;
        drop(credentials);
        let (launch, place) = match placed {
            Ok(placed) => placed,
            Err(ending) => return ending,
        };
        *commit_sha = Some(sha); // checked out (now or for the warm sandbox)
        if let Place::Warm(lease) = &place {
            *warm = (lease.warm, lease.ready);
        }
        let placed = clock.elapsed();
        let (ending, place) = self.run_placed(job, at, (launch, &context), place, log, cancel).await;
        let ran = clock.elapsed();
        if let (Place::Warm(lease), Some(pool)) = (place, &self.warm) {
            pool.finish(*lease).await;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::info!(
            warm = warm.0,
            ready = warm.1,
            resolve_ms = ms(resolved),
            place_ms = ms(placed - resolved),
            run_ms = ms(ran - placed),
            finish_ms = ms(clock.elapsed() - ran),
            "attempt stages"
        );
        ending
    }

    /// Resolves `git_ref` to a commit on a blocking thread (fetching when the
    /// mirror lacks it or the ref may have moved); the checkout is `checkout_task`'s.
    async fn git_task(
        &self,
        at: &Attempt,
        repo: RepoUrl,
        git_ref: String,
        token: Option<zeroize::Zeroizing<String>>,
    ) -> Result<String, Ending> {
        let (git, policy) = (self.git.clone(), self.settings.policy.clone());
        let fetched = tokio::task::spawn_blocking(move || {
            let token = token.as_deref().map(|t| t.as_str());
            git.resolve_checked(&repo, &policy, &git_ref, token)
        })
        .await;
        match fetched {
            Ok(Ok(sha)) => Ok(sha),
            Ok(Err(e)) => Err(checkout::ending_of(at, e)),
            Err(e) => Err(Ending::infrastructure(at, format!("checkout task failed: {e}"))),
        }
    }

    /// The plan and the place of the run: an idle warm sandbox of the same key
    /// (nothing written), else a fresh checkout (and its dependency layer, built or
    /// found) — given to a new warm sandbox when the runtime is served warm and the
    /// pool has room (a ready one, or one started now), else to a cold container.
    #[allow(clippy::too_many_arguments)]
    async fn place(
        &self,
        job: &Job,
        at: &Attempt,
        repo: &RepoUrl,
        sha: &str,
        token: Option<zeroize::Zeroizing<String>>,
        plan: impl Fn(&Path) -> Result<Launch, ManifestError>,
        log: &LogSink,
        cancel: &CancellationToken,
    ) -> Result<(Launch, Place), Ending> {
        let owner = &job.owner.subject;
        let resources = &job.spec.resources;
        let workdir = job.spec.workdir.as_deref().unwrap_or(".");
        let install = job.spec.dependencies.is_install();
        // fetched submodules are this job's checkout alone: never a warm sandbox's
        let fetch = !job.spec.submodules.is_empty();
        if let Some(pool) = self.warm.as_ref().filter(|_| !fetch) {
            // the same commit has the same manifest and declarations: plan from the warm checkout
            if let Some(code) = pool.code_dir_of(owner, sha) {
                if let Some(launch) = plan(&code).ok().filter(|launch| warm_args(launch).is_some()) {
                    // the layer's digest is part of the key (found in the cache, or built again if evicted)
                    let layer = match install {
                        true => self.deps.prepare(&code, workdir, &launch, &job.id.to_string(), log, cancel).await,
                        false => Ok(None),
                    };
                    if let Ok(layer) = layer {
                        let digest = layer.as_ref().map(Prepared::digest);
                        if let Ok(key) = pool.key(owner, sha, &launch, resources, digest).await {
                            if let Some(lease) = pool.take(&key) {
                                lease.workspace().set_dependencies(layer.as_ref().map(Prepared::summary));
                                return Ok((launch, Place::Warm(Box::new(lease))));
                            }
                        }
                    }
                }
            }
        }
        let workspace = Workspace::create(&self.settings.work_dir)
            .map_err(|e| Ending::infrastructure(at, format!("executor could not create a workspace: {e}")))?;
        let checkout = tracing::info_span!("git checkout", git.commit = %sha);
        let (target, submodules) = ((repo.clone(), sha.to_owned()), job.spec.submodules);
        let notes = self.checkout_task(at, target, workspace.code(), token, submodules).instrument(checkout).await?;
        let workspace = workspace.with_notes(notes);
        let launch = plan(&workspace.code()).map_err(|e| self.refused(at, e))?;
        let prepared = match install {
            true => self.deps.prepare(&workspace.code(), workdir, &launch, &job.id.to_string(), log, cancel).await,
            false => Ok(None),
        };
        let prepared = prepared.map_err(|e| dependency_ending(at, e))?;
        let warm = self.warm.as_ref().filter(|_| !fetch);
        let Some((pool, args)) = warm.zip(warm_args(&launch)) else {
            return Ok((launch, Place::Cold(workspace, prepared)));
        };
        pool.missed();
        let key = match pool.key(owner, sha, &launch, resources, prepared.as_ref().map(Prepared::digest)).await {
            Ok(key) => key,
            Err(e @ SandboxError::MissingImage(_)) => return Err(JobResult::rejected(at, e.to_string()).into()),
            Err(e) => return Err(Ending::infrastructure(at, format!("sandbox error: {e}"))),
        };
        let name = format!("gitfaas-warm-{}-{}", job.id, &owner_digest(owner)[..12]);
        let function = Function { checkout: workspace, layer: prepared.as_ref().map(Prepared::dir), args, name };
        let start = tracing::info_span!("sandbox start", sandbox.kind = "warm");
        match pool.place(key, &launch.runtime, &launch.image, function).instrument(start).await {
            Ok(Ok(lease)) => {
                lease.workspace().set_dependencies(prepared.as_ref().map(Prepared::summary));
                Ok((launch, Place::Warm(Box::new(lease))))
            }
            Ok(Err(workspace)) => Ok((launch, Place::Cold(workspace, prepared))),
            Err(e) => Err(Ending::infrastructure(at, format!("sandbox error: {e}"))),
        }
    }

    /// Downloads the sources, runs the function where it was placed and uploads
    /// the sinks; hands the place back for the warm sandbox to be finished.
    async fn run_placed(
        &self,
        job: &Job,
        at: &Attempt,
        (launch, context): (Launch, &[u8]),
        mut place: Place,
        log: &LogSink,
        cancel: &CancellationToken,
    ) -> (Ending, Place) {
        let spec = &job.spec;
        let (limits, policy) = (&self.settings.data, &self.settings.policy);
        if let Place::Warm(lease) = &place {
            if let Err(e) = lease.workspace().clear_input() {
                return (Ending::infrastructure(at, format!("executor could not empty the input: {e}")), place);
            }
        }
        // (building the download client loads the TLS roots: not for a job without sources)
        let downloaded = match spec.sources.is_empty() {
            true => Ok(()),
            false => data::download(&spec.sources, &place.workspace().input(), limits, policy).await,
        };
        let ended = match downloaded {
            Err(e) => Some(JobResult::failed(at, e.to_string())),
            Ok(()) if cancel.is_cancelled() => Some(JobResult::cancelled_before_run(at)),
            Ok(()) => None,
        };
        if let Some(result) = ended {
            if let (Place::Warm(lease), false) = (&mut place, spec.sources.is_empty()) {
                // its input holds this job's data, which no invocation will see: no later one may
                lease.discard();
            }
            return (result.into(), place);
        }
        let files = context::by_files(&launch.runtime) && !launch.reading.text_output;
        if let Err(e) = files.then(|| context::write_context(&place.workspace().input(), context)).transpose() {
            return (Ending::infrastructure(at, format!("executor could not write the context: {e}")), place);
        }
        tracing::info!(job_id = %job.id, runtime = %launch.runtime, image = %launch.image, "running job");
        let timeout = Duration::from_secs(u64::from(spec.timeout_secs));
        let reading = launch.reading.clone();
        let run = tracing::info_span!("run", warm = matches!(&place, Place::Warm(_)));
        if let (true, Some(wasm)) = (launch.runtime == WASM_RUNTIME, &self.wasm) {
            let module = WasmRun {
                launch,
                code_dir: place.workspace().code(),
                input_dir: place.workspace().input(),
                output_dir: place.workspace().output(),
                memory_mb: spec.resources.memory_mb,
                timeout,
                stdout_max_bytes: self.settings.stdout_max_bytes,
                stderr_tail_bytes: self.settings.stderr_tail_bytes,
                log: log.clone(),
                metrics: self.wasm_metrics.clone(),
            };
            let ending = match run_wasm(wasm, at, module, cancel).instrument(run).await {
                Ok(result) => result.into(),
                Err(why) => Ending::infrastructure(at, why),
            };
            return self.finish_run(job, at, ending, place, files).await;
        }
        let outcome = async {
            match &mut place {
                Place::Warm(lease) => Ok(lease.invoke(&launch.stdin, timeout, log, cancel).await),
                Place::Cold(workspace, prepared) => {
                    let mut run = SandboxSpec { log: log.clone(), ..self.sandbox_spec(job, launch, workspace, "cold") };
                    if let Some(prepared) = prepared {
                        prepared.apply(&mut run, reading.text_output);
                    }
                    self.sandbox.run(run, cancel).await
                }
            }
        }
        .instrument(run)
        .await;
        let ending = match outcome {
            Ok(mut outcome) => match take_effects(&mut outcome, &reading) {
                Ok(effects) => {
                    let result = interpret(at, outcome, &reading, spec.timeout_secs, self.settings.stdout_max_bytes);
                    Ending { effects, ..result.into() }
                }
                Err(why) => JobResult::bad_output(at, why).into(),
            },
            Err(e @ SandboxError::MissingImage(_)) => JobResult::rejected(at, e.to_string()).into(),
            Err(e) => match refused_start(&reading, &e) {
                Some(why) => JobResult::rejected(at, why).into(),
                None => Ending::infrastructure(at, format!("sandbox error: {e}")),
            },
        };
        self.finish_run(job, at, ending, place, files).await
    }

    /// The run's ending with its dependencies and notes, and the sinks uploaded
    /// when it succeeded.
    /// With `files`, the effects the run wrote to its output (`context::EFFECTS_FILE`).
    async fn finish_run(
        &self,
        job: &Job,
        at: &Attempt,
        mut ending: Ending,
        place: Place,
        files: bool,
    ) -> (Ending, Place) {
        let spec = &job.spec;
        let (limits, policy) = (&self.settings.data, &self.settings.policy);
        ending.result.dependencies = match &place {
            Place::Cold(_, prepared) => prepared.as_ref().map(Prepared::summary),
            Place::Warm(lease) => lease.workspace().dependencies(),
        };
        ending.result.notes = place.workspace().notes();
        if files && ending.result.status == JobStatus::Succeeded {
            match context::read_effects(&place.workspace().output()) {
                Ok(effects) => ending.effects = effects,
                Err(why) => ending.result = JobResult { output: None, ..JobResult::failed(at, why) },
            }
        }
        if ending.result.status == JobStatus::Succeeded && !spec.sinks.is_empty() {
            if let Err(e) = data::upload(&spec.sinks, &place.workspace().output(), limits, policy).await {
                let failed = match e {
                    DataError::OutputTooLarge(_) => JobResult::output_too_large(at, e.to_string()),
                    _ => JobResult::failed(at, e.to_string()),
                };
                // the run's result (output, stderr) with the status and reason of the upload
                ending.result = JobResult { status: failed.status, reason: failed.reason, ..ending.result };
            }
        }
        (ending, place)
    }

    /// The job's end for a plan refused with `error`: rejected, and handed over
    /// when its runtime is one other executors have.
    fn refused(&self, at: &Attempt, error: ManifestError) -> Ending {
        let handover = crate::handover::topic_for(&error, !self.settings.images.is_empty(), self.wasm.is_some());
        Ending { handover, ..JobResult::rejected(at, error.to_string()).into() }
    }

    /// The runtimes this executor offers: its images, and `wasm` when it runs here.
    pub(crate) fn offer(&self) -> Offer<'_> {
        let (images, allowed_images) = (&self.settings.images, &self.settings.allowed_images);
        Offer { images, allowed_images, wasm: self.wasm.is_some() }
    }

    fn open_credentials(&self, job: &Job, at: &Attempt) -> Result<Credentials, Box<Ending>> {
        let Some(sealed) = job.spec.sealed_credentials.as_deref() else { return Ok(Credentials::none()) };
        let key = self.settings.private_key().map_err(|e| Box::new(Ending::infrastructure(at, e.to_string())))?;
        Credentials::open(Some(sealed), key.as_ref())
            .map_err(|e| Box::new(JobResult::rejected(at, e.to_string()).into()))
    }
}

/// The one terminal result of a run whose dependencies could not be prepared.
fn dependency_ending(at: &Attempt, error: DepsError) -> Ending {
    match error {
        DepsError::Failed { why, log } => JobResult::dependency_install_failed(at, &why, log).into(),
        DepsError::Cancelled => JobResult::cancelled_before_run(at).into(),
        e if e.is_infrastructure() => Ending::infrastructure(at, e.to_string()),
        e => JobResult::rejected(at, e.to_string()).into(),
    }
}

//! The frontend's view of jobs, in Redis.
//!
//! - `<p>:job:<id>` — hash: `owner`, `status`, `job` (published job JSON), `started_at`,
//!   `executor_id`, `attempt`, `result` (terminal result JSON), `cancel_requested_at`;
//! - `<p>:user:<subject>:jobs` — the owner's job ids, all with score 0 so that the
//!   lexicographic order of UUIDv7 ids is submission order (cursor pagination);
//! - `<p>:active` — ids of jobs not yet terminal (the backlog the frontend admits);
//! - `<p>:erased:<id>` — tombstone of an erased job, so late events do not revive it;
//! - `<p>:events:<subject>` — pub/sub channel of the owner's job transitions (and
//!   of their log chunks, see [`crate::job_logs`], whose keys erasing removes too);
//! - named functions: see `store/functions.rs`; triggers: `store/triggers.rs`;
//!   their one write path (topic, then view, under a lock): `store/definitions.rs`,
//!   its locks: `store/locks.rs`; pipeline runs: `store/pipelines.rs`.
//!
//! Events are applied by Lua scripts: each update is atomic, and the first terminal
//! result of a job wins — a late `started`, or the result of a redelivered attempt,
//! never overwrites it.

mod definitions;
mod functions;
mod idempotency;
mod locks;
mod origins;
mod pipelines;
mod triggers;
pub use definitions::{change_definition, ChangeError, Definition, Kind};
pub use idempotency::KeyClaim;
pub use origins::OriginClaim;

use gitfaas_common::{Job, JobEvent, JobId, JobResult, JobStatus};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde_json::json;

/// KEYS: job, user index, active set, tombstone, channel, starts set, owner's active set.
/// ARGV: owner, attempt, started_at, executor, event, id.
/// Every distinct start (executor + time) is remembered: a job redelivered after an
/// executor crash starts again with the same attempt number, and still counts.
const APPLY_STARTED: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('SADD', KEYS[6], ARGV[4] .. '|' .. ARGV[3]) == 0 then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'queued' and status ~= 'running' then return 0 end
local attempt = math.max(tonumber(ARGV[2]), redis.call('SCARD', KEYS[6]))
redis.call('HSET', KEYS[1], 'status', 'running', 'owner', ARGV[1], 'attempt', attempt,
           'started_at', ARGV[3], 'executor_id', ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[6])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('SADD', KEYS[7], ARGV[6])
redis.call('PUBLISH', KEYS[5], ARGV[5])
return 1
"#;

/// KEYS as above. ARGV: owner, status, result json, started_at, executor, attempt, event, id.
/// The first terminal result wins; its attempt counts every start seen.
const APPLY_FINISHED: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'queued' and status ~= 'running' then return 0 end
local attempt = math.max(tonumber(ARGV[6]), redis.call('SCARD', KEYS[6]))
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'owner', ARGV[1], 'result', ARGV[3],
           'started_at', ARGV[4], 'executor_id', ARGV[5], 'attempt', attempt)
redis.call('ZADD', KEYS[2], 0, ARGV[8])
redis.call('SREM', KEYS[3], ARGV[8])
redis.call('SREM', KEYS[7], ARGV[8])
redis.call('PUBLISH', KEYS[5], ARGV[7])
return 1
"#;

/// KEYS: job, user index, active set, tombstone, owner's active set. ARGV: owner, job json, id.
/// Restores a queued job from the jobs topic unless the store knows it already.
const RESTORE_QUEUED: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 1 or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'status', 'queued', 'job', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[5], ARGV[3])
return 1
"#;

/// What the store knows about one job.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: JobId,
    pub owner: String,
    pub status: JobStatus,
    pub job: Option<Job>,
    pub started_at: Option<String>,
    pub executor_id: Option<String>,
    pub attempt: Option<u32>,
    pub result: Option<JobResult>,
    /// When the owner asked to cancel the job (while it was running).
    pub cancel_requested_at: Option<String>,
}

/// Outcome of erasing a job.
#[derive(Debug, PartialEq, Eq)]
pub enum Erase {
    Erased,
    NotFinished(JobStatus),
    NotFound,
}

#[derive(Clone)]
pub struct JobStore {
    redis: ConnectionManager,
    client: redis::Client,
    prefix: String,
}

impl JobStore {
    pub async fn connect(url: &str, prefix: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let redis = ConnectionManager::new(client.clone()).await?;
        Ok(Self { redis, client, prefix: prefix.to_owned() })
    }

    fn job_key(&self, id: JobId) -> String {
        format!("{}:job:{id}", self.prefix)
    }
    fn user_key(&self, subject: &str) -> String {
        format!("{}:user:{subject}:jobs", self.prefix)
    }
    fn active_key(&self) -> String {
        format!("{}:active", self.prefix)
    }
    /// The owner's jobs not yet terminal (their count is the owner's unfinished jobs).
    fn owner_active_key(&self, subject: &str) -> String {
        format!("{}:user:{subject}:active", self.prefix)
    }
    fn starts_key(&self, id: JobId) -> String {
        format!("{}:starts:{id}", self.prefix)
    }
    fn marker_key(&self) -> String {
        format!("{}:initialized", self.prefix)
    }
    fn tombstone_key(&self, id: JobId) -> String {
        format!("{}:erased:{id}", self.prefix)
    }
    pub fn channel(&self, subject: &str) -> String {
        format!("{}:events:{subject}", self.prefix)
    }

    /// The jobs' live logs, in the same Redis under the same prefix, `cap` bytes per job.
    pub fn logs(&self, cap: usize) -> crate::job_logs::LogStore {
        crate::job_logs::LogStore { redis: self.redis.clone(), prefix: self.prefix.clone(), cap }
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").query_async::<String>(&mut self.redis.clone()).await.map(|_| ())
    }

    /// A dedicated connection for pub/sub (live updates).
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    /// Records a job as queued, before it is published.
    pub async fn insert_queued(&self, job: &Job) -> redis::RedisResult<()> {
        let json = serde_json::to_string(job).expect("jobs serialise");
        let event = json!({"id": job.id, "status": "queued", "at": job.submitted_at}).to_string();
        redis::pipe()
            .atomic()
            .hset_multiple(
                self.job_key(job.id),
                &[("owner", job.owner.subject.as_str()), ("status", "queued"), ("job", &json)],
            )
            .zadd(self.user_key(&job.owner.subject), job.id.to_string(), 0)
            .sadd(self.active_key(), job.id.to_string())
            .sadd(self.owner_active_key(&job.owner.subject), job.id.to_string())
            .publish(self.channel(&job.owner.subject), event)
            .query_async::<()>(&mut self.redis.clone())
            .await
    }

    /// Forgets a job whose publication failed.
    pub async fn remove(&self, job: &Job) -> redis::RedisResult<()> {
        redis::pipe()
            .del(self.job_key(job.id))
            .zrem(self.user_key(&job.owner.subject), job.id.to_string())
            .srem(self.active_key(), job.id.to_string())
            .srem(self.owner_active_key(&job.owner.subject), job.id.to_string())
            .query_async::<()>(&mut self.redis.clone())
            .await
    }

    /// Applies an event from the results topic; false when it changed nothing.
    /// A result whose owner is unknown (an executor could not read the job message
    /// at all) takes the owner on record; with none on record it changes nothing.
    pub async fn apply(&self, event: &JobEvent) -> redis::RedisResult<bool> {
        if let JobEvent::Finished(r) = event {
            if r.owner.subject.is_empty() {
                let owner: Option<String> = self.redis.clone().hget(self.job_key(r.job_id), "owner").await?;
                let Some(subject) = owner else { return Ok(false) };
                let mut result = r.clone();
                result.owner = gitfaas_common::Owner { subject, name: None };
                return Box::pin(self.apply(&JobEvent::Finished(result))).await;
            }
        }
        let mut redis = self.redis.clone();
        let (id, owner) = match event {
            JobEvent::Started(s) => (s.job_id, &s.owner.subject),
            JobEvent::Finished(r) => (r.job_id, &r.owner.subject),
        };
        let keys = [
            self.job_key(id),
            self.user_key(owner),
            self.active_key(),
            self.tombstone_key(id),
            self.channel(owner),
            self.starts_key(id),
            self.owner_active_key(owner),
        ];
        let applied: i32 = match event {
            JobEvent::Started(s) => {
                let note = json!({"id": id, "status": "running", "at": s.started_at, "attempt": s.attempt});
                let started = redis::Script::new(APPLY_STARTED);
                let mut script = started.prepare_invoke();
                script.key(&keys[..]).arg(owner).arg(s.attempt).arg(s.started_at.to_rfc3339());
                script.arg(&s.executor_id).arg(note.to_string()).arg(id.to_string());
                script.invoke_async(&mut redis).await?
            }
            JobEvent::Finished(r) => {
                let note = json!({"id": id, "status": r.status, "at": r.finished_at, "attempt": r.attempt});
                let finished = redis::Script::new(APPLY_FINISHED);
                let mut script = finished.prepare_invoke();
                script.key(&keys[..]).arg(owner).arg(r.status.as_str());
                // visible through the API from now on: how long after its end
                let mut stored = r.clone();
                let after_end = (chrono::Utc::now() - r.finished_at).num_milliseconds().max(0);
                stored.timings.visible_ms = Some(after_end as u64);
                script.arg(serde_json::to_string(&stored).expect("results serialise"));
                script.arg(r.started_at.map(|t| t.to_rfc3339()).unwrap_or_default());
                script.arg(&r.executor_id).arg(r.attempt).arg(note.to_string()).arg(id.to_string());
                script.invoke_async(&mut redis).await?
            }
        };
        Ok(applied == 1)
    }

    /// Notes that the owner asked to cancel a job that is not terminal yet.
    pub async fn note_cancel_requested(&self, id: JobId, at: chrono::DateTime<chrono::Utc>) -> redis::RedisResult<()> {
        const NOTE: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'running' then redis.call('HSET', KEYS[1], 'cancel_requested_at', ARGV[1]) end
return 0
"#;
        redis::Script::new(NOTE)
            .key(self.job_key(id))
            .arg(at.to_rfc3339())
            .invoke_async::<i32>(&mut self.redis.clone())
            .await
            .map(|_| ())
    }

    /// Restores a job read back from the jobs topic, unless already known or erased.
    pub async fn restore_queued(&self, job: &Job) -> redis::RedisResult<bool> {
        let json = serde_json::to_string(job).expect("jobs serialise");
        let restored: i32 = redis::Script::new(RESTORE_QUEUED)
            .key(self.job_key(job.id))
            .key(self.user_key(&job.owner.subject))
            .key(self.active_key())
            .key(self.tombstone_key(job.id))
            .key(self.owner_active_key(&job.owner.subject))
            .arg(&job.owner.subject)
            .arg(json)
            .arg(job.id.to_string())
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(restored == 1)
    }

    /// The jobs not yet terminal.
    pub async fn active_ids(&self) -> redis::RedisResult<Vec<JobId>> {
        let ids: Vec<String> = self.redis.clone().smembers(self.active_key()).await?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Whether this store has been filled since it was (last) empty.
    pub async fn is_initialized(&self) -> redis::RedisResult<bool> {
        self.redis.clone().exists(self.marker_key()).await
    }

    pub async fn mark_initialized(&self) -> redis::RedisResult<()> {
        self.redis.clone().set(self.marker_key(), chrono::Utc::now().to_rfc3339()).await
    }

    pub async fn get(&self, id: JobId) -> redis::RedisResult<Option<JobRecord>> {
        let fields: std::collections::HashMap<String, String> = self.redis.clone().hgetall(self.job_key(id)).await?;
        let Some(owner) = fields.get("owner").cloned() else { return Ok(None) };
        let status = fields.get("status").and_then(|s| s.parse().ok()).unwrap_or(JobStatus::Queued);
        let attempt = fields.get("attempt").and_then(|a| a.parse().ok());
        let mut result: Option<JobResult> = fields.get("result").and_then(|r| serde_json::from_str(r).ok());
        if let (Some(result), Some(attempts)) = (result.as_mut(), attempt) {
            // starts of redelivered copies count too (the executor cannot know of them)
            result.attempt = result.attempt.max(attempts);
        }
        Ok(Some(JobRecord {
            id,
            owner,
            status,
            job: fields.get("job").and_then(|j| serde_json::from_str(j).ok()),
            started_at: fields.get("started_at").filter(|s| !s.is_empty()).cloned(),
            executor_id: fields.get("executor_id").cloned(),
            attempt,
            result,
            cancel_requested_at: fields.get("cancel_requested_at").cloned(),
        }))
    }

    /// The owner's jobs, newest first, strictly older than `before` (a job id),
    /// optionally only those with `status`. Returns the page and whether more follow.
    pub async fn list(
        &self,
        subject: &str,
        before: Option<JobId>,
        status: Option<JobStatus>,
        limit: usize,
    ) -> redis::RedisResult<(Vec<JobRecord>, bool)> {
        const BATCH: usize = 100;
        let mut page = Vec::new();
        let mut max = before.map_or("+".to_owned(), |id| format!("({id}"));
        loop {
            let ids: Vec<String> =
                self.redis.clone().zrevrangebylex_limit(self.user_key(subject), &max, "-", 0, BATCH as isize).await?;
            let exhausted = ids.len() < BATCH;
            for id in &ids {
                let Ok(id) = id.parse::<JobId>() else { continue };
                let Some(record) = self.get(id).await? else { continue };
                if record.owner != subject || status.is_some_and(|s| s != record.status) {
                    continue;
                }
                if page.len() == limit {
                    return Ok((page, true));
                }
                page.push(record);
            }
            match ids.last() {
                Some(last) if !exhausted => max = format!("({last}"),
                _ => return Ok((page, false)),
            }
        }
    }

    /// Erases a finished job of `subject`. A tombstone keeps late events from
    /// bringing it back.
    pub async fn erase(&self, subject: &str, id: JobId) -> redis::RedisResult<Erase> {
        match self.get(id).await? {
            Some(record) if record.owner == subject => {
                if !record.status.is_terminal() {
                    return Ok(Erase::NotFinished(record.status));
                }
                redis::pipe()
                    .atomic()
                    .set_ex(self.tombstone_key(id), 1, 7 * 24 * 3600)
                    .del(self.job_key(id))
                    .del(self.starts_key(id))
                    .del(crate::job_logs::LogStore::log_key(&self.prefix, id))
                    .del(crate::job_logs::LogStore::meta_key(&self.prefix, id))
                    .zrem(self.user_key(subject), id.to_string())
                    .srem(self.active_key(), id.to_string())
                    .srem(self.owner_active_key(subject), id.to_string())
                    .query_async::<()>(&mut self.redis.clone())
                    .await?;
                Ok(Erase::Erased)
            }
            _ => Ok(Erase::NotFound),
        }
    }

    /// Whether the job was erased (its tombstone is kept for a week).
    pub async fn is_erased(&self, id: JobId) -> redis::RedisResult<bool> {
        self.redis.clone().exists(self.tombstone_key(id)).await
    }

    /// A submission's admission checks in one round trip: counts it against the
    /// caller's fixed window (`retry_after`: the seconds to wait when over `max`
    /// requests per `window_secs`), and reads the backlog and the caller's
    /// unfinished jobs.
    pub async fn admission(&self, subject: &str, max: u64, window_secs: u64) -> redis::RedisResult<Admission> {
        let window = chrono::Utc::now().timestamp() as u64 / window_secs;
        let key = format!("{}:rate:{subject}:{window}", self.prefix);
        let (count, _, backlog, unfinished): (u64, bool, u64, u64) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, window_secs as i64 + 1)
            .scard(self.active_key())
            .scard(self.owner_active_key(subject))
            .query_async(&mut self.redis.clone())
            .await?;
        let now = chrono::Utc::now().timestamp() as u64;
        let retry_after = (count > max).then(|| ((window + 1) * window_secs).saturating_sub(now).max(1));
        Ok(Admission { retry_after, backlog, unfinished })
    }
}

/// What [`JobStore::admission`] found.
pub struct Admission {
    /// Seconds until the caller's window ends, when the caller is over its rate.
    pub retry_after: Option<u64>,
    /// Jobs admitted and not finished.
    pub backlog: u64,
    /// The caller's own jobs admitted and not finished.
    pub unfinished: u64,
}

//! The frontend's view of jobs, in Redis.
//!
//! - `<prefix>:job:<id>` — hash: `owner`, `status`, `job` (the published job JSON),
//!   `started_at`, `executor_id`, `attempt`, `result` (terminal result JSON);
//! - `<prefix>:user:<subject>:jobs` — sorted set of the owner's job ids by
//!   submission time, for listings.
//!
//! Events are applied by Lua scripts so that each update is atomic and the first
//! terminal result of a job wins: a late `started`, or a duplicate result of a
//! redelivered attempt, never overwrites it.

use gitfaas_common::{Job, JobEvent, JobId, JobResult, JobStatus};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

/// Updates status unless the job already has a terminal status.
const APPLY_STARTED: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'owner', ARGV[1], 'started_at', ARGV[2],
           'executor_id', ARGV[3], 'attempt', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
return 1
"#;

const APPLY_FINISHED: &str = r#"
local status = redis.call('HGET', KEYS[1], 'status')
if status and status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'owner', ARGV[2], 'result', ARGV[3],
           'started_at', ARGV[4], 'executor_id', ARGV[5], 'attempt', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[8])
return 1
"#;

/// What the store knows about one job.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub owner: String,
    pub status: JobStatus,
    pub job: Option<Job>,
    pub started_at: Option<String>,
    pub executor_id: Option<String>,
    pub attempt: Option<u32>,
    pub result: Option<JobResult>,
}

#[derive(Clone)]
pub struct JobStore {
    redis: ConnectionManager,
    prefix: String,
}

impl JobStore {
    pub async fn connect(url: &str, prefix: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let redis = ConnectionManager::new(client).await?;
        Ok(Self { redis, prefix: prefix.to_owned() })
    }

    fn job_key(&self, id: JobId) -> String {
        format!("{}:job:{id}", self.prefix)
    }

    fn user_key(&self, subject: &str) -> String {
        format!("{}:user:{subject}:jobs", self.prefix)
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").query_async::<String>(&mut self.redis.clone()).await.map(|_| ())
    }

    /// Records a job as queued, before it is published.
    pub async fn insert_queued(&self, job: &Job) -> redis::RedisResult<()> {
        let json = serde_json::to_string(job).expect("jobs serialise");
        redis::pipe()
            .atomic()
            .hset_multiple(
                self.job_key(job.id),
                &[("owner", job.owner.subject.as_str()), ("status", "queued"), ("job", &json)],
            )
            .zadd(self.user_key(&job.owner.subject), job.id.to_string(), job.submitted_at.timestamp_millis())
            .query_async::<()>(&mut self.redis.clone())
            .await
    }

    /// Forgets a job whose publication failed.
    pub async fn remove(&self, job: &Job) -> redis::RedisResult<()> {
        redis::pipe()
            .del(self.job_key(job.id))
            .zrem(self.user_key(&job.owner.subject), job.id.to_string())
            .query_async::<()>(&mut self.redis.clone())
            .await
    }

    /// Applies an event from the results topic; false when it changed nothing.
    pub async fn apply(&self, event: &JobEvent) -> redis::RedisResult<bool> {
        let mut redis = self.redis.clone();
        let applied: i32 = match event {
            JobEvent::Started(s) => {
                redis::Script::new(APPLY_STARTED)
                    .key(self.job_key(s.job_id))
                    .key(self.user_key(&s.owner.subject))
                    .arg(&s.owner.subject)
                    .arg(s.started_at.to_rfc3339())
                    .arg(&s.executor_id)
                    .arg(s.attempt)
                    .arg(submitted_score(s.job_id))
                    .arg(s.job_id.to_string())
                    .invoke_async(&mut redis)
                    .await?
            }
            JobEvent::Finished(r) => {
                redis::Script::new(APPLY_FINISHED)
                    .key(self.job_key(r.job_id))
                    .key(self.user_key(&r.owner.subject))
                    .arg(r.status.as_str())
                    .arg(&r.owner.subject)
                    .arg(serde_json::to_string(r).expect("results serialise"))
                    .arg(r.started_at.map(|t| t.to_rfc3339()).unwrap_or_default())
                    .arg(&r.executor_id)
                    .arg(r.attempt)
                    .arg(r.submitted_at.timestamp_millis())
                    .arg(r.job_id.to_string())
                    .invoke_async(&mut redis)
                    .await?
            }
        };
        Ok(applied == 1)
    }

    pub async fn get(&self, id: JobId) -> redis::RedisResult<Option<JobRecord>> {
        let fields: std::collections::HashMap<String, String> = self.redis.clone().hgetall(self.job_key(id)).await?;
        let Some(owner) = fields.get("owner").cloned() else { return Ok(None) };
        let status = fields.get("status").and_then(|s| s.parse().ok()).unwrap_or(JobStatus::Queued);
        Ok(Some(JobRecord {
            owner,
            status,
            job: fields.get("job").and_then(|j| serde_json::from_str(j).ok()),
            started_at: fields.get("started_at").filter(|s| !s.is_empty()).cloned(),
            executor_id: fields.get("executor_id").cloned(),
            attempt: fields.get("attempt").and_then(|a| a.parse().ok()),
            result: fields.get("result").and_then(|r| serde_json::from_str(r).ok()),
        }))
    }
}

/// UUIDv7 ids carry their creation time in milliseconds in the first 48 bits.
fn submitted_score(id: JobId) -> i64 {
    let bytes = id.as_uuid().as_bytes();
    bytes[..6].iter().fold(0i64, |acc, b| (acc << 8) | i64::from(*b))
}

//! Claims of jobs whose id their origin names (a trigger's tick or record):
//! `<p>:origin:<id>` holds when the claim was made. The first claimant makes the
//! job; anyone asking again finds it made, or being made. A claim whose job never
//! appeared (its claimant died between claiming and recording) goes stale and is
//! taken over, so the origin still gets its one job.

use gitfaas_common::JobId;
use redis::AsyncCommands;

use super::JobStore;

/// KEYS: claim, job record. ARGV: now (ms), stale after (ms), ttl (s).
const CLAIM: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
local at = redis.call('GET', KEYS[1])
if at and tonumber(ARGV[1]) - tonumber(at) < tonumber(ARGV[2]) then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return 0
"#;

/// How long a claim without its job is honoured.
const STALE_AFTER_MS: i64 = 30_000;

/// What [`JobStore::claim_origin`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum OriginClaim {
    /// The caller makes the job.
    Claimed,
    /// The job is recorded already.
    Exists,
    /// Someone else is making it now.
    Busy,
}

impl JobStore {
    pub async fn claim_origin(&self, id: JobId, ttl_secs: u64) -> redis::RedisResult<OriginClaim> {
        let now = chrono::Utc::now().timestamp_millis();
        let found: i32 = redis::Script::new(CLAIM)
            .key(format!("{}:origin:{id}", self.prefix))
            .key(self.job_key(id))
            .arg(now)
            .arg(STALE_AFTER_MS)
            .arg(ttl_secs.max(60))
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match found {
            0 => OriginClaim::Claimed,
            1 => OriginClaim::Exists,
            _ => OriginClaim::Busy,
        })
    }

    /// Gives a claim up (its job was not published).
    pub async fn release_origin(&self, id: JobId) -> redis::RedisResult<()> {
        self.redis.clone().del(format!("{}:origin:{id}", self.prefix)).await
    }

    /// Jobs admitted and not finished.
    pub async fn backlog(&self) -> redis::RedisResult<u64> {
        self.redis.clone().scard(self.active_key()).await
    }
}

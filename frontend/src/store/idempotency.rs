//! `Idempotency-Key` claims: `<p>:idem:<subject>:<key>` holds the job id bound to
//! the key, the fingerprint of the request that bound it and the claim's state:
//! `p<ms>` while the job is being published (since that time), `ok` once the broker
//! acknowledged it. A retry that finds the key published gets its job; one that
//! finds it being published is told to come back (the job may yet fail to go out,
//! and a 202 for it would be a promise nobody keeps). A claim left pending past
//! the longest a publish can take — its frontend died between claiming and
//! publishing — is taken over by the next retry, which publishes the same job id.

use std::sync::LazyLock;

use gitfaas_common::JobId;
use redis::AsyncCommands;

use super::JobStore;

/// KEYS: claim. ARGV: id, fingerprint, now (ms), stale after (ms), ttl (s).
/// Returns {state, id, fingerprint}: 0 claimed (by ARGV's id), 1 published,
/// 2 being published, 3 taken over (ARGV's fingerprint; the claim's id), 4 bound
/// to another request.
const CLAIM: &str = r#"
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' p' .. ARGV[3], 'EX', tonumber(ARGV[5]))
  return {0, ARGV[1], ARGV[2]}
end
local id, fingerprint, state = string.match(held, '^(%S+) (%S+) ?(%S*)$')
if not id then return {4, '', ''} end
if fingerprint ~= ARGV[2] then return {4, id, fingerprint} end
if state == 'ok' or state == '' then return {1, id, fingerprint} end
local since = tonumber(string.sub(state, 2)) or 0
if tonumber(ARGV[3]) - since < tonumber(ARGV[4]) then return {2, id, fingerprint} end
redis.call('SET', KEYS[1], id .. ' ' .. fingerprint .. ' p' .. ARGV[3], 'KEEPTTL')
return {3, id, fingerprint}
"#;

/// KEYS: claim. ARGV: id, fingerprint, ttl (s). Marks the claim published, if it
/// is still this job's.
const PUBLISHED: &str = r#"
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ok', 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"#;

/// How long a claim whose job is being published is honoured: the producer's
/// `message.timeout.ms` (30 s), the longest a publish can take, and a margin.
pub const PUBLISHING_AT_MOST_MS: i64 = 35_000;

/// What [`JobStore::claim_idempotency_key`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is the caller's now, for the id it gave.
    Claimed,
    /// The key's job was published: this one.
    Published(JobId),
    /// The key's job is being published by another request.
    Publishing,
    /// The key's job was claimed and never confirmed published: the caller
    /// publishes it now, under this id.
    TakenOver(JobId),
    /// The key was used for a request with another body.
    Mismatch,
}

static CLAIM_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CLAIM));
static PUBLISHED_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUBLISHED));

impl JobStore {
    fn idempotency_key(&self, subject: &str, key: &str) -> String {
        format!("{}:idem:{subject}:{key}", self.prefix)
    }

    /// `script` on the claim of `subject`'s `key`, given the job id and fingerprint.
    fn on_claim(
        &self,
        script: &'static redis::Script,
        (subject, key): (&str, &str),
        id: JobId,
        fingerprint: &str,
    ) -> redis::ScriptInvocation<'static> {
        let mut invocation = script.key(self.idempotency_key(subject, key));
        invocation.arg(id.to_string()).arg(fingerprint);
        invocation
    }

    /// Claims an idempotency key of `subject` for job `id`, made from a request
    /// with this `fingerprint`, or finds what holds it.
    pub async fn claim_idempotency_key(
        &self,
        subject: &str,
        key: &str,
        id: JobId,
        fingerprint: &str,
        ttl_secs: u64,
    ) -> redis::RedisResult<KeyClaim> {
        let now = chrono::Utc::now().timestamp_millis();
        let (state, held, _): (i64, String, String) = self
            .on_claim(&CLAIM_SCRIPT, (subject, key), id, fingerprint)
            .arg(now)
            .arg(PUBLISHING_AT_MOST_MS)
            .arg(ttl_secs.max(60))
            .invoke_async(&mut self.redis.clone())
            .await?;
        let held = || held.parse::<JobId>().ok();
        Ok(match state {
            0 => KeyClaim::Claimed,
            1 => held().map_or(KeyClaim::Mismatch, KeyClaim::Published),
            2 => KeyClaim::Publishing,
            3 => held().map_or(KeyClaim::Mismatch, KeyClaim::TakenOver),
            _ => KeyClaim::Mismatch,
        })
    }

    /// Records that the key's job `id` was acknowledged by the broker.
    pub async fn idempotency_key_published(
        &self,
        subject: &str,
        key: &str,
        id: JobId,
        fingerprint: &str,
        ttl_secs: u64,
    ) -> redis::RedisResult<()> {
        self.on_claim(&PUBLISHED_SCRIPT, (subject, key), id, fingerprint)
            .arg(ttl_secs.max(60))
            .invoke_async::<i64>(&mut self.redis.clone())
            .await
            .map(drop)
    }

    /// Releases an idempotency key whose job was not published.
    pub async fn release_idempotency_key(&self, subject: &str, key: &str) -> redis::RedisResult<()> {
        self.redis.clone().del(self.idempotency_key(subject, key)).await
    }
}

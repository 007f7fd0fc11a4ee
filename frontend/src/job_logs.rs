//! Jobs' live logs: the logs topic read into Redis, and read back for the logs route.
//!
//! - `<p>:log:<id>` — list of the job's stored chunks as JSON (`attempt`, `seq`,
//!   `stream`, `text`, `truncated`); a chunk's index in it is its place in the
//!   job's log, the event id of the follow stream;
//! - `<p>:logmeta:<id>` — hash: `bytes` stored, `truncated`, the attempt each run
//!   (executor and start) was given, the next `seq` of each run, `last:<attempt>`
//!   once that attempt's log closed.
//!
//! A chunk is stored only for a job the store knows and has not erased, at most
//! once (its run's `seq` must be new), within the per-job cap (the chunk that
//! reaches it is cut and marked truncated; later text is dropped), and with the
//! job view's time to live if it has one. The attempt a run is given counts every
//! start the store has seen, as the job view's attempt does: a redelivered job's
//! second run is attempt 2 even though its executor also calls it 1. Each stored
//! chunk is published on the owner's event channel (`"kind": "log"`), which wakes
//! the follow streams and feeds the websockets.

use std::time::Duration;

use gitfaas_common::kafka::{decode, Inbox};
use gitfaas_common::logs::LogChunk;
use gitfaas_common::JobId;

use rdkafka::message::Message;
use redis::aio::ConnectionManager;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// KEYS: job, tombstone, log, meta, starts, channel.
/// ARGV: run (executor|started_at), executor's attempt, seq, stream, text, truncated, last, cap, id.
const APPEND: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
local run = ARGV[1]
local seq = tonumber(ARGV[3])
if seq < tonumber(redis.call('HGET', KEYS[4], 'next:' .. run) or '0') then return -2 end
redis.call('HSET', KEYS[4], 'next:' .. run, seq + 1)
local attempt = tonumber(redis.call('HGET', KEYS[4], 'run:' .. run) or '0')
if attempt == 0 then
  local starts = redis.call('SCARD', KEYS[5])
  if redis.call('SISMEMBER', KEYS[5], run) == 0 then starts = starts + 1 end
  local seen = tonumber(redis.call('HGET', KEYS[4], 'attempts') or '0')
  attempt = math.max(tonumber(ARGV[2]), starts, seen + 1)
  redis.call('HSET', KEYS[4], 'run:' .. run, attempt, 'attempts', math.max(attempt, seen))
end
local last = ARGV[7] == '1'
if last then redis.call('HSET', KEYS[4], 'last:' .. attempt, 1) end
local text = ARGV[5]
local truncated = ARGV[6] == '1'
if redis.call('HGET', KEYS[4], 'truncated') == '1' then text = '' truncated = false end
local room = tonumber(ARGV[8]) - tonumber(redis.call('HGET', KEYS[4], 'bytes') or '0')
if #text > room then
  local cut = math.max(room, 0)
  while cut > 0 do
    local byte = string.byte(text, cut + 1)
    if byte >= 128 and byte < 192 then cut = cut - 1 else break end
  end
  text = string.sub(text, 1, cut)
  truncated = true
end
local index = -1
if #text > 0 or truncated then
  local chunk = {attempt = attempt, seq = seq, stream = ARGV[4], text = text, truncated = truncated}
  index = redis.call('RPUSH', KEYS[3], cjson.encode(chunk)) - 1
  redis.call('HINCRBY', KEYS[4], 'bytes', #text)
  if truncated then redis.call('HSET', KEYS[4], 'truncated', 1) end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[3], ttl)
  redis.call('PEXPIRE', KEYS[4], ttl)
end
redis.call('PUBLISH', KEYS[6], cjson.encode({id = ARGV[9], kind = 'log', index = index, attempt = attempt,
  seq = seq, stream = ARGV[4], text = text, truncated = truncated, last = last}))
return index
"#;

/// A chunk as the store keeps it (and the logs route serves it).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct StoredChunk {
    pub attempt: u32,
    pub seq: u64,
    pub stream: String,
    pub text: String,
    #[serde(default)]
    pub truncated: bool,
}

/// The log side of the job store (same Redis, same prefix).
#[derive(Clone)]
pub struct LogStore {
    pub(crate) redis: ConnectionManager,
    pub(crate) prefix: String,
    /// Bytes of log kept per job.
    pub(crate) cap: usize,
}

impl LogStore {
    pub(crate) fn log_key(prefix: &str, id: JobId) -> String {
        format!("{prefix}:log:{id}")
    }

    pub(crate) fn meta_key(prefix: &str, id: JobId) -> String {
        format!("{prefix}:logmeta:{id}")
    }

    /// Stores `chunk` of `owner`'s job; its index, or `None` when nothing was kept.
    pub async fn append(&self, owner: &str, chunk: &LogChunk) -> redis::RedisResult<Option<u64>> {
        let (p, id) = (&self.prefix, chunk.run.job_id);
        let run = format!("{}|{}", chunk.run.executor_id, chunk.run.started_at.to_rfc3339());
        let stream = serde_json::to_value(chunk.stream).expect("streams serialise");
        let index: i64 = redis::Script::new(APPEND)
            .key(format!("{p}:job:{id}"))
            .key(format!("{p}:erased:{id}"))
            .key(Self::log_key(p, id))
            .key(Self::meta_key(p, id))
            .key(format!("{p}:starts:{id}"))
            .key(format!("{p}:events:{owner}"))
            .arg(run)
            .arg(chunk.run.attempt)
            .arg(chunk.seq)
            .arg(stream.as_str().unwrap_or("stderr"))
            .arg(&chunk.text)
            .arg(u8::from(chunk.truncated))
            .arg(u8::from(chunk.last))
            .arg(self.cap)
            .arg(id.to_string())
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(u64::try_from(index).ok())
    }

    /// The job's chunks from index `from` on.
    pub async fn chunks(&self, id: JobId, from: u64) -> redis::RedisResult<Vec<StoredChunk>> {
        let from = isize::try_from(from).unwrap_or(isize::MAX);
        let stored: Vec<String> = redis::cmd("LRANGE")
            .arg(Self::log_key(&self.prefix, id))
            .arg(from)
            .arg(-1)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(stored.iter().filter_map(|text| serde_json::from_str(text).ok()).collect())
    }

    /// Whether the log of `attempt` closed (its function ended and the last chunk came).
    pub async fn attempt_closed(&self, id: JobId, attempt: u32) -> redis::RedisResult<bool> {
        let field: Option<String> = redis::cmd("HGET")
            .arg(Self::meta_key(&self.prefix, id))
            .arg(format!("last:{attempt}"))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(field.is_some())
    }

    /// The owner of job `id` on record, if the store knows it.
    async fn owner_of(&self, id: JobId) -> redis::RedisResult<Option<String>> {
        redis::cmd("HGET")
            .arg(format!("{}:job:{id}", self.prefix))
            .arg("owner")
            .query_async(&mut self.redis.clone())
            .await
    }
}

/// Reads the logs topic into the store until `shutdown`. An offset is stored for
/// commit once Redis has the chunk (or the chunk was found unreadable: a log is
/// best effort, and an unreadable one is skipped with a warning).
pub async fn consume(inbox: Inbox, logs: LogStore, shutdown: CancellationToken) {
    loop {
        let Some(message) = inbox.next(&shutdown).await else { break };
        match decode::<LogChunk>(message.payload().unwrap_or_default()) {
            Ok(chunk) => {
                let mut backoff = Duration::from_millis(100);
                while let Err(error) = store(&logs, &chunk).await {
                    tracing::warn!(%error, job_id = %chunk.run.job_id, "storing a log chunk failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            Err(error) => tracing::warn!(%error, offset = message.offset(), "unreadable log chunk skipped"),
        }
        inbox.done(&message);
    }
    inbox.close();
}

async fn store(logs: &LogStore, chunk: &LogChunk) -> redis::RedisResult<()> {
    let Some(owner) = logs.owner_of(chunk.run.job_id).await? else { return Ok(()) }; // unknown or erased
    logs.append(&owner, chunk).await.map(drop)
}

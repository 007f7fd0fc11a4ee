//! The view of triggers, in Redis, rebuilt from their compacted topic:
//!
//! - `<p>:trg:<key>` — the trigger's state (JSON), `<key>` its topic key;
//! - `<p>:user:<subject>:trgs` — the owner's trigger names;
//! - `<p>:trgs` — every trigger's key (what the scheduler and topic readers walk);
//! - `<p>:tick:<key>` — the last tick the scheduler fired (ms);
//! - `<p>:trgthrottle:<key>` — when a firing last waited for its owner's rate,
//!   and how many ticks were skipped for it;
//! - `<p>:topic:<topic>` — the owner (subject) of a topic triggers bind: the
//!   first to bind it. Kept after its triggers are gone, since the topic's
//!   records stay that owner's; made again from the triggers by the topic readers
//!   when the view is rebuilt;
//! - `<p>:trglock:<key>` — held while a change of the trigger is published
//!   (`store/definitions.rs`).
//!
//! A state is stored only when it is at least as new as the stored one.

use gitfaas_common::kafka::Message as _;
use gitfaas_common::schema::TriggerState;
use redis::AsyncCommands;

use super::JobStore;

/// KEYS: trigger, owner's names, all keys. ARGV: state JSON, `updated_at` (ms), name, key.
const PUT_IF_NEWER: &str = r#"
local stored = redis.call('HGET', KEYS[1], 'updated_ms')
if stored and tonumber(stored) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_ms', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return 1
"#;

impl JobStore {
    fn trigger_key(&self, key: &str) -> String {
        format!("{}:trg:{key}", self.prefix)
    }
    fn triggers_of_key(&self, subject: &str) -> String {
        format!("{}:user:{subject}:trgs", self.prefix)
    }
    fn all_triggers_key(&self) -> String {
        format!("{}:trgs", self.prefix)
    }

    async fn trigger_at(&self, key: &str) -> redis::RedisResult<Option<TriggerState>> {
        let state: Option<String> = self.redis.clone().hget(self.trigger_key(key), "state").await?;
        Ok(state.and_then(|s| serde_json::from_str::<TriggerState>(&s).ok()))
    }

    pub async fn trigger(&self, subject: &str, name: &str) -> redis::RedisResult<Option<TriggerState>> {
        let found = self.trigger_at(&TriggerState::key_of(subject, name)).await?;
        Ok(found.filter(|s| s.owner.subject == subject))
    }

    /// Stores `state` unless a newer one is stored; returns whether it did.
    pub async fn put_trigger(&self, state: &TriggerState) -> redis::RedisResult<bool> {
        let json = serde_json::to_string(state).expect("triggers serialise");
        let key = state.key();
        let stored: i32 = redis::Script::new(PUT_IF_NEWER)
            .key(self.trigger_key(&key))
            .key(self.triggers_of_key(&state.owner.subject))
            .key(self.all_triggers_key())
            .arg(json)
            .arg(state.updated_at.timestamp_millis())
            .arg(&state.name)
            .arg(&key)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(stored == 1)
    }

    pub async fn remove_trigger(&self, subject: &str, name: &str) -> redis::RedisResult<()> {
        let key = TriggerState::key_of(subject, name);
        redis::pipe()
            .atomic()
            .del(self.trigger_key(&key))
            .del(format!("{}:tick:{key}", self.prefix))
            .del(self.throttle_key(&key))
            .srem(self.triggers_of_key(subject), name)
            .srem(self.all_triggers_key(), &key)
            .query_async(&mut self.redis.clone())
            .await
    }

    /// The owner's triggers, by name.
    pub async fn triggers(&self, subject: &str) -> redis::RedisResult<Vec<TriggerState>> {
        let mut names: Vec<String> = self.redis.clone().smembers(self.triggers_of_key(subject)).await?;
        names.sort();
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            if let Some(state) = self.trigger(subject, &name).await? {
                found.push(state);
            }
        }
        Ok(found)
    }

    /// How many triggers the owner has.
    pub async fn trigger_count(&self, subject: &str) -> redis::RedisResult<usize> {
        self.redis.clone().scard(self.triggers_of_key(subject)).await
    }

    /// Every trigger of every owner.
    pub async fn all_triggers(&self) -> redis::RedisResult<Vec<TriggerState>> {
        let keys: Vec<String> = self.redis.clone().smembers(self.all_triggers_key()).await?;
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(state) = self.trigger_at(&key).await? {
                found.push(state);
            }
        }
        Ok(found)
    }

    /// The last tick the scheduler fired of trigger `key` (ms since the epoch).
    pub async fn last_tick(&self, key: &str) -> redis::RedisResult<Option<i64>> {
        self.redis.clone().get(format!("{}:tick:{key}", self.prefix)).await
    }

    /// Moves the trigger's last fired tick forward (never back).
    pub async fn set_last_tick(&self, key: &str, tick_ms: i64) -> redis::RedisResult<()> {
        const FORWARD: &str = "local t = redis.call('GET', KEYS[1]) \
            if (not t) or tonumber(t) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 0";
        let key = format!("{}:tick:{key}", self.prefix);
        redis::Script::new(FORWARD).key(key).arg(tick_ms).invoke_async::<i32>(&mut self.redis.clone()).await.map(|_| ())
    }

    fn throttle_key(&self, key: &str) -> String {
        format!("{}:trgthrottle:{key}", self.prefix)
    }

    /// Notes that a firing of trigger `key` was held back by its owner's rate
    /// now, and (`skipped`) that one more tick was skipped for it.
    pub async fn note_throttled(&self, key: &str, skipped: bool) -> redis::RedisResult<()> {
        let throttle_key = self.throttle_key(key);
        let mut pipe = redis::pipe();
        pipe.atomic().hset(&throttle_key, "at_ms", chrono::Utc::now().timestamp_millis()).ignore();
        if skipped {
            pipe.hincr(&throttle_key, "skipped", 1).ignore();
        }
        pipe.query_async(&mut self.redis.clone()).await
    }

    /// Ticks of trigger `key` skipped for its owner's rate, and when a firing was
    /// last held back for it (ms).
    pub async fn throttled(&self, key: &str) -> redis::RedisResult<(u64, Option<i64>)> {
        let throttle_key = self.throttle_key(key);
        let (skipped, at_ms): (Option<u64>, Option<i64>) = redis::pipe()
            .hget(&throttle_key, "skipped")
            .hget(&throttle_key, "at_ms")
            .query_async(&mut self.redis.clone())
            .await?;
        Ok((skipped.unwrap_or(0), at_ms))
    }

    /// Claims `topic` for `subject` unless an owner holds it already: its owner.
    pub async fn claim_topic(&self, topic: &str, subject: &str) -> redis::RedisResult<String> {
        let key = format!("{}:topic:{topic}", self.prefix);
        let (_, owner): (bool, String) =
            redis::pipe().atomic().set_nx(&key, subject).get(&key).query_async(&mut self.redis.clone()).await?;
        Ok(owner)
    }

    /// Marks the follow-up record of job `id` (output or dead letter) as produced;
    /// false when it already was.
    pub async fn mark_produced(&self, id: gitfaas_common::JobId, ttl_secs: u64) -> redis::RedisResult<bool> {
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::EX(ttl_secs.max(60)));
        let set: Option<String> = self.redis.clone().set_options(format!("{}:out:{id}", self.prefix), 1, opts).await?;
        Ok(set.is_some())
    }

    pub async fn was_produced(&self, id: gitfaas_common::JobId) -> redis::RedisResult<bool> {
        self.redis.clone().exists(format!("{}:out:{id}", self.prefix)).await
    }
}

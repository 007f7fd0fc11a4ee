//! The view of named functions, in Redis, rebuilt from their compacted topic:
//!
//! - `<p>:fn:<key>` — the function's state (JSON), `<key>` its topic key;
//! - `<p>:user:<subject>:fns` — the owner's function names;
//! - `<p>:fnlock:<key>` — held while a change of the function is published
//!   (`store/definitions.rs`).
//!
//! A state is stored only when it is at least as new as the stored one
//! (`updated_at`), so a replay of the topic never moves a function back.

use gitfaas_common::kafka::Message as _;
use gitfaas_common::schema::FunctionState;
use redis::AsyncCommands;

use super::JobStore;

/// KEYS: function, owner's names. ARGV: state JSON, its `updated_at` (ms), name.
const PUT_IF_NEWER: &str = r#"
local stored = redis.call('HGET', KEYS[1], 'updated_ms')
if stored and tonumber(stored) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_ms', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"#;

impl JobStore {
    fn function_key(&self, key: &str) -> String {
        format!("{}:fn:{key}", self.prefix)
    }
    fn functions_of_key(&self, subject: &str) -> String {
        format!("{}:user:{subject}:fns", self.prefix)
    }

    pub async fn function(&self, subject: &str, name: &str) -> redis::RedisResult<Option<FunctionState>> {
        let key = self.function_key(&FunctionState::key_of(subject, name));
        let state: Option<String> = self.redis.clone().hget(key, "state").await?;
        Ok(state.and_then(|s| serde_json::from_str::<FunctionState>(&s).ok()).filter(|s| s.owner.subject == subject))
    }

    /// Stores `state` unless a newer one is stored; returns whether it did.
    pub async fn put_function(&self, state: &FunctionState) -> redis::RedisResult<bool> {
        let json = serde_json::to_string(state).expect("functions serialise");
        let stored: i32 = redis::Script::new(PUT_IF_NEWER)
            .key(self.function_key(&state.key()))
            .key(self.functions_of_key(&state.owner.subject))
            .arg(json)
            .arg(state.updated_at.timestamp_millis())
            .arg(&state.name)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(stored == 1)
    }

    pub async fn remove_function(&self, subject: &str, name: &str) -> redis::RedisResult<()> {
        redis::pipe()
            .atomic()
            .del(self.function_key(&FunctionState::key_of(subject, name)))
            .srem(self.functions_of_key(subject), name)
            .query_async(&mut self.redis.clone())
            .await
    }

    /// The owner's functions, by name.
    pub async fn functions(&self, subject: &str) -> redis::RedisResult<Vec<FunctionState>> {
        let mut names: Vec<String> = self.redis.clone().smembers(self.functions_of_key(subject)).await?;
        names.sort();
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            if let Some(state) = self.function(subject, &name).await? {
                found.push(state);
            }
        }
        Ok(found)
    }
}

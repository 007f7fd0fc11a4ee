//! Locks of changes, in Redis: `<p>:<lock>` (e.g. `<p>:fnlock:<key>`, `<p>:trglock:<key>`)
//! holds a random token while one change of a definition is read, published and
//! stored, so that its changes are made one at a time, each on the latest state.
//! A lock expires on its own, should its holder die.

use std::time::Duration;

use super::JobStore;

/// How long a change may hold its lock.
const LOCK_FOR: Duration = Duration::from_secs(30);

impl JobStore {
    /// Takes the lock `lock`: `Some(token)` to release it with, or `None` when
    /// another change holds it.
    pub async fn lock(&self, lock: &str) -> redis::RedisResult<Option<String>> {
        let token = gitfaas_common::JobId::new().to_string();
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(LOCK_FOR.as_millis() as u64));
        let key = format!("{}:{lock}", self.prefix);
        let set: Option<String> =
            redis::AsyncCommands::set_options(&mut self.redis.clone(), &key, &token, opts).await?;
        Ok(set.map(|_| token))
    }

    /// Releases the lock `lock` if `token` still holds it (it may have expired).
    pub async fn unlock(&self, lock: &str, token: &str) -> redis::RedisResult<()> {
        const RELEASE: &str =
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
        let key = format!("{}:{lock}", self.prefix);
        redis::Script::new(RELEASE).key(key).arg(token).invoke_async::<i32>(&mut self.redis.clone()).await.map(|_| ())
    }
}

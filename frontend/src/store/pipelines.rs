//! The index of pipeline runs, in Redis: `<p>:user:<subject>:pipelines` — the
//! owner's run ids, all with score 0 so that the lexicographic order of their
//! UUIDv7 ids is start order. Nothing else of a run is stored: its state is that
//! of its steps' jobs ([`crate::pipelines`]). The index is rebuilt from the first
//! steps' jobs on the jobs topic ([`crate::rebuild`]).

use redis::AsyncCommands;

use super::JobStore;

impl JobStore {
    fn pipelines_key(&self, subject: &str) -> String {
        format!("{}:user:{subject}:pipelines", self.prefix)
    }

    /// Lists run `run` among the owner's runs.
    pub async fn index_pipeline_run(&self, subject: &str, run: &str) -> redis::RedisResult<()> {
        self.redis.clone().zadd(self.pipelines_key(subject), run, 0).await
    }

    /// Takes back the listing of a run whose first step was not made.
    pub async fn unindex_pipeline_run(&self, subject: &str, run: &str) -> redis::RedisResult<()> {
        self.redis.clone().zrem(self.pipelines_key(subject), run).await
    }

    /// The owner's run ids, newest first, strictly older than `before`: at most
    /// `limit`, and whether more follow (as [`JobStore::list`] tells of jobs).
    pub async fn pipeline_runs(
        &self,
        subject: &str,
        before: Option<&str>,
        limit: usize,
    ) -> redis::RedisResult<(Vec<String>, bool)> {
        let max = before.map_or("+".to_owned(), |run| format!("({run}"));
        let fetch = limit.saturating_add(1) as isize;
        let mut ids: Vec<String> =
            self.redis.clone().zrevrangebylex_limit(self.pipelines_key(subject), &max, "-", 0, fetch).await?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        Ok((ids, more))
    }
}

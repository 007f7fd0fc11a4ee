//! Triggers: what makes jobs of a named function without anyone submitting
//! them. Invoking a function by name is its HTTP trigger (`routes::functions`);
//! here are the other two.
//!
//! - [`schedule`]: one frontend at a time — the one the consumer group gives the
//!   triggers topic's one partition — fires every schedule's due ticks. A tick's
//!   job id comes from (owner, trigger, tick), so a tick fired twice (two
//!   schedulers for a moment, one dying between firing and recording it) is one job.
//! - [`topic`]: every frontend reads its share of each topic trigger's input
//!   topic (a consumer group per trigger); a record's job id comes from (owner,
//!   trigger, topic, partition, offset), and its offset is committed once the job
//!   is recorded: at least once, and so effectively once.
//! - [`output`]: a topic trigger's ended job becomes its output record, or its
//!   dead letter with the record's coordinates.
//!
//! Every firing counts against its owner's rate limit, as a request of theirs
//! would ([`admit`]): over it, a tick is skipped (and counted on the trigger), a
//! record waits for the owner's next window — nothing is dropped, and an owner's
//! triggers make no more jobs than the owner could submit.

mod output;
mod schedule;
mod topic;

pub use output::{record_done, OutputError};
pub use schedule::{parse_schedule, tick_input, Scheduler};
pub use topic::{TopicTriggers, TriggerLoads};

use gitfaas_common::schema::TriggerState;
use gitfaas_common::JobSpec;

use crate::submit::{SubmitError, Submitter};

/// Why a firing (a tick, a record) made no job. The message of a refusal is the
/// reason a record's dead letter carries.
#[derive(Debug, thiserror::Error)]
enum FireError {
    #[error("function not found")]
    FunctionGone,
    /// The owner is over their rate limit: wait the seconds given.
    #[error("the owner's rate limit is reached; retry after {0}s")]
    Throttled(u64),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error("the job store failed: {0}")]
    Store(#[from] redis::RedisError),
}

impl FireError {
    /// Whether firing again later may succeed (the store, the broker, the backlog).
    fn is_transient(&self) -> bool {
        match self {
            FireError::FunctionGone => false,
            FireError::Throttled(_) => true,
            FireError::Submit(error) => error.is_transient(),
            FireError::Store(_) => true,
        }
    }
}

/// The job of one firing of `trigger` with `input` — of its function's current
/// version — or `None` when the function is gone.
async fn invocation(
    submit: &Submitter,
    trigger: &TriggerState,
    input: serde_json::Value,
) -> redis::RedisResult<Option<JobSpec>> {
    let function = submit.store.function(&trigger.owner.subject, &trigger.function).await?;
    Ok(function.and_then(|f| f.invocation(input)))
}

/// Counts a firing of `trigger` against its owner's rate, as the owner's
/// request would be: the backlog of unfinished jobs when within it.
async fn admit(submit: &Submitter, trigger: &TriggerState) -> Result<u64, FireError> {
    let rate = &submit.settings.rate_limit;
    let admission = submit.store.admission(&trigger.owner.subject, rate.requests, rate.window_secs).await?;
    match admission.retry_after {
        Some(secs) => Err(FireError::Throttled(secs)),
        // the owner's jobs must finish first: a tick is skipped, a record waits
        None if admission.unfinished >= rate.max_unfinished => Err(FireError::Throttled(1)),
        None => Ok(admission.backlog),
    }
}

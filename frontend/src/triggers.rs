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

//! The one write path of the definitions kept on compacted topics — named
//! functions and triggers — into their topic and then this view. A change is made under the definition's lock, on its
//! latest state: the edit's new state is checked against the topic's message
//! size, published to its topic (the source of truth; `None` publishes the
//! tombstone), then stored in the view. One at a time per definition, so two
//! changes never both start from the same state and one of them lost.

use gitfaas_common::kafka::{Message, PublishError, Publisher};
use gitfaas_common::schema::{owned_key, FunctionState, TriggerState};

use super::JobStore;

/// Which kind of definition a change is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Function,
    Trigger,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Function => "function",
            Kind::Trigger => "trigger",
        })
    }
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError<E> {
    /// Another change of the same definition holds its lock.
    #[error("another change of this {0} is under way")]
    Busy(Kind),
    /// The edit refused the change.
    #[error("the change was refused")]
    Edit(E),
    /// The new state does not fit in one message of its topic.
    #[error("{detail}")]
    TooLarge { field: &'static str, detail: String },
    #[error("the change was not published: {0}")]
    Broker(#[from] PublishError),
    #[error("the job store failed: {0}")]
    Store(#[from] redis::RedisError),
}

/// A definition kept on a compacted topic, keyed by owner and name, and in the view.
pub trait Definition: Message + Sized {
    const KIND: Kind;
    /// Its lock's name, before the key.
    const LOCK: &'static str;
    /// The request field a state too large is blamed on, and what is too large.
    const SIZE_FIELD: &'static str;
    const TOO_LARGE: &'static str;

    async fn load(store: &JobStore, subject: &str, name: &str) -> redis::RedisResult<Option<Self>>;
    async fn store(&self, store: &JobStore) -> redis::RedisResult<()>;
    async fn remove(store: &JobStore, subject: &str, name: &str) -> redis::RedisResult<()>;
}

impl Definition for FunctionState {
    const KIND: Kind = Kind::Function;
    const LOCK: &'static str = "fnlock";
    const SIZE_FIELD: &'static str = "name";
    const TOO_LARGE: &'static str = "the function's versions are";

    async fn load(store: &JobStore, subject: &str, name: &str) -> redis::RedisResult<Option<Self>> {
        store.function(subject, name).await
    }
    async fn store(&self, store: &JobStore) -> redis::RedisResult<()> {
        store.put_function(self).await.map(|_| ())
    }
    async fn remove(store: &JobStore, subject: &str, name: &str) -> redis::RedisResult<()> {
        store.remove_function(subject, name).await
    }
}

impl Definition for TriggerState {
    const KIND: Kind = Kind::Trigger;
    const LOCK: &'static str = "trglock";
    const SIZE_FIELD: &'static str = "schedule.input";
    const TOO_LARGE: &'static str = "the trigger is";

    async fn load(store: &JobStore, subject: &str, name: &str) -> redis::RedisResult<Option<Self>> {
        store.trigger(subject, name).await
    }
    async fn store(&self, store: &JobStore) -> redis::RedisResult<()> {
        store.put_trigger(self).await.map(|_| ())
    }
    async fn remove(store: &JobStore, subject: &str, name: &str) -> redis::RedisResult<()> {
        store.remove_trigger(subject, name).await
    }
}

/// Applies `edit` to the latest state of `subject`'s definition `name` (none:
/// there is none) under its lock: publishes the new state to its topic (or, for
/// `None`, the definition's tombstone) and stores it. The new state, as made.
pub async fn change_definition<D: Definition, E>(
    store: &JobStore,
    publisher: &Publisher,
    subject: &str,
    name: &str,
    edit: impl FnOnce(Option<D>) -> Result<Option<D>, E>,
) -> Result<Option<D>, ChangeError<E>> {
    let key = owned_key(subject, name);
    let lock = format!("{}:{key}", D::LOCK);
    let Some(token) = store.lock(&lock).await? else { return Err(ChangeError::Busy(D::KIND)) };
    let changed = async {
        let previous = D::load(store, subject, name).await?;
        let next = edit(previous).map_err(ChangeError::Edit)?;
        match &next {
            Some(next) => {
                let len = serde_json::to_vec(next).map_or(usize::MAX, |bytes| bytes.len());
                gitfaas_common::limits::check_message_len(len).map_err(|e| ChangeError::TooLarge {
                    field: D::SIZE_FIELD,
                    detail: format!("{} {e}", D::TOO_LARGE),
                })?;
                publisher.publish(next).await?;
                next.store(store).await?;
            }
            None => {
                publisher.retract::<D>(&key).await?;
                D::remove(store, subject, name).await?;
            }
        }
        Ok(next)
    }
    .await;
    if let Err(error) = store.unlock(&lock, &token).await {
        tracing::warn!(%error, kind = %D::KIND, name, "definition lock not released; it expires");
    }
    changed
}

//! Topics an owner binds: a trigger's input and output, a function's `publish`
//! topics. Names Kafka refuses, gitfaas's own topics and those the operator does
//! not allow are refused; an allowed one belongs to the first owner who binds it.

use crate::problem::ApiError;
use crate::AppState;

/// Refuses a topic name Kafka would refuse, gitfaas's own topics, and those the
/// operator does not let owners bind (`triggers.allowed_topics`, `shared_topics`).
pub(super) fn check_topic(state: &AppState, field: &str, name: &str) -> Result<(), ApiError> {
    if !is_valid_topic_name(name) {
        let detail = "a topic name is 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-' (not . or ..)";
        return Err(ApiError::invalid(field, detail));
    }
    if state.topics.all().contains(&name) || !state.settings.triggers.allows(name) {
        return Err(ApiError::TopicNotAllowed(name.to_owned()));
    }
    Ok(())
}

/// Claims `topics` for `subject`, as a trigger's are claimed: the topics a job's
/// function publishes to.
pub(super) async fn claim_publish_topics(state: &AppState, subject: &str, topics: &[String]) -> Result<(), ApiError> {
    for topic in topics {
        check_topic(state, "publish", topic)?;
        if !state.settings.triggers.is_shared(topic) && state.store.claim_topic(topic, subject).await? != subject {
            return Err(ApiError::TopicOfAnotherOwner(topic.clone()));
        }
    }
    Ok(())
}

/// Kafka's rule for topic names.
fn is_valid_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

//! What a topic trigger's job leaves behind: a succeeded job's output as a record
//! of the output topic, with the input record's key; a job that ended any other
//! way as a dead letter (the input, with the reason and the input record's
//! topic, partition and offset, and the end of its stderr, in headers). Each job's record is produced once
//! (a marker in the store; a crash between producing and marking produces it
//! again, and the `gitfaas-job-id` header tells the copies apart).

use base64::Engine;
use gitfaas_common::kafka::PublishError;
use gitfaas_common::schema::{JobOrigin, TriggerState};
use gitfaas_common::JobStatus;
use rdkafka::message::{BorrowedMessage, Message};

use crate::store::JobRecord;
use crate::submit::Submitter;

/// Why a job's record was not produced yet: the results reader tries again.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("the trigger's record was not published: {0}")]
    Broker(#[from] PublishError),
    #[error("the job store failed: {0}")]
    Store(#[from] redis::RedisError),
}

/// A topic trigger's job ended: its output record, or its dead letter.
pub async fn record_done(submit: &Submitter, record: &JobRecord, origin: &JobOrigin) -> Result<(), OutputError> {
    let JobOrigin::Topic { trigger, topic, partition, offset, key, output, .. } = origin else { return Ok(()) };
    let (Some(job), Some(result)) = (&record.job, &record.result) else { return Ok(()) };
    if submit.store.was_produced(record.id).await? {
        return Ok(());
    }
    let key = key.as_deref().and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok());
    let id = record.id.to_string();
    let sent = if result.status == JobStatus::Succeeded {
        let Some(output) = output else { return Ok(()) };
        let payload = serde_json::to_vec(&result.output).expect("json serialises");
        let headers = [("gitfaas-job-id", id.as_bytes()), ("gitfaas-trigger", trigger.as_bytes())];
        submit.publisher.send_raw(output, key.as_deref(), &payload, &headers).await
    } else {
        let reason = result.reason.clone().unwrap_or_else(|| result.status.to_string());
        let payload = serde_json::to_vec(&job.spec.input).expect("json serialises");
        let (partition, offset) = (partition.to_string(), offset.to_string());
        let tail = last_bytes(&result.stderr_tail, STDERR_TAIL_BYTES);
        let headers = [
            ("gitfaas-error", reason.as_bytes()),
            ("gitfaas-stderr-tail", tail.as_bytes()),
            ("gitfaas-job-id", id.as_bytes()),
            ("gitfaas-trigger", trigger.as_bytes()),
            ("gitfaas-source-topic", topic.as_bytes()),
            ("gitfaas-source-partition", partition.as_bytes()),
            ("gitfaas-source-offset", offset.as_bytes()),
        ];
        submit.publisher.dead_letter(key.as_deref(), &payload, &headers).await
    };
    sent?;
    submit.store.mark_produced(record.id, submit.settings.idempotency_ttl_secs).await?;
    tracing::info!(job_id = %record.id, %trigger, status = %result.status, "topic trigger's record produced");
    Ok(())
}

/// The most of a failed job's stderr a dead letter carries (its end).
const STDERR_TAIL_BYTES: usize = 1024;

fn last_bytes(text: &str, most: usize) -> &str {
    let mut start = text.len().saturating_sub(most);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A record that could not become a job at all (its function gone, its input
/// too large): dead-lettered as it came, with the reason.
pub async fn dead_letter_record(
    submit: &Submitter,
    trigger: &TriggerState,
    message: &BorrowedMessage<'_>,
    reason: &str,
) -> Result<(), PublishError> {
    let (partition, offset) = (message.partition().to_string(), message.offset().to_string());
    let headers = [
        ("gitfaas-error", reason.as_bytes()),
        ("gitfaas-trigger", trigger.name.as_bytes()),
        ("gitfaas-source-topic", message.topic().as_bytes()),
        ("gitfaas-source-partition", partition.as_bytes()),
        ("gitfaas-source-offset", offset.as_bytes()),
    ];
    let payload = message.payload().unwrap_or_default();
    submit.publisher.dead_letter(message.key(), payload, &headers).await?;
    tracing::warn!(trigger = %trigger.name, %reason, offset = message.offset(), "record dead-lettered");
    Ok(())
}

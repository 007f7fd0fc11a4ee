//! The one way a job gets in: checked against the input and backlog limits,
//! recorded as queued and published to the jobs topic — for a submit, an
//! invocation, a deployment's ref resolution, a trigger's tick or record and a
//! pipeline's step alike. A job whose origin names its id ([`JobOrigin::job_id`])
//! is made once however often it is asked for.

use chrono::{DateTime, Utc};
use gitfaas_common::kafka::{PublishError, Publisher};
use gitfaas_common::schema::JobOrigin;
use gitfaas_common::{Job, JobId, JobSpec, JobStatus, Owner};
use sha2::{Digest, Sha256};

use crate::affinity::Affinity;
use crate::metrics::FrontendMetrics;
use crate::problem::ApiError;
use crate::request;
use crate::settings::FrontendSettings;
use crate::store::{JobStore, OriginClaim};

/// A job in the queue: its id, status and submission time.
pub type Queued = (JobId, JobStatus, DateTime<Utc>);

#[derive(Clone)]
pub struct Submitter {
    pub settings: std::sync::Arc<FrontendSettings>,
    pub store: JobStore,
    /// Jobs go out through it; a record or job that cannot go on ends on its
    /// dead-letter topic.
    pub publisher: Publisher,
    pub affinity: Affinity,
    pub metrics: FrontendMetrics,
}

impl Submitter {
    /// Records and publishes the job of `spec` for `owner` (or, given the
    /// request's body and its `Idempotency-Key`, finds the job of a retried one;
    /// or, for a spec with an origin, finds the job that origin made already).
    pub async fn queue(
        &self,
        spec: JobSpec,
        idempotency: Option<(&[u8], Option<String>)>,
        backlog: u64,
        owner: Owner,
    ) -> Result<Queued, ApiError> {
        let settings = &self.settings;
        request::check_input_depth(&spec.input)?;
        let input_bytes = serde_json::to_vec(&spec.input).map(|v| v.len()).unwrap_or(usize::MAX);
        if input_bytes > settings.max_input_bytes {
            return Err(ApiError::invalid(
                "input",
                format!("input is {input_bytes} bytes; the limit is {}", settings.max_input_bytes),
            ));
        }
        if backlog >= settings.max_backlog {
            return Err(ApiError::Overloaded(10));
        }
        let subject = owner.subject.clone();
        let origin_id = spec.origin.as_ref().map(|origin: &JobOrigin| origin.job_id(&subject));
        let mut job = Job::new(owner, spec);
        if let Some(id) = origin_id {
            job.id = id;
        }
        if settings.job_ttl_secs > 0 {
            job.expires_at = Some(job.submitted_at + chrono::Duration::seconds(settings.job_ttl_secs as i64));
        }
        let message_bytes = serde_json::to_vec(&job).map_or(usize::MAX, |v| v.len());
        if let Err(error) = gitfaas_common::limits::check_message_len(message_bytes) {
            return Err(ApiError::invalid("input", format!("the job is {error}")));
        }
        if origin_id.is_some() {
            match self.store.claim_origin(job.id, settings.idempotency_ttl_secs).await? {
                OriginClaim::Claimed => {}
                OriginClaim::Exists => return self.existing(job.id, job.submitted_at).await,
                OriginClaim::Busy => return Err(ApiError::Overloaded(1)),
            }
        }
        let (body, idempotency_key) = idempotency.unwrap_or((&[], None));
        if let Some(key) = &idempotency_key {
            if key.is_empty() || key.chars().count() > request::MAX_IDEMPOTENCY_KEY_CHARS {
                let most = request::MAX_IDEMPOTENCY_KEY_CHARS;
                return Err(ApiError::invalid("Idempotency-Key", format!("must be 1 to {most} characters")));
            }
            let fingerprint = hex::encode(Sha256::digest(body));
            let claimed = self
                .store
                .claim_idempotency_key(&subject, key, job.id, &fingerprint, settings.idempotency_ttl_secs)
                .await?;
            if let Some((existing, previous)) = claimed {
                if previous != fingerprint {
                    return Err(ApiError::IdempotencyMismatch);
                }
                if self.store.get(existing).await?.is_none() && self.store.is_erased(existing).await? {
                    return Err(ApiError::IdempotentJobErased);
                }
                return self.existing(existing, job.submitted_at).await;
            }
        }
        tracing::Span::current().record("job_id", tracing::field::display(job.id));

        self.store.insert_queued(&job).await?;
        if let Err(error) = self.publish(&job).await {
            tracing::warn!(%error, job_id = %job.id, "job not published");
            self.store.remove(&job).await?;
            if let Some(key) = &idempotency_key {
                self.store.release_idempotency_key(&subject, key).await?;
            }
            if origin_id.is_some() {
                self.store.release_origin(job.id).await?;
            }
            return Err(ApiError::Unavailable("the message broker"));
        }
        self.metrics.jobs_submitted.inc();
        tracing::info!(job_id = %job.id, repo = %job.spec.repo, git_ref = %job.spec.git_ref, "job queued");
        Ok((job.id, JobStatus::Queued, job.submitted_at))
    }

    async fn existing(&self, id: JobId, now: DateTime<Utc>) -> Result<Queued, ApiError> {
        let record = self.store.get(id).await?.ok_or(ApiError::NotFound)?;
        Ok((id, record.status, record.job.map_or(now, |j| j.submitted_at)))
    }

    async fn publish(&self, job: &Job) -> Result<(), PublishError> {
        self.publisher.publish_to(self.affinity.partition(job), job).await
    }
}

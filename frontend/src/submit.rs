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
use crate::request;
use crate::settings::FrontendSettings;
use crate::store::{JobRecord, JobStore, KeyClaim, OriginClaim};

/// A job in the queue: its id, status and submission time.
pub type Queued = (JobId, JobStatus, DateTime<Utc>);

/// Why a job was not queued. The messages of the refusals are the reasons a
/// trigger's dead letter or a pipeline's unmade step carry, so they read as an
/// API client's would.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The job itself is refused (its input, its size, its idempotency key).
    #[error(transparent)]
    Invalid(#[from] request::Invalid),
    /// Too many jobs are waiting, or another request is making this origin's job:
    /// try again after the seconds given.
    #[error("too many jobs are waiting; retry after {0}s")]
    Overloaded(u64),
    #[error("this idempotency key was used for a different request")]
    IdempotencyMismatch,
    #[error("the job of this idempotency key was erased; submit with a new key to run it again")]
    IdempotentJobErased,
    /// Another request with this idempotency key is publishing its job: whether
    /// it goes out is not known yet.
    #[error("another request with this idempotency key is being submitted; retry after 1s")]
    IdempotencyInFlight,
    /// The job a retry or an origin names was made, and is gone since (erased).
    #[error("job not found")]
    Vanished,
    #[error("the job was not published: {0}")]
    Broker(#[from] PublishError),
    #[error("the job store failed: {0}")]
    Store(#[from] redis::RedisError),
}

impl SubmitError {
    /// Whether trying again later may succeed (the store, the broker, the backlog).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SubmitError::Overloaded(_)
                | SubmitError::IdempotencyInFlight
                | SubmitError::Broker(_)
                | SubmitError::Store(_)
        )
    }
}

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
    ) -> Result<Queued, SubmitError> {
        let settings = &self.settings;
        request::check_input_depth(&spec.input)?;
        let input_bytes = serde_json::to_vec(&spec.input).map(|v| v.len()).unwrap_or(usize::MAX);
        if input_bytes > settings.max_input_bytes {
            let detail = format!("input is {input_bytes} bytes; the limit is {}", settings.max_input_bytes);
            return Err(request::Invalid::of("input", detail).into());
        }
        if backlog >= settings.max_backlog {
            return Err(SubmitError::Overloaded(10));
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
            return Err(request::Invalid::of("input", format!("the job is {error}")).into());
        }
        if origin_id.is_some() {
            match self.store.claim_origin(job.id, settings.idempotency_ttl_secs).await? {
                OriginClaim::Claimed => {}
                OriginClaim::Exists => return self.existing(job.id, job.submitted_at).await,
                OriginClaim::Busy => return Err(SubmitError::Overloaded(1)),
            }
        }
        let (body, idempotency_key) = idempotency.unwrap_or((&[], None));
        // the key to mark published once the broker has the job
        let mut published_key = None;
        if let Some(key) = &idempotency_key {
            if key.is_empty() || key.chars().count() > request::MAX_IDEMPOTENCY_KEY_CHARS {
                let most = request::MAX_IDEMPOTENCY_KEY_CHARS;
                let detail = format!("must be 1 to {most} characters");
                return Err(request::Invalid::of("Idempotency-Key", detail).into());
            }
            let fingerprint = hex::encode(Sha256::digest(body));
            let claim = self
                .store
                .claim_idempotency_key(&subject, key, job.id, &fingerprint, settings.idempotency_ttl_secs)
                .await?;
            match claim {
                KeyClaim::Claimed => {}
                KeyClaim::Mismatch => return Err(SubmitError::IdempotencyMismatch),
                KeyClaim::Publishing => return Err(SubmitError::IdempotencyInFlight),
                KeyClaim::Published(existing) => {
                    if self.store.get(existing).await?.is_none() && self.store.is_erased(existing).await? {
                        return Err(SubmitError::IdempotentJobErased);
                    }
                    return self.existing(existing, job.submitted_at).await;
                }
                KeyClaim::TakenOver(existing) => {
                    // its claimant died before the broker answered: the same job
                    // (as recorded, if it was) goes out again under its own id
                    match self.store.get(existing).await? {
                        Some(record) if record.status != JobStatus::Queued => {
                            self.store
                                .idempotency_key_published(
                                    &subject,
                                    key,
                                    existing,
                                    &fingerprint,
                                    settings.idempotency_ttl_secs,
                                )
                                .await?;
                            return self.existing(existing, job.submitted_at).await;
                        }
                        Some(JobRecord { job: Some(recorded), .. }) => job = recorded,
                        _ => job.id = existing,
                    }
                }
            }
            published_key = Some((key.clone(), fingerprint));
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
            return Err(SubmitError::Broker(error));
        }
        if let Some((key, fingerprint)) = &published_key {
            let ttl = settings.idempotency_ttl_secs;
            self.store.idempotency_key_published(&subject, key, job.id, fingerprint, ttl).await?;
        }
        self.metrics.jobs_submitted.inc();
        tracing::info!(job_id = %job.id, repo = %job.spec.repo, git_ref = %job.spec.git_ref, "job queued");
        Ok((job.id, JobStatus::Queued, job.submitted_at))
    }

    async fn existing(&self, id: JobId, now: DateTime<Utc>) -> Result<Queued, SubmitError> {
        let record = self.store.get(id).await?.ok_or(SubmitError::Vanished)?;
        Ok((id, record.status, record.job.map_or(now, |j| j.submitted_at)))
    }

    async fn publish(&self, job: &Job) -> Result<(), PublishError> {
        self.publisher.publish_to(self.affinity.partition(job), job).await
    }
}

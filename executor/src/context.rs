//! The context a python or node function gets (its third parameter): the job,
//! its named function's committed state, the bounds, the topics it may publish
//! to. What the run asks for in return ([`Effects`]) is checked here again (the
//! sandbox is not trusted) and turned into the records of the one transaction
//! that also carries the job's result (see `crate::processing`).

use std::time::Duration;

use gitfaas_common::kafka::Outgoing;
use gitfaas_common::schema::Attempt;
use gitfaas_common::settings::TopicSettings;
use gitfaas_common::state::{Effects, EffectsError, FollowedState, Scope, StateCommit, StateLimits};
use gitfaas_common::{Job, JobEvent, JobResult};
use serde_json::{json, Value};

/// How long a job of a named function waits for the state view to have read the
/// state topic (an executor just started), before the attempt fails as the
/// executor's own trouble (and is retried).
const READY_WAIT: Duration = Duration::from_secs(30);

/// Functions' state as this executor sees it, and its bounds.
pub struct FunctionState {
    pub followed: FollowedState,
    pub limits: StateLimits,
}

/// The scope of a job's state: its owner's named function's; none for a plain job.
pub fn scope_of(job: &Job) -> Option<Scope> {
    job.spec.function.as_ref().map(|f| Scope::new(job.owner.subject.clone(), f.name.clone()))
}

impl FunctionState {
    /// Whether the commit of `job` is applied: a redelivered job whose first run
    /// committed (with its result) is done.
    pub fn committed(&self, job: &Job) -> bool {
        let Some(scope) = scope_of(job) else { return false };
        self.followed.is_ready() && self.followed.read(|view| view.has_applied(&scope, &job.id.to_string()))
    }

    /// The context of attempt `at` of `job` at `commit`, as JSON; `Err` when the
    /// state view is not ready in time (the executor's trouble).
    pub async fn context(&self, job: &Job, at: &Attempt, commit: &str) -> Result<Vec<u8>, String> {
        let function = job.spec.function.as_ref();
        let job_info = json!({
            "id": job.id,
            "attempt": at.number,
            "function": function.map(|f| f.name.as_str()),
            "version": function.map(|f| f.version),
            "commit": commit,
        });
        let (state, refusal) = match scope_of(job) {
            Some(scope) => {
                if !self.followed.ready(READY_WAIT).await {
                    return Err("the state view has not caught up with the state topic".into());
                }
                let values = self.followed.read(|view| view.scope(&scope).map(|s| s.values.clone()));
                (json!(values.unwrap_or_default()), Value::Null)
            }
            None => (json!({}), json!(EffectsError::NotAFunction.to_string())),
        };
        let context = json!({
            "job": job_info,
            "state": state,
            "limits": self.limits,
            "topics": job.spec.publish,
            "refusal": refusal,
        });
        Ok(serde_json::to_vec(&context).expect("json values serialise"))
    }

    /// `effects` of a succeeded run of `job`, checked against the bounds, the
    /// job's topics and the committed state; none when they are empty.
    pub fn check(&self, job: &Job, effects: Effects) -> Result<Option<Effects>, EffectsError> {
        if effects.is_empty() {
            return Ok(None);
        }
        if scope_of(job).is_none() && !effects.ops.is_empty() {
            return Err(EffectsError::NotAFunction);
        }
        let committed = scope_of(job).and_then(|scope| self.followed.read(|view| view.scope(&scope).cloned()));
        effects.check(&self.limits, &job.spec.publish, &committed.unwrap_or_default())?;
        Ok(Some(effects))
    }
}

/// The records of the transaction that ends `job` with `result` and `effects`:
/// its published records, its state commit, and its result.
pub fn transaction(
    topics: &TopicSettings,
    job: &Job,
    result: &JobResult,
    effects: &Effects,
) -> Result<Vec<Outgoing>, serde_json::Error> {
    let job_id = job.id.to_string();
    let mut records = Vec::with_capacity(effects.publish.len() + 2);
    for record in &effects.publish {
        let mut headers = vec![("gitfaas-job-id".to_owned(), job_id.clone().into_bytes())];
        if let Some(function) = &job.spec.function {
            headers.push(("gitfaas-function".to_owned(), function.name.clone().into_bytes()));
        }
        records.push(Outgoing {
            topic: record.topic.clone(),
            key: record.key.clone().map(String::into_bytes),
            payload: serde_json::to_vec(&record.value)?,
            headers,
        });
    }
    if let (Some(scope), false) = (scope_of(job), effects.ops.is_empty()) {
        let commit = StateCommit::new(scope, job_id, effects.ops.clone());
        records.push(Outgoing::message(topics, &commit)?);
    }
    records.push(Outgoing::message(topics, &finished(result))?);
    Ok(records)
}

fn finished(result: &JobResult) -> JobEvent {
    JobEvent::Finished(result.clone().within_message_limit())
}

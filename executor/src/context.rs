//! The context a python or node function gets (its third parameter): the job,
//! its named function's committed state, the bounds, the topics it may publish
//! to. What the run asks for in return ([`Effects`]) is checked here again (the
//! sandbox is not trusted) and turned into the records of the one transaction
//! that also carries the job's result (see `crate::processing`).

use std::time::Duration;

use gitfaas_common::kafka::Outgoing;
use gitfaas_common::schema::Attempt;
use gitfaas_common::settings::TopicSettings;
use gitfaas_common::state::{Effects, EffectsError, FollowedState, Scope, ScopeState, StateCommit, StateLimits};
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
        let scope = scope_of(job);
        if scope.is_none() && !effects.ops.is_empty() {
            return Err(EffectsError::NotAFunction);
        }
        // checked under the view's lock: no copy of the scope (its applied job ids grow with the jobs)
        let none = ScopeState::default();
        self.followed.read(|view| {
            let committed = scope.as_ref().and_then(|scope| view.scope(scope)).unwrap_or(&none);
            effects.check(&self.limits, &job.spec.publish, committed)
        })?;
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

/// The runtimes without a runner of ours (`command`, `wasm`) find their context
/// here, in `/input` (read-only to them).
pub const CONTEXT_FILE: &str = ".gitfaas-context.json";
/// …and write their changes and records here, in `/output`: one JSON object per
/// line, a state operation (`{"op": "put", "key": K, "value": V}`, `{"op": "incr",
/// "key": K, "by": N}`, `{"op": "delete", "key": K}`) or a record (`{"op": "publish",
/// "topic": T, "key": K, "value": V}`, `key` optional).
pub const EFFECTS_FILE: &str = ".gitfaas-effects";
/// The most of an effects file read.
const MAX_EFFECTS_BYTES: u64 = 8 << 20;

/// Whether a run of `runtime` gets its context as files (rather than from a runner).
pub fn by_files(runtime: &str) -> bool {
    matches!(runtime, "command" | gitfaas_sandbox::WASM_RUNTIME)
}

/// Writes the context into a run's input directory.
pub fn write_context(input_dir: &std::path::Path, context: &[u8]) -> std::io::Result<()> {
    std::fs::write(input_dir.join(CONTEXT_FILE), context)
}

/// The effects a run wrote to its output directory, if it wrote any: a regular
/// file only (never a link the function made to a file of the host's).
pub fn read_effects(output_dir: &std::path::Path) -> Result<Option<Effects>, String> {
    let path = output_dir.join(EFFECTS_FILE);
    match std::fs::symlink_metadata(&path) {
        Err(_) => return Ok(None),
        Ok(meta) if !meta.is_file() => return Err(format!("effects: /output/{EFFECTS_FILE} is not a regular file")),
        Ok(_) => {}
    }
    let text = crate::data::read_regular(&path, MAX_EFFECTS_BYTES)
        .map_err(|e| format!("effects: /output/{EFFECTS_FILE}: {e} (at most {MAX_EFFECTS_BYTES} bytes)"))?;
    parse_effects(&text).map(Some)
}

/// One line of an effects file: a state operation, or a record to publish.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Line {
    Publish(PublishLine),
    State(gitfaas_common::state::StateOp),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishLine {
    #[allow(dead_code)]
    op: PublishOp,
    topic: String,
    #[serde(default)]
    key: Option<String>,
    value: Value,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum PublishOp {
    Publish,
}

fn parse_effects(text: &[u8]) -> Result<Effects, String> {
    let text = std::str::from_utf8(text).map_err(|_| format!("effects: /output/{EFFECTS_FILE} is not UTF-8"))?;
    let mut effects = Effects::default();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::State(op)) => effects.ops.push(op),
            Ok(Line::Publish(p)) => {
                effects.publish.push(gitfaas_common::state::Publish { topic: p.topic, key: p.key, value: p.value })
            }
            Err(_) => {
                return Err(format!("effects: line {} of /output/{EFFECTS_FILE} is no operation: {line:.200}", n + 1))
            }
        }
    }
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use gitfaas_common::state::StateOp;
    use serde_json::json;

    use super::parse_effects;

    #[test]
    fn an_effects_file_is_one_operation_or_record_per_line() {
        let text = br#"{"op": "incr", "key": "the", "by": 2}

{"op": "put", "key": "k", "value": [1]}
{"op": "publish", "topic": "words", "value": {"n": 1}}
{"op": "delete", "key": "k"}"#;
        let effects = parse_effects(text).unwrap();
        assert_eq!(effects.ops.len(), 3);
        assert_eq!(effects.ops[0], StateOp::Incr { key: "the".into(), by: 2 });
        assert_eq!((effects.publish[0].topic.as_str(), &effects.publish[0].value), ("words", &json!({"n": 1})));
        let bad = parse_effects(b"{\"op\": \"clear\"}\n{\"op\": \"incr\", \"key\": \"x\", \"by\": 1.5}").unwrap_err();
        assert!(bad.contains("line 2"), "{bad}");
        assert!(parse_effects(b"{\"op\": \"publish\", \"topic\": \"t\"}").is_err(), "a record needs a value");
    }
}

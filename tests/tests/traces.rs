//! One job, one trace: the frontend's request span, the executor's spans of the
//! attempt and the frontend's span applying its result all share a trace id and
//! hang together by their parents — as a real OTLP/HTTP receiver decodes them
//! from the services' exporter (no mock of the exporter).
//!
//! The frontend and executor run in this process, so one tracer provider (the
//! first installed) exports every service's spans to the receiver.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use gitfaas_common::settings::TelemetrySettings;
use gitfaas_tests::otlp::{ReceivedSpan, Receiver};
use gitfaas_tests::{git_repo, Stack};
use serde_json::json;

/// The spans one job's trace must hold (names are stable: dashboards and
/// operators look for them).
const JOB_SPANS: [&str; 9] = [
    "http request",
    "submit job",
    "process job",
    "git fetch",
    "git checkout",
    "sandbox start",
    "run",
    "result publish",
    "apply result",
];

#[tokio::test(flavor = "multi_thread")]
async fn one_job_yields_one_connected_trace_from_the_request_to_the_applied_result() {
    let receiver = Receiver::start();
    let settings = TelemetrySettings {
        log_filter: "warn,gitfaas=info".into(),
        otlp_endpoint: Some(receiver.endpoint()),
        ..Default::default()
    };
    // the blocking exporter's client is built outside the runtime
    let telemetry = std::thread::spawn(move || gitfaas_common::telemetry::init("gitfaas-tests", &settings))
        .join()
        .expect("telemetry thread")
        .expect("telemetry with otlp export");
    let stack = Stack::start(true);
    let repo = git_repo(&[
        ("gitfaas.toml", "runtime = \"python\"\n"),
        ("main.py", "def main(data, credentials):\n    return {'echo': data}\n"),
    ]);
    let id = stack.submit_ok(&json!({"repo": repo, "input": {"traced": true}})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "succeeded", "{result}");

    // the apply span ends just after the result is stored: flush until it is in
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace = loop {
        let flushed = std::thread::scope(|s| s.spawn(|| telemetry.force_flush()).join());
        flushed.expect("flush thread");
        let trace = trace_of(&receiver.spans(), &id);
        let applied = trace
            .iter()
            .any(|s| s.name == "apply result" && s.attributes.get("event").map(String::as_str) == Some("finished"));
        if applied || Instant::now() > deadline {
            break trace;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let names: HashSet<&str> = trace.iter().map(|s| s.name.as_str()).collect();
    for wanted in JOB_SPANS {
        assert!(names.contains(wanted), "span `{wanted}` missing from the job's trace; it has {names:?}");
    }
    let finished = trace
        .iter()
        .filter(|s| s.name == "apply result" && s.attributes.get("event").map(String::as_str) == Some("finished"));
    assert_eq!(finished.count(), 1, "the result is applied once, in this trace");
    let request = trace.iter().find(|s| s.name == "http request").unwrap();
    assert_eq!(request.attributes.get("http.route").map(String::as_str), Some("/v1/jobs"), "{:?}", request.attributes);
    assert_eq!(request.attributes.get("http.response.status_code").map(String::as_str), Some("202"));

    // one root, the request; every other span's parent is a span of the trace
    let ids: HashMap<&[u8], &ReceivedSpan> = trace.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let roots: Vec<&str> = trace.iter().filter(|s| s.parent_span_id.is_empty()).map(|s| s.name.as_str()).collect();
    assert_eq!(roots, ["http request"], "one root span");
    for span in trace.iter().filter(|s| !s.parent_span_id.is_empty()) {
        assert!(
            ids.contains_key(span.parent_span_id.as_slice()),
            "span `{}` has a parent outside the trace",
            span.name
        );
    }
    // the executor's spans descend from the job's processing, which the request started
    let ancestors = |span: &ReceivedSpan| {
        let mut names = Vec::new();
        let mut at = span;
        while let Some(parent) = ids.get(at.parent_span_id.as_slice()) {
            names.push(parent.name.clone());
            at = parent;
        }
        names
    };
    for name in ["git fetch", "git checkout", "sandbox start", "run", "result publish"] {
        let span = trace.iter().find(|s| s.name == name).unwrap();
        let up = ancestors(span);
        assert!(
            up.contains(&"process job".to_owned()) && up.contains(&"submit job".to_owned()),
            "`{name}` under {up:?}"
        );
    }
    let apply = trace
        .iter()
        .find(|s| s.name == "apply result" && s.attributes.get("event").map(String::as_str) == Some("finished"))
        .unwrap();
    assert!(ancestors(apply).contains(&"result publish".to_owned()), "the apply span follows the result's publication");
}

/// Every received span of the trace the job's `process job` span is in.
fn trace_of(spans: &[ReceivedSpan], job_id: &str) -> Vec<ReceivedSpan> {
    let Some(process) = spans
        .iter()
        .find(|s| s.name == "process job" && s.attributes.get("job_id").map(String::as_str) == Some(job_id))
    else {
        return Vec::new();
    };
    spans.iter().filter(|s| s.trace_id == process.trace_id).cloned().collect()
}

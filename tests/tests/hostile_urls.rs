//! Repository URLs and data links aimed at internal addresses, under the default
//! policy (the harness's loopback opt-in removed). Literals in every spelling are
//! refused by the frontend with problem+json before any job exists; a name that
//! only DNS knows to be loopback is refused by the executor before git connects.
//! No test here lets a connection leave loopback: the submit tests run against a
//! frontend without an executor, so even a URL wrongly accepted is never fetched.

use std::sync::{Mutex, OnceLock};

use gitfaas_tests::{git_repo, read_topic, Stack};
use serde_json::{json, Value};

/// A stack whose frontend and executor (if any) keep the default, blocking policy.
/// Stacks start one at a time (topics created at once can briefly lack leaders).
fn blocking(with_executor: bool) -> Stack {
    static STARTING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    Stack::start_with(
        with_executor,
        Box::new(|frontend, executor| {
            frontend.frontend.policy.allowed_ranges.clear();
            executor.executor.policy.allowed_ranges.clear();
        }),
    )
}

/// Only a frontend: nothing submitted to it is ever fetched.
fn frontend_only() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| blocking(false))
}

fn blocking_stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| blocking(true))
}

const INTERNAL_HOSTS: &[&str] = &[
    "127.0.0.1",
    "127.0.0.2",
    "2130706433",
    "0x7f000001",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "169.254.169.254",
    "metadata.google.internal",
    "localhost",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "[fc00::1]",
    "[fe80::1]",
];

/// The frontend's answer to `body`: a 400 problem naming `field`.
async fn assert_problem(stack: &Stack, body: &Value, field: &str) -> Value {
    let response = stack.submit(body).await;
    assert_eq!(response.status(), 400, "{body}");
    assert_eq!(response.headers()["content-type"], "application/problem+json", "{body}");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], field, "{body}: {problem}");
    problem
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_repository_urls_in_every_spelling_are_refused_at_submit() {
    let stack = frontend_only();
    for host in INTERNAL_HOSTS {
        for scheme in ["git", "http", "https"] {
            // the stack's own Redis port, as an attacker would try it
            let body = json!({"repo": format!("{scheme}://{host}:6390/r"), "runtime": "python"});
            let problem = assert_problem(stack, &body, "repo").await;
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains("address") && detail.contains("allowed_ranges"), "{host}: {detail}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_data_links_in_every_spelling_are_refused_at_submit() {
    let stack = frontend_only();
    let repo = "https://git.example.org/r.git"; // never fetched: there is no executor
    for host in INTERNAL_HOSTS {
        let link = json!([{"name": "in.csv", "url": format!("http://{host}/latest/meta-data")}]);
        assert_problem(stack, &json!({"repo": repo, "sources": link}), "sources").await;
        let link = json!([{"name": "out.json", "url": format!("http://{host}/x"), "method": "PUT"}]);
        assert_problem(stack, &json!({"repo": repo, "sinks": link}), "sinks").await;
    }
}

/// This machine's own name, which resolves to loopback (Debian lists it in
/// /etc/hosts) but is no name the policy knows without asking DNS.
fn name_resolving_to_loopback() -> String {
    let name = std::fs::read_to_string("/etc/hostname").unwrap().trim().to_owned();
    let resolved: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 0)).unwrap().collect();
    assert!(resolved.iter().all(|a| a.ip().is_loopback()), "{name} must resolve to loopback: {resolved:?}");
    name
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_resolving_to_loopback_is_refused_before_git_connects() {
    let stack = blocking_stack();
    let name = name_resolving_to_loopback();
    // a real repository on the test git daemon (loopback): only the policy stands between
    let served =
        git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", "def main(d, c):\n    return 1\n")]);
    let repo = served.replacen("127.0.0.1", &name, 1);
    assert_ne!(repo, served);
    let id = stack.submit_ok(&json!({"repo": repo})).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "rejected", "{result}");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("host `{name}` is refused: loopback address 127.0.0.1")), "{result}");
    assert_eq!(result["attempt"], 1, "not retried: {result}");
    assert!(result["commit_sha"].is_null(), "nothing was fetched: {result}");
    let dead_letter = stack.topics().dead_letter;
    let dead = tokio::task::spawn_blocking(move || read_topic(&dead_letter)).await.unwrap();
    assert!(!dead.iter().any(|(key, _, _)| key.as_deref() == Some(id.as_str())), "dead-lettered");
}

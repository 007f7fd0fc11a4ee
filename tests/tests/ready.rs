//! Ready sandboxes, against a real executor and Docker: the pool keeps a started,
//! never-used sandbox per runtime (with the default limits) and refills it after a
//! claim; a function's first run takes one (`"ready": true`), and what it finds
//! there is its own checkout and nothing from before — no process but init and
//! the runner, empty scratch, input, output and dependency directories, no
//! environment of anyone's; two owners' first runs never see each other's code;
//! a push (a new commit) is run by the next job; the pool stays within its
//! container bound; gVisor serves ready sandboxes too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gitfaas_tests::sandbox::{finished, start, Options};
use gitfaas_tests::{commit_to, git_repo, Provider, Stack};
use serde_json::{json, Value};

/// The limits the executor keeps ready sandboxes with (`executor.warm.ready`).
fn ready_limits() -> Value {
    json!({"memory_mb": 256, "cpu_millis": 1000, "pids": 128})
}

fn stack() -> &'static Stack {
    static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
    STACK.get_or_init(|| start(Options::runtime("runc")))
}

/// Held by each test of the shared stack: a test that waited for a ready
/// sandbox must be the one that claims it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a function finds in its sandbox: other processes, the directories it may
/// see, its environment's names, its checkout.
const LOOK: &str = r#"import os

def listing(top):
    try:
        return sorted(os.listdir(top))
    except OSError as error:
        return ["<%s>" % error]

def main(data, credentials):
    me, parent = os.getpid(), os.getppid()
    procs = []
    for p in os.listdir('/proc'):
        if p.isdigit() and int(p) != me:
            cmd = open('/proc/%s/cmdline' % p, 'rb').read().split(b'\0')
            procs.append({'pid': int(p), 'parent': int(p) == parent, 'argv': [a.decode(errors='replace')[:40] for a in cmd[:4]]})
    code = []
    for root, dirs, files in os.walk('/code'):
        code += [os.path.relpath(os.path.join(root, f), '/code') for f in files]
    return {'procs': procs, 'tmp': listing('/tmp'), 'output': listing('/output'), 'input': listing('/input'),
            'deps': listing('/deps'), 'code': sorted(code), 'env': sorted(os.environ), 'uid': os.getuid(), 'data': data}
"#;

async fn run(stack: &Stack, token: &str, body: Value) -> (String, Value) {
    let response = stack.submit_as(token, &body).await;
    assert_eq!(response.status(), 202, "{body}");
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let result = finished(stack, &id).await;
    (id, result)
}

/// The pool's containers on Docker: name → whether it is a ready one (never claimed).
async fn pool_containers(stack: &Stack) -> HashMap<String, bool> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let docker = bollard::Docker::connect_with_defaults().expect("docker");
    let executor = format!("{}={}", gitfaas_sandbox::EXECUTOR_LABEL, stack.executor_id);
    let warm = format!("{}=true", gitfaas_sandbox::WARM_LABEL);
    let filters = HashMap::from([("label", vec![executor.as_str(), warm.as_str()])]);
    let options = ListContainersOptionsBuilder::default().filters(&filters).build();
    let found = docker.list_containers(Some(options)).await.expect("list containers");
    let name = |c: &bollard::models::ContainerSummary| c.names.clone().unwrap_or_default().concat();
    found.iter().map(|c| (name(c), name(c).starts_with("/gitfaas-ready-"))).collect()
}

/// Waits (up to 60 s) until the pool holds `n` ready sandboxes.
async fn until_ready(stack: &Stack, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = pool_containers(stack).await.values().filter(|r| **r).count();
        if ready >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{ready} ready sandboxes after 60 s, wanted {n}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that `found` (what [`LOOK`] returned) is a sandbox that ran nothing
/// before this invocation, with `files` as its checkout.
fn assert_clean(found: &Value, files: &[&str]) {
    // init, the runner and (the invocation's parent) the zygote that imported the function
    let procs = found["procs"].as_array().unwrap();
    assert!(procs.len() <= 3, "{procs:?}");
    for proc in procs {
        let argv = proc["argv"].to_string();
        let expected = proc["pid"] == 1 && argv.contains("docker-init")
            || argv.contains("python3") && argv.contains("gitfaas resident python runner");
        assert!(expected, "a process that is neither init, the runner nor its zygote: {proc} (all: {procs:?})");
    }
    for dir in ["tmp", "output", "input", "deps"] {
        assert_eq!(found[dir], json!([]), "/{dir} holds something: {found}");
    }
    assert_eq!(found["code"], json!(files), "only the function's own checkout: {found}");
    let env: Vec<&str> = found["env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for name in &env {
        assert!(!name.starts_with("GITFAAS_") || *name == "GITFAAS_PYTHON_DEPS", "{name} in {env:?}");
    }
    assert_ne!(found["uid"], 0, "the function does not run as root");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_run_takes_a_ready_sandbox_that_holds_nothing_from_before_and_the_pool_refills() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stack = stack();
    until_ready(stack, 2).await; // python and node, prefilled
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", LOOK)]);
    let body = json!({"repo": repo, "input": "first", "resources": ready_limits()});
    let (id, result) = run(stack, &stack.token, body.clone()).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!((&result["ready"], &result["warm"]), (&json!(true), &json!(null)), "{result}");
    assert_eq!(result["output"]["data"], "first");
    assert_clean(&result["output"], &["gitfaas.toml", "main.py"]);
    // it is the function's warm sandbox now, named after the job that claimed it
    let names = pool_containers(stack).await;
    assert!(names.keys().any(|n| n.starts_with(&format!("/gitfaas-warm-{id}-"))), "{names:?}");
    let (_, again) = run(stack, &stack.token, body).await;
    assert_eq!((&again["warm"], &again["ready"]), (&json!(true), &json!(null)), "{again}");
    until_ready(stack, 2).await; // the claimed one was replaced
}

#[tokio::test(flavor = "multi_thread")]
async fn two_owners_first_runs_see_only_their_own_checkout() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stack = stack();
    let bob = Provider::shared().token("bob").await;
    for (token, own) in [(stack.token.clone(), "alice.txt"), (bob, "bob.txt")] {
        until_ready(stack, 2).await;
        let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", LOOK), (own, own)]);
        let body = json!({"repo": repo, "input": own, "resources": ready_limits()});
        let (_, result) = run(stack, &token, body).await;
        assert_eq!(result["ready"], true, "{result}");
        assert_clean(&result["output"], &[own, "gitfaas.toml", "main.py"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_is_run_by_the_next_job() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stack = stack();
    let source = |v: u32| format!("def main(data, credentials):\n    return {v}\n");
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", &source(1))]);
    let body = json!({"repo": repo, "resources": ready_limits()});
    for version in 1..=3 {
        if version > 1 {
            commit_to(&repo, &[("main.py", &source(version))]);
        }
        let (_, result) = run(stack, &stack.token, body.clone()).await;
        assert_eq!(result["output"], version, "{result}");
        assert_eq!(result["warm"], Value::Null, "a new commit is never served by the last one's sandbox");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_stays_within_its_container_bound() {
    let stack = Stack::start_with(
        true,
        Box::new(|_, executor| {
            executor.executor.warm.max_containers = 2;
            executor.executor.warm.ready.per_shape = 3;
        }),
    );
    let stack = &stack;
    until_ready(stack, 2).await;
    let mut seen = 0;
    for n in 0..4 {
        let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", LOOK)]);
        let (_, result) =
            run(stack, &stack.token, json!({"repo": repo, "input": n, "resources": ready_limits()})).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        for _ in 0..10 {
            let containers = pool_containers(stack).await;
            seen = seen.max(containers.len());
            assert!(containers.len() <= 2, "{containers:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(seen, 2, "the pool was used up to its bound");
}

#[tokio::test(flavor = "multi_thread")]
async fn gvisor_serves_ready_sandboxes_too() {
    let stack = start(Options::runtime("runsc"));
    let stack = &stack;
    until_ready(stack, 2).await; // python and node
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", LOOK)]);
    let (_, result) = run(stack, &stack.token, json!({"repo": repo, "input": 1, "resources": ready_limits()})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["ready"], true, "{result}");
    assert_eq!(result["output"]["code"], json!(["gitfaas.toml", "main.py"]), "{result}");
}

/// Imported once per sandbox: the module's import-time token is the same for every
/// warm invocation, each of which is a process of its own that a mutation of the
/// last one does not reach.
const IMPORTED: &str = r#"import os, time
TOKEN = os.urandom(8).hex()
SEEN = []
print('imported', TOKEN)

def main(data, credentials):
    SEEN.append(data)
    return {'token': TOKEN, 'pid': os.getpid(), 'seen': list(SEEN)}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_function_is_imported_once_and_each_invocation_is_a_fresh_process() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stack = stack();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", IMPORTED)]);
    let mut runs = Vec::new();
    for n in 0..3 {
        let (_, result) =
            run(stack, &stack.token, json!({"repo": repo, "input": n, "resources": ready_limits()})).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["output"]["seen"], json!([n]), "a fresh process: {result}");
        runs.push(result);
    }
    assert!(runs[1]["warm"] == true && runs[2]["warm"] == true, "{runs:?}");
    let token = &runs[0]["output"]["token"];
    assert!(runs.iter().all(|r| &r["output"]["token"] == token), "imported once: {runs:?}");
    let pids: std::collections::BTreeSet<_> = runs.iter().map(|r| r["output"]["pid"].to_string()).collect();
    assert_eq!(pids.len(), 3, "{runs:?}");
    assert!(runs[0]["stderr_tail"].as_str().unwrap().contains("imported"), "the import's print is logged: {runs:?}");
}

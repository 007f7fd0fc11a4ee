//! Warm sandboxes against hostile functions: whatever one invocation leaves
//! behind (files in /tmp and /output, a background process, a patched module, a
//! global, an environment variable) the next invocation of the same function does
//! not find; a timeout or a crash discards the container, so the next run starts
//! cold — seen from Docker's side, by container ids; two owners never share a
//! container. An invocation that goes after the runner, init or a later
//! invocation (ptrace, their memory, their descriptors, a resident process, a
//! directory nest past the path limit) reaches none of them. The executor's warm
//! pool is on, as by default.

use std::collections::HashMap;

use gitfaas_tests::sandbox::{finished, start, Options};
use gitfaas_tests::{git_repo, Provider, Stack};
use serde_json::{json, Value};

fn stack() -> &'static Stack {
    static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
    STACK.get_or_init(|| start(Options::runtime("runc")))
}

async fn run(stack: &Stack, token: &str, repo: &str, extra: Value) -> (String, Value) {
    let mut body = json!({"repo": repo, "timeout_secs": 20});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let response = stack.submit_as(token, &body).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let result = finished(stack, &id).await;
    (id, result)
}

fn warm(result: &Value) -> bool {
    result["warm"] == true
}

/// The warm containers of the stack's executor: id → the labels Docker holds.
async fn warm_containers(stack: &Stack) -> HashMap<String, String> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let docker = bollard::Docker::connect_with_defaults().expect("docker");
    let executor = format!("{}={}", gitfaas_sandbox::EXECUTOR_LABEL, stack.executor_id);
    let warm = format!("{}=true", gitfaas_sandbox::WARM_LABEL);
    let filters = HashMap::from([("label", vec![executor.as_str(), warm.as_str()])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let found = docker.list_containers(Some(options)).await.expect("list containers");
    let name = |c: &bollard::models::ContainerSummary| c.names.clone().unwrap_or_default().concat();
    found.into_iter().map(|c| (c.id.clone().unwrap_or_default(), name(&c))).collect()
}

/// The id and name of the warm container first started for job `id` (it is
/// named `gitfaas-warm-<job>-<owner digest>` once claimed), if it still exists.
async fn container_of(stack: &Stack, id: &str) -> Option<(String, String)> {
    let containers = warm_containers(stack).await;
    containers.into_iter().find(|(_, name)| name.contains(&format!("gitfaas-warm-{id}-")))
}

const LEAVER: &str = r#"import json, os, subprocess, sys
STATE = []

def look():
    me = os.getpid()
    procs = []
    for p in os.listdir('/proc'):
        if p.isdigit() and int(p) != me:
            try:
                procs.append(open('/proc/%s/cmdline' % p, 'rb').read().decode(errors='replace'))
            except OSError:
                pass
    return {
        'tmp': sorted(os.listdir('/tmp')),
        'output': sorted(os.listdir('/output')),
        'input': os.path.isdir('/input'),
        'shm': sorted(os.listdir('/dev/shm')),
        'lingering': [p for p in procs if 'gitfaas-left-behind' in p],
        'state': list(STATE),
        'patched': hasattr(json, 'left_behind') or os.getcwd() == 'patched',
        'env': os.environ.get('LEFT_BEHIND'),
    }

def main(d, c):
    seen = look()
    if d == 'dirty':
        open('/tmp/left', 'w').write('x')
        os.makedirs('/tmp/locked/deeper')
        os.chmod('/tmp/locked', 0)
        open('/output/left', 'w').write('x')
        open('/dev/shm/left', 'w').write('x')
        subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', 'gitfaas-left-behind'],
                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        if os.fork() == 0:
            os.setsid()
            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)', 'gitfaas-left-behind'])
        STATE.append('left')
        json.left_behind = True
        os.getcwd = lambda: 'patched'
        os.environ['LEFT_BEHIND'] = '1'
    return seen
"#;

fn clean() -> Value {
    json!({"tmp": [], "output": [], "input": true, "shm": [], "lingering": [], "state": [], "patched": false, "env": null})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_python_invocation_finds_nothing_the_last_one_left_behind() {
    let stack = stack();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", LEAVER)]);
    let (first, dirty) = run(stack, &stack.token, &repo, json!({"input": "dirty"})).await;
    assert_eq!(dirty["status"], "succeeded", "{dirty}");
    assert_eq!(dirty["output"], clean());
    assert!(!warm(&dirty), "the first run of a function starts its container: {dirty}");
    let container = container_of(stack, &first).await.expect("the container is kept warm");
    for _ in 0..2 {
        let (_, next) = run(stack, &stack.token, &repo, json!({"input": "look"})).await;
        assert_eq!(next["status"], "succeeded", "{next}");
        assert!(warm(&next), "served by the warm container: {next}");
        assert_eq!(next["output"], clean(), "left behind: {next}");
    }
    assert_eq!(container_of(stack, &first).await, Some(container), "one container served all three");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_node_invocation_finds_no_global_and_no_file_of_the_last_one() {
    let stack = stack();
    let main = "const fs = require('fs');\nlet calls = 0;\nexports.main = (d) => {\n  calls += 1;\n  const seen = {calls, global: globalThis.leftBehind || null, tmp: fs.readdirSync('/tmp')};\n  globalThis.leftBehind = 'yes';\n  fs.writeFileSync('/tmp/left', 'x');\n  require('path').join = () => 'patched';\n  return seen;\n};\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"node\"\n"), ("main.js", main)]);
    let expected = json!({"calls": 1, "global": null, "tmp": []});
    let (_, first) = run(stack, &stack.token, &repo, json!({})).await;
    assert_eq!((&first["status"], &first["output"]), (&json!("succeeded"), &expected), "{first}");
    let (_, second) = run(stack, &stack.token, &repo, json!({})).await;
    assert!(warm(&second), "{second}");
    assert_eq!((&second["status"], &second["output"]), (&json!("succeeded"), &expected), "{second}");
}

const MOODY: &str = "import os, time\ndef main(d, c):\n    if d == 'hang':\n        time.sleep(60)\n    if d == 'crash':\n        os.kill(os.getpid(), 11)\n    return 'fine'\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_or_a_crash_discards_the_container_and_the_next_run_starts_cold() {
    let stack = stack();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", MOODY)]);
    let (first, cold) = run(stack, &stack.token, &repo, json!({"input": "ok"})).await;
    let (_, hot) = run(stack, &stack.token, &repo, json!({"input": "ok"})).await;
    assert_eq!(
        (cold["output"].as_str(), warm(&cold), hot["output"].as_str(), warm(&hot)),
        (Some("fine"), false, Some("fine"), true)
    );
    assert!(container_of(stack, &first).await.is_some());

    let (_, hung) = run(stack, &stack.token, &repo, json!({"input": "hang", "timeout_secs": 2})).await;
    assert_eq!(hung["status"], "timed_out", "{hung}");
    assert!(warm(&hung), "the timeout hit a warm invocation: {hung}");
    assert_eq!(container_of(stack, &first).await, None, "the timed-out container is gone");

    let (restarted, after) = run(stack, &stack.token, &repo, json!({"input": "ok"})).await;
    assert_eq!((after["output"].as_str(), warm(&after)), (Some("fine"), false), "{after}");
    let (_, crashed) = run(stack, &stack.token, &repo, json!({"input": "crash"})).await;
    assert_eq!((crashed["status"].as_str(), crashed["exit_code"].as_i64()), (Some("failed"), Some(139)), "{crashed}");
    assert_eq!(container_of(stack, &restarted).await, None, "the crashed container is gone");
    let (last, cold_again) = run(stack, &stack.token, &repo, json!({"input": "ok"})).await;
    assert_eq!((cold_again["output"].as_str(), warm(&cold_again)), (Some("fine"), false), "{cold_again}");
    assert!(container_of(stack, &last).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_owners_never_share_a_warm_container() {
    let stack = stack();
    let bob = Provider::shared().token("bob").await;
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", MOODY)]);
    let (alices, first) = run(stack, &stack.token, &repo, json!({"input": "ok"})).await;
    let (_, again) = run(stack, &stack.token, &repo, json!({"input": "ok"})).await;
    assert!(!warm(&first) && warm(&again), "{first} {again}");
    let (bobs, bob_first) = run(stack, &bob, &repo, json!({"input": "ok"})).await;
    assert_eq!(bob_first["output"], "fine");
    assert!(!warm(&bob_first), "bob's first run does not reuse alice's container: {bob_first}");
    let (_, bob_again) = run(stack, &bob, &repo, json!({"input": "ok"})).await;
    assert!(warm(&bob_again), "{bob_again}");
    let (alice_container, alice_name) = container_of(stack, &alices).await.expect("alice's container");
    let (bob_container, bob_name) = container_of(stack, &bobs).await.expect("bob's container");
    assert_ne!(alice_container, bob_container);
    let owner_of = |name: &str| name.rsplit('-').next().unwrap().to_owned();
    assert_ne!(owner_of(&alice_name), owner_of(&bob_name), "{alice_name} {bob_name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_container_is_locked_down_like_a_cold_one() {
    let stack = stack();
    let main = "import time\ndef main(d, c):\n    time.sleep(d)\n    return 'rested'\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", main)]);
    let body = json!({"repo": repo, "input": 3, "resources": {"memory_mb": 96, "cpu_millis": 500, "pids": 40}});
    let id = stack.submit_ok(&body).await;
    let container = gitfaas_tests::sandbox::running_container(&id).await;
    let (host, config) = (container.host_config.clone().unwrap(), container.config.clone().unwrap());
    assert_eq!(config.labels.unwrap()[gitfaas_sandbox::WARM_LABEL], "true");
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert!(host.tmpfs.unwrap()["/tmp"].contains("noexec"));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    // root only to run each invocation as the configured user, never more
    assert_eq!(host.cap_add, Some(vec!["SETUID".to_owned(), "SETGID".to_owned()]));
    assert_eq!(config.user.as_deref(), Some("0:0"));
    assert!(config.env.unwrap().contains(&"GITFAAS_RUN_AS=65534:65534".to_owned()));
    gitfaas_tests::sandbox::assert_profile_denies_reaching_other_processes(&host.security_opt.unwrap());
    assert_eq!((host.memory, host.memory_swap), (Some(96 << 20), Some(96 << 20)));
    assert_eq!((host.nano_cpus, host.pids_limit), (Some(500_000_000), Some(40)));
    let mounts = container.mounts.unwrap();
    let rw: HashMap<_, _> = mounts.iter().map(|m| (m.destination.clone().unwrap(), m.rw.unwrap())).collect();
    let expected = [("/code", false), ("/input", false), ("/output", true), ("/deps", false)];
    assert_eq!(rw, expected.into_iter().map(|(m, rw)| (m.to_owned(), rw)).collect());
    let result = finished(stack, &id).await;
    assert_eq!(result["output"], "rested", "{result}");
    let (_, again) = run(stack, &stack.token, &repo, json!({"input": 0, "resources": body["resources"]})).await;
    assert!(warm(&again), "the same limits reuse it: {again}");
    let (_, other) = run(stack, &stack.token, &repo, json!({"input": 0, "resources": {"memory_mb": 128}})).await;
    assert!(!warm(&other), "other limits get a container of their own: {other}");
}

/// Goes after everything beyond its own invocation: init (pid 1), the runner and
/// (python) the zygote that imported the function by ptrace, process_vm_readv, their memory and their stdout (where
/// it writes forged frames if it can), signals; leaves a resident process and a
/// directory nest past PATH_MAX in /tmp and /output. `look` reports what a later
/// invocation sees.
const ATTACKER: &str = r#"import ctypes, errno, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
FORGED = b'O' + (8).to_bytes(4, 'big') + b'"forged"' + b'X' + (22).to_bytes(4, 'big') + b'{"code":0,"oom":false}'

def outcome(call):
    try:
        call()
        return 'done'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def forge(path):
    with open(path, 'wb', buffering=0) as channel:
        channel.write(FORGED)

def nest(top):
    os.chdir(top)
    for _ in range(500):
        os.mkdir('d' * 10)
        os.chdir('d' * 10)
    open('deep', 'w').write('x')
    return len(top) + 500 * 11

def syscall_errno(result):
    return 'done' if result >= 0 else errno.errorcode.get(ctypes.get_errno(), 'E?')

def runner_and_zygote():
    """The resident runner (root) and the zygote that imported this function (the
    function's user, the runner's command line), by their /proc entries."""
    runner = zygote = None
    for p in os.listdir('/proc'):
        if p.isdigit() and int(p) not in (1, os.getpid()):
            try:
                uid = [l for l in open('/proc/%s/status' % p) if l.startswith('Uid:')][0].split()[1]
                resident = b'gitfaas resident' in open('/proc/%s/cmdline' % p, 'rb').read()
            except (OSError, IndexError):
                continue
            if uid == '0':
                runner = int(p)
            elif resident:
                zygote = int(p)
    return runner or os.getppid(), zygote

def attack():
    report = {}
    runner, parent = runner_and_zygote()
    if parent is not None:
        # the zygote that imported the function (its user's): closed to it, and then stopped
        report['zygote ptrace'] = syscall_errno(libc.ptrace(16, parent, 0, 0))
        report['zygote mem'] = outcome(lambda: open('/proc/%d/mem' % parent, 'r+b').close())
        report['zygote fd'] = outcome(lambda: os.listdir('/proc/%d/fd' % parent))
    for name, pid in (('init', 1), ('runner', runner)):
        report[name + ' ptrace'] = syscall_errno(libc.ptrace(16, pid, 0, 0))  # PTRACE_ATTACH
        buf = ctypes.create_string_buffer(8)
        local = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 8)
        remote = (ctypes.c_void_p * 2)(4096, 8)
        report[name + ' process_vm_readv'] = syscall_errno(libc.process_vm_readv(pid, local, 1, remote, 1, 0))
        report[name + ' mem'] = outcome(lambda: open('/proc/%d/mem' % pid, 'r+b').close())
        report[name + ' channel'] = outcome(lambda: forge('/proc/%d/fd/1' % pid))
        report[name + ' signal'] = outcome(lambda: os.kill(pid, 0))
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)', 'gitfaas-resident'])
        os._exit(0)
    report['path'] = max(nest('/tmp'), nest('/output'))
    os.chdir('/')
    if parent is not None:
        report['zygote stop'] = outcome(lambda: os.kill(parent, 19))  # SIGSTOP: a later invocation must not hang
    return report

def look(marker):
    me = os.getpid()
    procs = []
    for p in os.listdir('/proc'):
        if p.isdigit() and int(p) not in (1, me, os.getppid()):
            try:
                cmdline = open('/proc/%s/cmdline' % p, 'rb').read().decode(errors='replace')
            except OSError:
                continue
            if 'gitfaas resident' not in cmdline:  # the runner, and a zygote made after the attack
                procs.append(cmdline)
    return {'marker': marker, 'tmp': os.listdir('/tmp'), 'output': os.listdir('/output'), 'others': procs,
            'uid': os.getuid()}

def main(d, c):
    if d == 'attack':
        return attack()
    time.sleep(0.5)  # time for anything left behind to act
    return look(d)
"#;

fn denied(report: &Value, attempts: &[&str], allowed: &[&str]) {
    for attempt in attempts {
        let outcome = report[attempt].as_str().unwrap_or_default();
        assert!(allowed.contains(&outcome), "{attempt}: {outcome} in {report}");
    }
}

async fn later_invocations_are_their_own(stack: &Stack, repo: &str) {
    for round in 0..2 {
        let marker = format!("look-{round}");
        let (_, next) = run(stack, &stack.token, repo, json!({"input": marker})).await;
        assert!(warm(&next), "served by the attacked container: {next}");
        assert_eq!(next["status"], "succeeded", "{next}");
        assert_eq!(next["output"]["marker"], marker, "a later result is its own: {next}");
        assert_eq!(next["output"]["tmp"], json!([]), "{next}");
        assert_eq!(next["output"]["output"], json!([]), "{next}");
        assert_eq!(next["output"]["others"], json!([]), "nothing of the attacker lives on: {next}");
    }
}

/// Warms `repo`'s sandbox (its invocations run as the function's user), then
/// runs its attack there: the attacker's report, once it has left a nest deeper
/// than the path limit.
async fn attack_a_warm_sandbox(stack: &Stack, repo: &str) -> Value {
    let (_, warmup) = run(stack, &stack.token, repo, json!({"input": "first"})).await;
    assert_eq!(warmup["output"]["uid"], 65534, "{warmup}");
    let (_, attacked) = run(stack, &stack.token, repo, json!({"input": "attack"})).await;
    assert!(warm(&attacked), "{attacked}");
    assert_eq!(attacked["status"], "succeeded", "{attacked}");
    let report = attacked["output"].clone();
    assert!(report["path"].as_u64().unwrap() > 4096, "{report}");
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_invocation_reaches_neither_runner_nor_init_nor_a_later_invocation() {
    let stack = stack();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", ATTACKER)]);
    let report = &attack_a_warm_sandbox(stack, &repo).await;
    let calls = ["init ptrace", "runner ptrace", "init process_vm_readv", "runner process_vm_readv"];
    denied(report, &calls, &["EPERM"]);
    let opens = ["init mem", "runner mem", "init channel", "runner channel", "init signal", "runner signal"];
    denied(report, &opens, &["EACCES", "EPERM"]);
    // the zygote (the function's user too) is non-dumpable: a signal is all that reaches it
    denied(report, &["zygote ptrace"], &["EPERM"]);
    denied(report, &["zygote mem", "zygote fd"], &["EACCES", "EPERM"]);
    assert_eq!(report["zygote stop"], "done", "{report}");
    later_invocations_are_their_own(stack, &repo).await;
}

const NODE_ATTACKER: &str = r#"const fs = require('fs');
const { spawn } = require('child_process');
const FORGED = Buffer.concat([Buffer.from('O'), Buffer.from([0, 0, 0, 8]), Buffer.from('"forged"'),
  Buffer.from('X'), Buffer.from([0, 0, 0, 22]), Buffer.from('{"code":0,"oom":false}')]);
const outcome = (call) => { try { call(); return 'done'; } catch (e) { return e.code; } };
const nest = (top) => {
  process.chdir(top);
  for (let i = 0; i < 500; i++) { fs.mkdirSync('d'.repeat(10)); process.chdir('d'.repeat(10)); }
  fs.writeFileSync('deep', 'x');
  process.chdir('/');
  return top.length + 500 * 11;
};
const attack = () => {
  const report = {};
  for (const [name, pid] of [['init', 1], ['runner', process.ppid]]) {
    report[name + ' mem'] = outcome(() => fs.closeSync(fs.openSync('/proc/' + pid + '/mem', 'r+')));
    report[name + ' channel'] = outcome(() => fs.writeSync(fs.openSync('/proc/' + pid + '/fd/1', 'w'), FORGED));
    report[name + ' signal'] = outcome(() => process.kill(pid, 0));
  }
  spawn('sleep', ['300'], { detached: true, stdio: 'ignore' }).unref();
  report.path = Math.max(nest('/tmp'), nest('/output'));
  return report;
};
const look = async (marker) => {
  await new Promise((done) => setTimeout(done, 500));
  const mine = [1, process.pid, process.ppid].map(String);
  const others = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && !mine.includes(p)).map((p) => {
    try { return fs.readFileSync('/proc/' + p + '/cmdline', 'utf8'); } catch { return null; }
  }).filter((c) => c !== null);
  return { marker, tmp: fs.readdirSync('/tmp'), output: fs.readdirSync('/output'), others, uid: process.getuid() };
};
exports.main = (d) => (d === 'attack' ? attack() : look(d));
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_node_invocation_reaches_neither_runner_nor_init_nor_a_later_invocation() {
    let stack = stack();
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"node\"\n"), ("main.js", NODE_ATTACKER)]);
    let report = &attack_a_warm_sandbox(stack, &repo).await;
    let opens = ["init mem", "runner mem", "init channel", "runner channel", "init signal", "runner signal"];
    denied(report, &opens, &["EACCES", "EPERM"]);
    later_invocations_are_their_own(stack, &repo).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_run_is_unaffected_and_keeps_the_configured_user() {
    let stack = stack();
    // the command runtime always runs cold: the function is the container's only process
    let script = "#!/bin/sh\necho \"{\\\"uid\\\": $(id -u)}\"\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"command\"\n"), ("main", script)]);
    let (_, result) = run(stack, &stack.token, &repo, json!({})).await;
    assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &json!({"uid": 65534})), "{result}");
    assert!(!warm(&result), "{result}");
}

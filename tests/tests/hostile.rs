//! Hostile jobs, each contained with the right terminal reason, after which the
//! executor serves the next job normally — under runc and under gVisor (runsc).
//! The same test bodies run against one stack per OCI runtime.

use gitfaas_tests::sandbox::{finished, start, Options};
use gitfaas_tests::{git_repo, Stack};
use serde_json::{json, Value};

const PY: &str = "runtime = \"python\"\n";

/// Runs `main.py` as a job with `extra` fields; returns its result.
async fn run_python(stack: &Stack, main_py: &str, extra: Value) -> Value {
    let repo = git_repo(&[("gitfaas.toml", PY), ("main.py", main_py)]);
    let mut body = json!({"repo": repo, "timeout_secs": 20});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let id = stack.submit_ok(&body).await;
    finished(stack, &id).await
}

/// The executor still runs an ordinary job to success.
async fn next_job_succeeds(stack: &Stack) {
    let result = run_python(stack, "def main(d, c):\n    return d * 2\n", json!({"input": 21})).await;
    assert_eq!(result["status"], "succeeded", "next job: {result}");
    assert_eq!(result["output"], 42);
}

async fn fork_bomb_is_stopped_by_the_pids_limit(stack: &Stack, gvisor: bool) {
    let main = "import os, time\ndef main(d, c):\n    n = 0\n    try:\n        while True:\n            if os.fork() == 0:\n                time.sleep(60)\n                os._exit(0)\n            n += 1\n    except OSError as e:\n        return {'forked': n, 'errno': e.errno}\n";
    // not lower: gVisor's own threads count against the limit (it fails to start at 32)
    let resources = json!({"pids": 96, "memory_mb": 256});
    let result = run_python(stack, main, json!({"resources": resources, "timeout_secs": 10})).await;
    match result["status"].as_str().unwrap() {
        "succeeded" => {
            assert!(result["output"]["forked"].as_u64().unwrap() < 96, "{result}");
            assert_eq!(result["output"]["errno"], 11, "EAGAIN: {result}");
        }
        // gVisor: the sentry itself runs out of host threads and the sandbox exits
        // (code 2, observed), or memory or the timeout ends it
        "failed" if gvisor => assert!(result.get("output").is_none(), "{result}"),
        other => assert!(["timed_out", "oom_killed"].contains(&other), "{result}"),
    }
    next_job_succeeds(stack).await;
}

async fn memory_bomb_is_oom_killed(stack: &Stack) {
    let main = "def main(d, c):\n    hog = []\n    while True:\n        hog.append(bytearray(8 << 20))\n";
    let result = run_python(stack, main, json!({"resources": {"memory_mb": 64}})).await;
    assert_eq!(result["status"], "oom_killed", "{result}");
    next_job_succeeds(stack).await;
}

async fn cpu_spin_past_its_timeout_is_timed_out(stack: &Stack) {
    let main = "def main(d, c):\n    while True:\n        pass\n";
    let result = run_python(stack, main, json!({"timeout_secs": 2})).await;
    assert_eq!(result["status"], "timed_out", "{result}");
    assert!(result["timings"]["run_ms"].as_u64().unwrap() < 15_000, "{result}");
    next_job_succeeds(stack).await;
}

async fn filling_tmp_stops_at_the_tmpfs_size(stack: &Stack) {
    let main = "def main(d, c):\n    n = 0\n    try:\n        with open('/tmp/fill', 'wb') as f:\n            while True:\n                f.write(b'x' * (1 << 20))\n                f.flush()\n                n += 1\n    except OSError as e:\n        return {'mb': n, 'errno': e.errno}\n";
    let result = run_python(stack, main, json!({})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"]["errno"], 28, "ENOSPC: {result}");
    assert!(result["output"]["mb"].as_u64().unwrap() <= 64, "{result}");
    next_job_succeeds(stack).await;
}

async fn writing_the_root_fs_or_the_code_is_refused(stack: &Stack) {
    let main = "def main(d, c):\n    errors = {}\n    for path in ['/etc/evil', '/usr/bin/evil', '/code/evil', '/input/evil', '/evil']:\n        try:\n            open(path, 'w').write('x')\n            errors[path] = 0\n        except OSError as e:\n            errors[path] = e.errno\n    return errors\n";
    let result = run_python(stack, main, json!({})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    for (path, errno) in result["output"].as_object().unwrap() {
        assert!([13, 30].contains(&errno.as_i64().unwrap()), "{path} was writable: {result}");
    }
    next_job_succeeds(stack).await;
}

async fn host_files_and_the_docker_socket_are_not_visible(stack: &Stack) {
    // a file on the host that only a container seeing host paths could read
    let marker = format!("/var/lib/gitfaas/host-marker-{}", gitfaas_tests::unique("m"));
    std::fs::write(&marker, "host secret").unwrap();
    let main = format!(
        "import os\ndef main(d, c):\n    paths = ['{marker}', '/var/run/docker.sock', '/run/docker.sock', '/proc/1/root{marker}', '/host', '/var/lib/docker']\n    mounts = open('/proc/self/mounts').read()\n    return {{'visible': [p for p in paths if os.path.exists(p)], 'docker_in_mounts': 'docker.sock' in mounts, 'shadow': os.access('/etc/shadow', os.R_OK)}}\n"
    );
    let result = run_python(stack, &main, json!({})).await;
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"]["visible"], json!([]), "{result}");
    assert_eq!(result["output"]["docker_in_mounts"], false, "{result}");
    assert_eq!(result["output"]["shadow"], false, "{result}");
    next_job_succeeds(stack).await;
}

async fn network_has_only_loopback_and_connections_fail(stack: &Stack) {
    let main = "import os, socket\ndef main(d, c):\n    names = set(os.listdir('/sys/class/net')) if os.path.isdir('/sys/class/net') else set()\n    for line in open('/proc/net/dev').read().splitlines()[2:]:\n        names.add(line.split(':')[0].strip())\n    s = socket.socket()\n    s.settimeout(2)\n    try:\n        s.connect(('127.0.0.1', 9))\n        outcome = 'connected'\n    except OSError as e:\n        outcome = e.errno\n    return {'interfaces': sorted(names), 'connect': outcome}\n";
    let result = run_python(stack, main, json!({})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"]["interfaces"], json!(["lo"]), "{result}");
    assert_eq!(result["output"]["connect"], 111, "ECONNREFUSED on loopback: {result}");
    next_job_succeeds(stack).await;
}

async fn printing_100_mb_to_stdout_is_output_too_large(stack: &Stack) {
    let repo =
        git_repo(&[("gitfaas.toml", "runtime = \"command\"\n"), ("main", "#!/bin/sh\nhead -c 100000000 /dev/zero\n")]);
    let id = stack.submit_ok(&json!({"repo": repo, "timeout_secs": 30})).await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "output_too_large", "{result}");
    assert!(result["stderr_tail"].as_str().unwrap().contains("stdout passed its limit"), "{result}");
    assert!(result.get("output").is_none(), "{result}");
    next_job_succeeds(stack).await;
}

async fn printing_to_stderr_keeps_only_a_marked_tail(stack: &Stack) {
    let main = "import sys\ndef main(d, c):\n    for _ in range(20):\n        sys.stderr.write('y' * (1 << 20))\n    return 'done'\n";
    let result = run_python(stack, main, json!({})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    let tail = result["stderr_tail"].as_str().unwrap();
    assert!(tail.starts_with("[gitfaas: earlier stderr truncated]"), "{}", &tail[..80]);
    assert!(tail.len() < 10_000);
}

async fn setuid_and_privilege_escalation_fail(stack: &Stack) {
    let main = "import os\ndef main(d, c):\n    status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n    try:\n        os.setuid(0)\n        setuid = 'worked'\n    except OSError as e:\n        setuid = e.errno\n    return {'uid': os.getuid(), 'setuid': setuid, 'nnp': status.get('NoNewPrivs', '').strip(), 'capeff': status.get('CapEff', '').strip()}\n";
    let result = run_python(stack, main, json!({})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    let out = &result["output"];
    assert_eq!(out["uid"], 65534, "{result}");
    assert_eq!(out["setuid"], 1, "EPERM: {result}");
    // gVisor's /proc/self/status has no NoNewPrivs line; runc's must say 1
    assert!(["1", ""].contains(&out["nnp"].as_str().unwrap()), "{result}");
    assert_eq!(out["capeff"], "0000000000000000", "{result}");
    next_job_succeeds(stack).await;
}

macro_rules! suite {
    ($module:ident, $runtime:literal) => {
        mod $module {
            use super::*;

            fn stack() -> &'static Stack {
                static STACK: std::sync::OnceLock<Stack> = std::sync::OnceLock::new();
                STACK.get_or_init(|| start(Options::runtime($runtime)))
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn fork_bomb_is_stopped_by_the_pids_limit() {
                super::fork_bomb_is_stopped_by_the_pids_limit(stack(), $runtime == "runsc").await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn memory_bomb_is_oom_killed() {
                super::memory_bomb_is_oom_killed(stack()).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn cpu_spin_past_its_timeout_is_timed_out() {
                super::cpu_spin_past_its_timeout_is_timed_out(stack()).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn filling_tmp_stops_at_the_tmpfs_size() {
                super::filling_tmp_stops_at_the_tmpfs_size(stack()).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn writing_the_root_fs_or_the_code_is_refused() {
                super::writing_the_root_fs_or_the_code_is_refused(stack()).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn host_files_and_the_docker_socket_are_not_visible() {
                super::host_files_and_the_docker_socket_are_not_visible(stack()).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn network_has_only_loopback_and_connections_fail() {
                super::network_has_only_loopback_and_connections_fail(stack()).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn printing_100_mb_to_stdout_is_output_too_large() {
                super::printing_100_mb_to_stdout_is_output_too_large(stack()).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn printing_to_stderr_keeps_only_a_marked_tail() {
                super::printing_to_stderr_keeps_only_a_marked_tail(stack()).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn setuid_and_privilege_escalation_fail() {
                super::setuid_and_privilege_escalation_fail(stack()).await
            }
        }
    };
}

suite!(runc, "runc");
suite!(gvisor, "runsc");

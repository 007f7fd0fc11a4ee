//! Dependencies a checkout declares, installed by the executor's build step from
//! package indexes on 127.0.0.1 (`gitfaas_tests::package_index`): `pypiserver`
//! serving wheels and an sdist this test writes (`tests/deps/dists.py`), and a
//! static npm registry served by the test itself, where verdaccio would add a
//! hundred megabytes of packages and seconds of start-up to serve one tarball.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gitfaas_tests::package_index::{dists, free_port, module_name as module, Npm, PyPi};
use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{git_repo, unique, Stack};
use serde_json::{json, Value};

struct Indexes {
    pypi: PyPi,
    npm: Npm,
    stack: Stack,
    cache_dir: PathBuf,
}

/// The indexes and a stack whose executor installs from them.
fn indexes() -> &'static Indexes {
    static INDEXES: OnceLock<Indexes> = OnceLock::new();
    INDEXES.get_or_init(|| {
        let (pypi, npm) = (PyPi::start(), Npm::start());
        let cache_dir = tempfile::tempdir().unwrap().keep().join("deps");
        let (pip_index, registry, cache) =
            (pypi.index_url(), format!("http://127.0.0.1:{}/", npm.port), cache_dir.clone());
        let stack = Stack::start_with(
            true,
            Box::new(move |_, e| {
                let d = &mut e.executor.dependencies;
                (d.pip_index, d.npm_registry, d.cache_dir) = (Some(pip_index), Some(registry), cache);
                d.build_timeout_secs = 120;
            }),
        );
        Indexes { pypi, npm, stack, cache_dir }
    })
}

async fn run_on(stack: &Stack, body: Value) -> Value {
    gitfaas_tests::sandbox::run_to_end(stack, &body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_script_imports_a_third_party_package_from_its_layer() {
    let ix = indexes();
    let name = module("scripted");
    ix.pypi.add_wheel(&name, "def shout(text):\n    return text.upper()\n");
    let script = format!("import sys\nimport {name}\nprint({name}.shout(sys.argv[1]))\n");
    let repo = git_repo(&[("tools/requirements.txt", &format!("{name}==1.0\n")), ("tools/shout.py", &script)]);
    let body = json!({"repo": repo, "runtime": "python", "mode": "script", "entry": "tools/shout.py", "args": ["hey"]});
    let result = run_on(&ix.stack, body).await;
    assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &json!("HEY\n")), "{result}");
    assert_eq!(result["dependencies"]["file"], "tools/requirements.txt", "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_function_in_a_subdirectory_imports_a_third_party_package() {
    let ix = indexes();
    let name = module("greet");
    ix.pypi.add_wheel(&name, "def hello(who):\n    return 'hello ' + who\n");
    let main = format!("import {name}\ndef main(data, credentials):\n    return {name}.hello(data)\n");
    let repo = git_repo(&[("svc/requirements.txt", &format!("{name}==1.0\n")), ("svc/main.py", &main)]);
    let body = json!({"repo": repo, "runtime": "python", "entry": "svc/main.py", "workdir": "svc", "input": "deps"});
    let result = run_on(&ix.stack, body.clone()).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], "hello deps");
    let again = run_on(&ix.stack, body).await;
    assert_eq!((&again["output"], &again["warm"]), (&json!("hello deps"), &json!(true)), "served warm: {again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pyproject_dependencies_are_installed_too() {
    let ix = indexes();
    let name = module("pyproj");
    ix.pypi.add_wheel(&name, "VALUE = 42\n");
    let pyproject = format!("[project]\nname = \"fn\"\nversion = \"0\"\ndependencies = [\"{name}\"]\n");
    let main = format!("import {name}\ndef main(data):\n    return {name}.VALUE\n");
    let repo = git_repo(&[("pyproject.toml", &pyproject), ("main.py", &main)]);
    let result = run_on(&ix.stack, json!({"repo": repo, "runtime": "python"})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_function_requires_a_dependency_from_the_registry() {
    let ix = indexes();
    let name = format!("tiny-{}", unique("greet").to_lowercase());
    let entry = ix.npm.publish(&name, "module.exports = (who) => 'hi ' + who;\n");
    let package = json!({"name": "fn", "version": "1.0.0", "dependencies": {&name: "1.0.0"}});
    let lock = json!({
        "name": "fn", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": {"": {"name": "fn", "version": "1.0.0", "dependencies": {&name: "1.0.0"}}, format!("node_modules/{name}"): entry},
    });
    let main = format!("const greet = require('{name}');\nexports.main = (data) => greet(data);\n");
    let repo = git_repo(&[
        ("package.json", &package.to_string()),
        ("package-lock.json", &lock.to_string()),
        ("main.js", &main),
    ]);
    let body = json!({"repo": repo, "runtime": "node", "input": "node"});
    let result = run_on(&ix.stack, body.clone()).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], "hi node");
    let again = run_on(&ix.stack, body).await;
    assert_eq!((&again["output"], &again["warm"]), (&json!("hi node"), &json!(true)), "served warm: {again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_script_resolves_its_layers_packages_and_its_checkouts_modules_as_node_in_the_checkout() {
    let ix = indexes();
    let name = format!("tiny-{}", unique("scripted").to_lowercase());
    let entry = ix.npm.publish(&name, "module.exports = (text) => text.toUpperCase();\n");
    let package = json!({"name": "tools", "version": "1.0.0", "dependencies": {&name: "1.0.0"}});
    let lock = json!({
        "name": "tools", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": {"": {"name": "tools", "version": "1.0.0", "dependencies": {&name: "1.0.0"}}, format!("node_modules/{name}"): entry},
    });
    // as `node tools/bin/x.js` after `npm install` in tools/: a CommonJS require and an ES
    // module import of the package, and the checkout's own modules by relative path
    let cjs = format!("const shout = require('{name}');\nconst {{ suffix }} = require('../lib/suffix.js');\nconsole.log(shout(process.argv[2]) + suffix);\n");
    let esm = format!("import shout from '{name}';\nimport {{ suffix }} from '../lib/suffix.mjs';\nconsole.log(shout(process.argv[2]) + suffix);\n");
    let repo = git_repo(&[
        ("tools/package.json", &package.to_string()),
        ("tools/package-lock.json", &lock.to_string()),
        ("tools/bin/shout.js", &cjs),
        ("tools/bin/shout.mjs", &esm),
        ("tools/lib/suffix.js", "exports.suffix = '!';\n"),
        ("tools/lib/suffix.mjs", "export const suffix = '?';\n"),
    ]);
    for (script, said) in [("tools/bin/shout.js", "HEY!\n"), ("tools/bin/shout.mjs", "HEY?\n")] {
        let body = json!({"repo": repo, "runtime": "node", "mode": "script", "entry": script, "args": ["hey"]});
        let result = run_on(&ix.stack, body).await;
        assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &json!(said)), "{script}: {result}");
        assert_eq!(result["dependencies"]["file"], "tools/package.json", "{result}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_is_built_once_for_concurrent_jobs_and_reused_after() {
    let ix = indexes();
    let name = module("cached");
    ix.pypi.add_wheel(&name, "N = 7\n");
    let requirements = format!("{name}==1.0\n");
    let main = format!("import {name}\ndef main(data):\n    return [{name}.N, data]\n");
    let repos: Vec<String> = (0..3)
        .map(|i| git_repo(&[("requirements.txt", &requirements), ("main.py", &main), ("n", &i.to_string())]))
        .collect();
    let timed = |repo: String| async move {
        let started = Instant::now();
        let result = run_on(&ix.stack, json!({"repo": repo, "runtime": "python", "input": 1})).await;
        (result, started.elapsed())
    };
    // two jobs of different repositories declaring the same requirements, at once
    let ((first, cold_a), (second, cold_b)) = tokio::join!(timed(repos[0].clone()), timed(repos[1].clone()));
    for result in [&first, &second] {
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["output"], json!([7, 1]));
    }
    let listing = format!("/simple/{}/", name.replace('_', "-"));
    assert_eq!(ix.pypi.requests(&listing), 1, "one build for both jobs");
    let (third, cached) = timed(repos[2].clone()).await;
    assert_eq!(third["status"], "succeeded", "{third}");
    assert_eq!(ix.pypi.requests(&listing), 1, "the cached layer served the third job");
    let cold = cold_a.max(cold_b);
    let ratio = cold.as_secs_f64() / cached.as_secs_f64();
    println!("dependency build: cold job {cold:?}, cached job {cached:?}, ratio {ratio:.1}x");
    let layers = std::fs::read_dir(ix.cache_dir.join("layers")).unwrap().count();
    assert!(layers >= 1);
}

/// Every entry below `dir`: (path, uid, gid, mode), symlinks not followed.
fn walk(dir: &Path, found: &mut Vec<(PathBuf, u32, u32, u32)>) {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        found.push((entry.path(), meta.uid(), meta.gid(), meta.mode()));
        if meta.is_dir() {
            walk(&entry.path(), found);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_on_the_host_is_roots_and_read_only_and_the_cache_writable_by_root_alone() {
    use std::os::unix::fs::MetadataExt;
    let ix = indexes();
    let name = module("sealed");
    ix.pypi.add_wheel(&name, "V = 1\n");
    let main = format!("import {name}\ndef main(data):\n    return {name}.V\n");
    let repo = git_repo(&[("requirements.txt", &format!("{name}==1.0\n")), ("main.py", &main)]);
    let result = run_on(&ix.stack, json!({"repo": repo, "runtime": "python"})).await;
    assert_eq!((&result["status"], &result["output"]), (&json!("succeeded"), &json!(1)), "{result}");
    for dir in ["", "layers", "logs"] {
        let meta = std::fs::metadata(ix.cache_dir.join(dir)).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o755), "{dir}");
    }
    assert_eq!(std::fs::metadata(ix.cache_dir.join("tmp")).unwrap().mode() & 0o777, 0o700);
    let mut entries = Vec::new();
    walk(&ix.cache_dir.join("layers"), &mut entries);
    let installed = |path: &PathBuf| path.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&name));
    assert!(entries.iter().any(|(path, ..)| installed(path)), "the package is in a layer: {entries:?}");
    for (path, uid, gid, mode) in entries {
        assert_eq!((uid, gid), (0, 0), "{path:?} is root's");
        let is_link = mode & 0o170000 == 0o120000;
        let marker = path.ends_with(".gitfaas-used");
        let writable = if marker { 0o022 } else { 0o222 };
        assert!(is_link || mode & (writable | 0o6000) == 0, "{path:?} mode {mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_requirement_fails_the_job_with_the_build_log() {
    let ix = indexes();
    let name = module("missing");
    let repo =
        git_repo(&[("requirements.txt", &format!("{name}==9.9\n")), ("main.py", "def main(d):\n    return 1\n")]);
    let result = run_on(&ix.stack, json!({"repo": repo, "runtime": "python"})).await;
    assert_eq!(result["status"], "failed", "{result}");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.starts_with("dependency install failed: the installer exited with code"), "{reason}");
    let tail = result["stderr_tail"].as_str().unwrap();
    assert!(tail.contains(&name) && tail.contains("No matching distribution"), "{tail}");
    assert_eq!(result["attempt"], 1, "not retried as an infrastructure failure: {result}");
    let kept = std::fs::read_dir(ix.cache_dir.join("logs")).unwrap().flatten();
    let kept: Vec<String> = kept.map(|e| std::fs::read_to_string(e.path()).unwrap_or_default()).collect();
    assert!(kept.iter().any(|log| log.contains(&name)), "the build log is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_package_reaching_for_other_hosts_while_it_installs_stays_contained() {
    let ix = indexes();
    // something that answers: a container on Docker's default bridge, and a host listener
    let label = unique("deps-probe");
    let out = Command::new("docker")
        .args(["run", "-d", "--rm", "--label", &format!("io.gitfaas.test={label}"), "gitfaas/python:bookworm"])
        .args(["python3", "-m", "http.server", "8000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let container = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let ip =
        Command::new("docker").args(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &container]).output().unwrap();
    let ip = String::from_utf8_lossy(&ip.stdout).trim().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = listener.local_addr().unwrap().port();
    // a host service on all addresses answers on the build network's gateway too,
    // unless the executor's firewall rules close it
    let everywhere = TcpListener::bind("0.0.0.0:0").unwrap();
    let everywhere_port = everywhere.local_addr().unwrap().port();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((ip.as_str(), 8000)).is_err() {
        assert!(Instant::now() < deadline, "the probe's target container answers the host");
        std::thread::sleep(Duration::from_millis(200));
    }
    let targets = format!("127.0.0.1:{host_port},GATEWAY:{host_port},GATEWAY:{everywhere_port},{ip}:8000");
    dists(&["probe", ix.pypi.packages().to_str().unwrap(), &targets]);
    let main = "import probe\ndef main(data):\n    return probe.SEEN\n";
    let repo = git_repo(&[("requirements.txt", "probe==1.0\n"), ("main.py", main)]);
    let id = ix.stack.submit_ok(&json!({"repo": repo, "runtime": "python"})).await;
    let network = tokio::task::spawn_blocking({
        let id = id.clone();
        move || build_network_of(&id)
    });
    let result = finished(&ix.stack, &id).await;
    let network = network.await.unwrap();
    let _ = Command::new("docker").args(["rm", "-f", &container]).output();
    drop((listener, everywhere));
    assert_eq!(result["status"], "succeeded", "{result}");
    let seen = &result["output"];
    println!("what the build saw: {seen:#}");
    for (target, outcome) in seen["targets"].as_object().unwrap() {
        let outcome = outcome.as_str().unwrap();
        if target.starts_with("via proxy") {
            assert!(outcome.starts_with("HTTP/1.1 403"), "{target}: {outcome}");
        } else {
            assert!(outcome.starts_with("refused"), "{target}: {outcome}");
        }
    }
    assert!(seen["proxy"].is_string(), "the probe found the build's proxy: {seen}");
    // Docker's view: an internal network (its default route ends at the host's side
    // of the bridge, where nothing is forwarded), its only interface beside loopback
    assert_eq!(network["Internal"], true, "{network}");
    let gateway = network["IPAM"]["Config"][0]["Gateway"].as_str().unwrap();
    let proxy = seen["proxy"].as_str().unwrap();
    assert!(proxy.starts_with(&format!("{gateway}:")), "the proxy listens on the gateway: {proxy} {network}");
    assert_eq!(seen["interfaces"], json!(["eth0", "lo"]));
    for route in seen["routes"].as_array().unwrap() {
        let fields: Vec<&str> = route.as_str().unwrap().split_whitespace().collect();
        assert_eq!(fields[0], "eth0", "{route}");
        if fields[1] == "00000000" {
            let hex = u32::from_str_radix(fields[2], 16).unwrap().to_le_bytes();
            assert_eq!(std::net::Ipv4Addr::from(hex).to_string(), gateway, "the default route is the gateway");
        }
    }
}

/// `docker network inspect` of the build network of job `id`, caught while it exists.
fn build_network_of(id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let filter = format!("label=io.gitfaas.job={id}");
        let listed = Command::new("docker").args(["network", "ls", "-q", "--filter", &filter]).output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).trim().to_owned();
        if !listed.is_empty() {
            let inspect = Command::new("docker").args(["network", "inspect", &listed]).output().unwrap();
            if let Ok(Value::Array(mut networks)) = serde_json::from_slice(&inspect.stdout) {
                return networks.remove(0);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no build network of job {id} seen")
}

/// A stack whose executor has no package index configured.
fn unindexed() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let cache = tempfile::tempdir().unwrap().keep().join("deps");
        Stack::start_with(true, Box::new(move |_, e| e.executor.dependencies.cache_dir = cache))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn declared_dependencies_without_a_configured_index_are_refused_and_a_job_may_skip_them() {
    let stack = unindexed();
    let main = "def main(data):\n    return 'ran without its dependencies'\n";
    let repo = git_repo(&[("requirements.txt", "anything==1.0\n"), ("main.py", main)]);
    let refused = run_on(stack, json!({"repo": repo, "runtime": "python"})).await;
    assert_eq!(refused["status"], "rejected", "{refused}");
    let reason = refused["reason"].as_str().unwrap();
    assert!(reason.starts_with("dependencies declared but no package index configured"), "{reason}");
    let skipped = run_on(stack, json!({"repo": repo, "runtime": "python", "dependencies": "skip"})).await;
    assert_eq!(skipped["status"], "succeeded", "{skipped}");
    assert_eq!(skipped["output"], "ran without its dependencies");
    let unlocked =
        git_repo(&[("package.json", r#"{"dependencies": {"x": "1"}}"#), ("main.js", "exports.main = () => 1;\n")]);
    let refused = run_on(stack, json!({"repo": unlocked, "runtime": "node"})).await;
    assert_eq!(refused["status"], "rejected", "{refused}");
    assert!(refused["reason"].as_str().unwrap().contains("no package-lock.json"), "{refused}");
    let bad = stack.submit(&json!({"repo": repo, "dependencies": "sometimes"})).await;
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["field"], "dependencies", "{problem}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_index_is_the_executors_failure_and_is_retried() {
    let dead = free_port(); // nothing listens there
    let cache = tempfile::tempdir().unwrap().keep().join("deps");
    let stack = Stack::start_with(
        true,
        Box::new(move |_, e| {
            e.executor.dependencies.pip_index = Some(format!("http://127.0.0.1:{dead}/simple/"));
            e.executor.dependencies.cache_dir = cache;
            (e.executor.delivery.infrastructure_retries, e.executor.delivery.retry_backoff_ms) = (1, 100);
        }),
    );
    let repo = git_repo(&[("requirements.txt", "anything==1.0\n"), ("main.py", "def main(d):\n    return 1\n")]);
    let result = run_on(&stack, json!({"repo": repo, "runtime": "python"})).await;
    assert_eq!(result["status"], "failed", "{result}");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.starts_with("gave up after 2 attempts"), "{reason}");
    assert!(reason.contains(&format!("package index unreachable: failed to connect to 127.0.0.1:{dead}")), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_run_installs_the_directorys_dependencies_unless_told_to_skip_them() {
    use gitfaas_common::schema::Resources;
    use gitfaas_common::JobStatus;
    let ix = indexes();
    let name = module("local");
    ix.pypi.add_wheel(&name, "def twice(x):\n    return 2 * x\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), format!("{name}\n")).unwrap();
    let main = format!("import {name}\ndef main(data):\n    return {name}.twice(data)\n");
    std::fs::write(dir.path().join("main.py"), main).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut settings = gitfaas_tests::executor_settings(&unique("local"), state.path());
    settings.executor.dependencies.pip_index = Some(ix.pypi.index_url());
    let cancel = tokio_util::sync::CancellationToken::new();
    let resources = || Resources { memory_mb: 256, cpu_millis: 1000, pids: 128 };
    for dependencies in [true, false] {
        let run = gitfaas_sandbox::LocalRun {
            dir: dir.path(),
            runtime: Some("python"),
            input: &json!(21),
            resources: resources(),
            timeout: Duration::from_secs(60),
            live_log: false,
            dependencies,
            chosen: Default::default(),
        };
        let out = gitfaas_sandbox::run_local(&settings.executor.sandbox(), run, &cancel).await.unwrap();
        if dependencies {
            assert_eq!((out.status, out.output.clone()), (JobStatus::Succeeded, Some(json!(42))), "{out:?}");
            assert_eq!(out.dependencies.map(|d| d.file).as_deref(), Some("requirements.txt"));
        } else {
            assert_eq!(out.status, JobStatus::Failed, "{out:?}");
            assert!(out.stderr_tail.contains("ModuleNotFoundError"), "{out:?}");
        }
    }
}

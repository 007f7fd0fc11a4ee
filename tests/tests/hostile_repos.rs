//! Hostile repositories, as opposed to hostile functions: a manifest or entry
//! symlinked out of the checkout, compressed bombs, too many files,
//! malformed trees (duplicate names, a `.git` or `..` entry, a slash in a name).
//! Each is refused with a reason before anything runs (and before the bomb is
//! written), the executor's memory stays flat, nothing of the host leaks into a
//! message, the job is not retried or dead-lettered, and the next job runs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use gitfaas_executor::CheckoutLimits;
use gitfaas_tests::sandbox::capture_logs;
use gitfaas_tests::{git_repo, infra, read_topic, unique, Stack};
use serde_json::{json, Value};

const PY: &str = "runtime = \"python\"\n";
const MAX_FILE_BYTES: u64 = 4 << 20;

/// One stack for this file, its checkouts bounded to 8 MiB, 50 files, 4 MiB a file.
fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        capture_logs();
        Stack::start_with(
            true,
            Box::new(|_, executor| {
                let limits = CheckoutLimits { max_bytes: 8 << 20, max_files: 50, max_file_bytes: MAX_FILE_BYTES };
                executor.executor.checkout = limits;
            }),
        )
    })
}

/// A repository served by the test git daemon, built by `setup` in its work tree.
fn repo_made_by(setup: impl FnOnce(&Path, &dyn Fn(&[&str]))) -> String {
    let name = unique("hostile");
    let dir = infra::git_root().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(&dir).output().expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q", "-b", "main"]);
    setup(&dir, &git);
    git(&["add", "-A"]);
    git(&["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "hostile"]);
    format!("{}/{name}", infra::git_url())
}

/// The process's peak resident memory so far, in MiB (the executor runs in it).
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

async fn run(repo: &str) -> Value {
    let id = stack().submit_ok(&json!({"repo": repo, "runtime": "python", "timeout_secs": 20})).await;
    stack().result(&id).await
}

/// Refused once, as the repository's fault, with `reason_part` in the reason, and
/// not dead-lettered; then an ordinary job still runs.
async fn assert_refused(result: &Value, status: &str, reason_part: &str) {
    assert_eq!(result["status"], status, "{result}");
    let reason = result["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(reason_part), "reason has `{reason_part}`: {result}");
    assert_eq!(result["attempt"], 1, "not retried: {result}");
    let id = result["job_id"].as_str().unwrap().to_owned();
    let dead_letter = stack().topics().dead_letter;
    let dead = tokio::task::spawn_blocking(move || read_topic(&dead_letter)).await.unwrap();
    assert!(!dead.iter().any(|(key, _, _)| key.as_deref() == Some(id.as_str())), "job {id} was dead-lettered");
    let ok = git_repo(&[("gitfaas.toml", PY), ("main.py", "def main(d, c):\n    return 'ok'\n")]);
    assert_eq!(run(&ok).await["status"], "succeeded");
}

/// Nothing the service logged or answered quotes `needle`.
fn assert_never_said(result: &Value, needle: &str) {
    assert!(!result.to_string().contains(needle), "result quotes host content: {result}");
    let logs = String::from_utf8_lossy(&capture_logs().lock().unwrap()).into_owned();
    assert!(!logs.contains(needle), "logs quote host content");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_symlinked_to_a_host_file_is_refused_without_quoting_it() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    let marker = unique("host-secret");
    std::fs::write(secret.path(), format!("runtime = \"{marker}\"\n")).unwrap();
    let target = secret.path().to_owned();
    let repo = repo_made_by(|dir, _| std::os::unix::fs::symlink(&target, dir.join("gitfaas.toml")).unwrap());
    let result = run(&repo).await;
    assert_never_said(&result, &marker);
    assert_refused(&result, "rejected", "must be a regular file").await;
    // a missing host path gets the very same answer: existence is not told either
    let nowhere = repo_made_by(|dir, _| std::os::unix::fs::symlink("/nonexistent", dir.join("gitfaas.toml")).unwrap());
    assert_eq!(run(&nowhere).await["reason"], result["reason"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_symlinked_to_dev_zero_or_a_huge_file_is_refused_unread() {
    let huge = tempfile::NamedTempFile::new().unwrap();
    huge.as_file().set_len(700 << 20).unwrap(); // sparse: no disk, but 700 MiB to read
    let huge_path = huge.path().to_owned();
    let before = peak_rss_mb();
    for target in [Path::new("/dev/zero"), huge_path.as_path()] {
        let repo = repo_made_by(|dir, _| std::os::unix::fs::symlink(target, dir.join("gitfaas.toml")).unwrap());
        let result = tokio::time::timeout(std::time::Duration::from_secs(90), run(&repo)).await.expect("job ended");
        assert_refused(&result, "rejected", "must be a regular file").await;
    }
    let grown = peak_rss_mb().saturating_sub(before);
    assert!(grown < 100, "executor memory grew by {grown} MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entry_symlinked_out_of_the_checkout_is_refused() {
    let repo = repo_made_by(|dir, _| {
        std::fs::write(dir.join("gitfaas.toml"), PY).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("main.py")).unwrap();
    });
    let result = run(&repo).await;
    assert_never_said(&result, "root:x:0:0");
    assert_refused(&result, "rejected", "inside the repository").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compressed_bomb_is_refused_before_it_is_written_and_memory_stays_flat() {
    let repo = repo_made_by(|dir, _| {
        std::fs::write(dir.join("gitfaas.toml"), PY).unwrap();
        std::fs::write(dir.join("main.py"), "def main(d, c):\n    return 1\n").unwrap();
        let zeros = std::fs::File::create(dir.join("zeros.bin")).unwrap();
        zeros.set_len(1 << 30).unwrap(); // 1 GiB of zeros; ~1 MiB once packed
    });
    let packed_mb = dir_size(&infra::git_root().join(repo.rsplit('/').next().unwrap()).join(".git")) >> 20;
    assert!(packed_mb < 20, "the bomb is small on the wire: {packed_mb} MiB");
    let before = peak_rss_mb();
    let result = run(&repo).await;
    let grown = peak_rss_mb().saturating_sub(before);
    eprintln!("bomb: peak resident memory grew by {grown} MiB (from {before} MiB)");
    assert_refused(&result, "rejected", &format!("`zeros.bin` is larger than the {MAX_FILE_BYTES} byte file limit"))
        .await;
    assert!(result["commit_sha"].is_null(), "nothing was checked out: {result}");
    assert!(grown < 100, "executor memory grew by {grown} MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_files_or_too_many_bytes_are_refused_with_the_limit() {
    let many = repo_made_by(|dir, _| {
        std::fs::write(dir.join("gitfaas.toml"), PY).unwrap();
        for i in 0..60 {
            std::fs::write(dir.join(format!("f{i}.txt")), format!("{i}")).unwrap();
        }
    });
    assert_refused(&run(&many).await, "rejected", "more than 50 files").await;
    let heavy = repo_made_by(|dir, _| {
        std::fs::write(dir.join("gitfaas.toml"), PY).unwrap();
        for i in 0..3 {
            std::fs::File::create(dir.join(format!("part{i}.bin"))).unwrap().set_len(3 << 20).unwrap();
        }
    });
    assert_refused(&run(&heavy).await, "rejected", &format!("more than the {} byte limit", 8 << 20)).await;
}

/// `git` in `dir` with `stdin`: its output, trimmed.
fn git_with_input(dir: &Path, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A tree object written byte for byte, as git's own commands would never write
/// it: `entries` of (mode, name, object id).
fn raw_tree(dir: &Path, entries: &[(&str, &[u8], String)]) -> String {
    let mut bytes = Vec::new();
    for (mode, name, id) in entries {
        bytes.extend_from_slice(format!("{mode} ").as_bytes());
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.extend((0..id.len()).step_by(2).map(|i| u8::from_str_radix(&id[i..i + 2], 16).unwrap()));
    }
    git_with_input(dir, &["hash-object", "-t", "tree", "-w", "--literally", "--stdin"], &bytes)
}

/// A served repository whose `main` is one commit of the root tree `entries`
/// plus a valid manifest and entry (`make` gets the blob and tree writers).
fn repo_with_raw_tree(make: impl FnOnce(&Path) -> Vec<(&'static str, Vec<u8>, String)>) -> String {
    let name = unique("malformed");
    let dir = infra::git_root().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    git_with_input(&dir, &["init", "-q", "-b", "main"], b"");
    let blob = |bytes: &[u8]| git_with_input(&dir, &["hash-object", "-w", "--stdin"], bytes);
    let mut entries = make(&dir);
    entries.push(("100644", b"gitfaas.toml".to_vec(), blob(PY.as_bytes())));
    entries.push(("100644", b"main.py".to_vec(), blob(b"def main(d, c):\n    return 1\n")));
    entries.sort_by(|a, b| a.1.cmp(&b.1));
    let entries: Vec<(&str, &[u8], String)> = entries.iter().map(|(m, n, id)| (*m, n.as_slice(), id.clone())).collect();
    let tree = raw_tree(&dir, &entries);
    let commit = git_with_input(
        &dir,
        &["-c", "user.name=test", "-c", "user.email=test@localhost", "commit-tree", &tree, "-m", "malformed"],
        b"",
    );
    git_with_input(&dir, &["update-ref", "refs/heads/main", &commit], b"");
    format!("{}/{name}", infra::git_url())
}

fn blob_in(dir: &Path, bytes: &[u8]) -> String {
    git_with_input(dir, &["hash-object", "-w", "--stdin"], bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_trees_are_rejected_at_once_as_the_repositorys_fault() {
    let marker = std::env::temp_dir().join(unique("hook-ran"));
    let hook = format!("#!/bin/sh\ntouch {}\n", marker.display());
    let twice = repo_with_raw_tree(|dir| {
        let id = blob_in(dir, b"import os\n");
        vec![("100644", b"helper.py".to_vec(), id.clone()), ("100644", b"helper.py".to_vec(), id)]
    });
    let dot_git = repo_with_raw_tree(|dir| {
        let hook = blob_in(dir, hook.as_bytes());
        let hooks = raw_tree(dir, &[("100755", b"post-checkout", hook)]);
        vec![("40000", b".git".to_vec(), raw_tree(dir, &[("40000", b"hooks", hooks)]))]
    });
    let dot_dot = repo_with_raw_tree(|dir| {
        let escaped = raw_tree(dir, &[("100644", b"escaped.txt", blob_in(dir, b"out"))]);
        vec![("40000", b"..".to_vec(), escaped)]
    });
    let slash = repo_with_raw_tree(|dir| vec![("100644", b"../escaped.txt".to_vec(), blob_in(dir, b"out"))]);
    let cases = [
        (twice, "`helper.py`: a name the directory holds twice"),
        (dot_git, "`.git`: a `.git` entry"),
        (dot_dot, "`..`: a `.` or `..` entry"),
        (slash, "`../escaped.txt`: a slash in a name"),
    ];
    for (repo, reason) in cases {
        let result = run(&repo).await;
        assert_refused(&result, "rejected", reason).await;
        assert!(result["commit_sha"].is_null(), "nothing was checked out: {result}");
    }
    assert!(!marker.exists(), "a hook of the repository ran");
    // the same writer makes a tree that runs, so the refusals are the entries' doing
    let control = repo_with_raw_tree(|dir| vec![("100644", b"a.py".to_vec(), blob_in(dir, b"x = 1\n"))]);
    assert_eq!(run(&control).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn git_is_handed_the_normalised_url_that_was_checked() {
    let stack = stack(); // allows loopback, as the harness does
    let served =
        git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", "def main(d, c):\n    return 2\n")]);
    let decimal = served.replacen("127.0.0.1", "2130706433", 1);
    let id = stack.submit_ok(&json!({"repo": decimal})).await;
    let job: Value = stack.get(&format!("/v1/jobs/{id}")).await.json().await.unwrap();
    assert_eq!(job["repo"], served, "{job}");
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .flatten()
        .map(|e| match e.metadata().unwrap() {
            m if m.is_dir() => dir_size(&e.path()),
            m => m.len(),
        })
        .sum()
}

//! Repositories with submodules: by default each is the empty directory `git
//! clone` leaves, the job runs and its result says so in a note; with
//! `"submodules": "fetch"` each is checked out at the commit its gitlink pins,
//! from a URL relative to the repository's, through the same policy — a URL the
//! policy refuses is `rejected`, one that cannot be fetched `failed`, both naming
//! the submodule. A pinned commit behind a branch's tip comes with the branch; one
//! no branch or tag reaches is asked for by its id, and fails saying so when the
//! server does not give it.

use std::path::Path;
use std::process::Command;

use gitfaas_tests::{git_repo, infra, unique, Stack};
use serde_json::{json, Value};

/// What the function sees of `data`: its files, and `value.txt` if there is one.
const LISTS_DATA: &str = r#"import os
def main(data):
    files = sorted(os.listdir('data'))
    value = open('data/value.txt').read() if 'value.txt' in files else None
    return {'files': files, 'value': value}
"#;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The work tree of a repository of the test git server, by its URL.
fn dir_of(url: &str) -> std::path::PathBuf {
    infra::git_root().join(url.rsplit('/').next().unwrap())
}

/// A repository of `files` whose `path` is a submodule with `url` in
/// `.gitmodules`, pinned at `commit`.
fn with_gitlink(files: &[(&str, &str)], path: &str, url: &str, commit: &str) -> String {
    let name = unique("super");
    let dir = infra::git_root().join(&name);
    std::fs::create_dir_all(dir.join(path)).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let gitmodules = format!("[submodule \"{path}\"]\n\tpath = {path}\n\turl = {url}\n");
    std::fs::write(dir.join(".gitmodules"), gitmodules).unwrap();
    git(&dir, &["add", "."]);
    git(&dir, &["update-index", "--add", "--cacheinfo", &format!("160000,{commit},{path}")]);
    git(&dir, &["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "with a submodule"]);
    format!("{}/{name}", infra::git_url())
}

/// A python repository whose `data` is a submodule with `url`, pinned at `commit`.
fn with_submodule(url: &str, commit: &str) -> String {
    with_gitlink(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", LISTS_DATA)], "data", url, commit)
}

/// The path of a repository of the test git server relative to another's, and
/// its commit.
fn relative(url: &str) -> (String, String) {
    (format!("../{}", url.rsplit('/').next().unwrap()), git(&dir_of(url), &["rev-parse", "HEAD"]))
}

/// A data repository with two commits: the first's `value.txt` says `pinned`, the
/// second's `moved on`. Its URL and the first commit.
fn data_repo() -> (String, String) {
    let url = git_repo(&[("value.txt", "pinned"), ("README", "data")]);
    let dir = dir_of(&url);
    let pinned = git(&dir, &["rev-parse", "HEAD"]);
    std::fs::write(dir.join("value.txt"), "moved on").unwrap();
    git(&dir, &["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qam", "later"]);
    (url, pinned)
}

async fn run(body: Value) -> Value {
    let stack = Stack::shared();
    let id = stack.submit_ok(&body).await;
    stack.result(&id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_submodule_is_an_empty_directory_by_default_and_the_result_notes_it() {
    let (data, pinned) = data_repo();
    let name = data.rsplit('/').next().unwrap();
    let repo = with_submodule(&format!("../{name}"), &pinned);
    for _ in 0..2 {
        // the second run may find the first's sandbox warm: the note comes with it
        let result = run(json!({"repo": repo})).await;
        assert_eq!(result["status"], "succeeded", "{result}");
        assert_eq!(result["output"], json!({"files": [], "value": null}), "{result}");
        let notes = result["notes"].as_array().unwrap_or_else(|| panic!("notes: {result}"));
        assert_eq!(notes.len(), 1, "{result}");
        let note = notes[0].as_str().unwrap();
        assert!(note.starts_with(&format!("submodule `data` (commit {pinned}) is an empty directory")), "{note}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_checks_a_submodule_out_at_the_commit_it_pins() {
    let (data, pinned) = data_repo();
    let name = data.rsplit('/').next().unwrap();
    let repo = with_submodule(&format!("../{name}"), &pinned);
    let result = run(json!({"repo": repo, "submodules": "fetch"})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"files": ["README", "value.txt"], "value": "pinned"}), "{result}");
    let note = format!("submodule `data` checked out at {pinned} from {data}");
    assert_eq!(result["notes"], json!([note]), "{result}");
    assert_eq!(result["warm"], Value::Null, "a fetched checkout is the job's own: {result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_submodule_the_policy_refuses_is_rejected_and_one_that_cannot_be_fetched_fails() {
    let (_, pinned) = data_repo();
    for url in ["file:///etc/gitfaas-secret.git", "http://169.254.169.254/latest/meta-data.git"] {
        let repo = with_submodule(url, &pinned);
        let result = run(json!({"repo": repo, "submodules": "fetch"})).await;
        assert_eq!(result["status"], "rejected", "{url}: {result}");
        assert!(result["reason"].as_str().unwrap().starts_with("submodule `data`: "), "{result}");
        assert_eq!(result["attempt"], 1, "{result}");
    }
    let repo = with_submodule("../no-such-repository", &pinned);
    let result = run(json!({"repo": repo, "submodules": "fetch"})).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert!(result["reason"].as_str().unwrap().starts_with("submodule `data`: "), "{result}");
    // the same repository with its submodule left empty runs
    assert_eq!(run(json!({"repo": repo})).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_commit_no_branch_or_tag_reaches_is_fetched_by_its_id_or_fails_saying_so() {
    // `data`'s pinned commit is on a branch that was deleted since: no ref reaches it
    let (data, _) = data_repo();
    let dir = dir_of(&data);
    git(&dir, &["checkout", "-q", "-b", "gone"]);
    std::fs::write(dir.join("value.txt"), "unreachable").unwrap();
    git(&dir, &["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qam", "on a deleted branch"]);
    let orphan = git(&dir, &["rev-parse", "HEAD"]);
    git(&dir, &["checkout", "-q", "main"]);
    git(&dir, &["branch", "-q", "-D", "gone"]);
    let name = data.rsplit('/').next().unwrap();
    let repo = with_submodule(&format!("../{name}"), &orphan);
    // the test server's git daemon gives no unadvertised commit by default, as most do
    let result = run(json!({"repo": repo, "submodules": "fetch"})).await;
    assert_eq!(result["status"], "failed", "{result}");
    let why = format!(
        "submodule `data`: commit {orphan} is not in the repository: no branch or tag reaches it, \
         and the server does not give it by its id"
    );
    assert_eq!(result["reason"], why, "{result}");
    // one that gives any commit by its id (uploadpack.allowAnySHA1InWant) is asked for it
    git(&dir, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
    let result = run(json!({"repo": repo, "submodules": "fetch"})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"]["value"], "unreachable", "{result}");
    // a commit that is nowhere at all
    let nowhere = "0123456789abcdef0123456789abcdef01234567";
    let repo = with_submodule(&format!("../{name}"), nowhere);
    let result = run(json!({"repo": repo, "submodules": "fetch"})).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert!(result["reason"].as_str().unwrap().starts_with(&format!("submodule `data`: commit {nowhere} is not in")));
}

#[tokio::test(flavor = "multi_thread")]
async fn submodules_of_submodules_are_fetched_down_to_the_depth_bound() {
    // a chain: the function's `data` holds `sub`, which holds `sub`, … the last holds value.txt
    let chain = |levels: usize| {
        let mut url = git_repo(&[("value.txt", "deep")]);
        for _ in 1..levels {
            let (path, commit) = relative(&url);
            url = with_gitlink(&[("README", "a level")], "sub", &path, &commit);
        }
        let (path, commit) = relative(&url);
        with_submodule(&path, &commit)
    };
    let three = chain(3);
    let result = run(json!({"repo": three, "submodules": "fetch"})).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    let notes: Vec<&str> = result["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let paths = ["submodule `data` ", "submodule `data/sub` ", "submodule `data/sub/sub` "];
    assert!(notes.len() == 3 && notes.iter().zip(paths).all(|(n, p)| n.starts_with(p)), "{notes:?}");
    assert_eq!(result["output"]["files"], json!([".gitmodules", "README", "sub"]), "{result}");

    let four = chain(4);
    let result = run(json!({"repo": four, "submodules": "fetch"})).await;
    assert_eq!(result["status"], "failed", "{result}");
    let reason = "submodule `data/sub/sub/sub`: submodules nest deeper than 3 levels";
    assert_eq!(result["reason"], reason, "{result}");
}

//! A private repository over authenticated smart HTTP, end to end: `git
//! http-backend` behind a loopback server that demands basic auth
//! (`gitfaas_tests::git_http`), jobs whose `git_token` travels sealed through the
//! frontend and Kafka to the executor, which presents it to the server.
//!
//! The right token runs the function; no token or a wrong one fails the job at
//! once with a reason about authentication (no retries, no dead letter), also when
//! the right token's job already left the commit in the executor's cache; and the
//! token shows up nowhere but in the `Authorization` header the server checks.

use std::time::{Duration, Instant};

use gitfaas_tests::git_http::{GitHttpServer, GIT_USERNAME};
use gitfaas_tests::sandbox::{capture_logs, contains, finished, keyed_stack as stack};
use gitfaas_tests::{read_topic, topics_bytes, Stack};
use serde_json::{json, Value};

/// Adds the job's two numbers and says whether it was given a `git_token`
/// (never the token itself).
const MAIN: &str = "def main(data, credentials):\n    \
                    return {\"sum\": data[\"a\"] + data[\"b\"], \"had_token\": \"git_token\" in credentials}\n";

fn new_token() -> String {
    format!("tok-{}", uuid::Uuid::now_v7().simple())
}

/// A private host that accepts `token`, serving one python function.
async fn private_repo(token: &str) -> (GitHttpServer, String) {
    let server = GitHttpServer::start(token).await;
    let url = server.repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", MAIN)]);
    (server, url)
}

fn job(repo: &str, git_ref: &str, token: Option<&str>) -> Value {
    let mut job = json!({"repo": repo, "ref": git_ref, "input": {"a": 2, "b": 40}, "timeout_secs": 30});
    if let Some(token) = token {
        job["credentials"] = json!({"git_token": token});
    }
    job
}

/// Submits `job` and returns its terminal result as the API shows it.
async fn run(stack: &Stack, job: &Value) -> Value {
    let id = stack.submit_ok(job).await;
    stack.result(&id).await
}

/// A job that must have ended `failed` on the fetch: once, promptly, because of
/// authentication, and not handed to the dead-letter topic as an executor fault.
async fn assert_refused_for_authentication(stack: &Stack, result: &Value, took: Duration) {
    assert_eq!(result["status"], "failed", "{result}");
    let reason = result["reason"].as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(reason.contains("authentication"), "reason names authentication: {result}");
    assert_eq!(result["attempt"], 1, "not retried: {result}");
    assert!(result["commit_sha"].is_null(), "nothing was checked out: {result}");
    assert!(took < Duration::from_secs(20), "failed promptly, took {took:?}");
    let id = result["job_id"].as_str().expect("job id").to_owned();
    let dead_letter = stack.topics().dead_letter;
    let dead = tokio::task::spawn_blocking(move || read_topic(&dead_letter)).await.unwrap();
    assert!(!dead.iter().any(|(key, _, _)| key.as_deref() == Some(id.as_str())), "job {id} was dead-lettered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_with_the_right_git_token_runs_the_private_repository() {
    let stack = stack();
    let token = new_token();
    let (server, repo) = private_repo(&token).await;

    // the host really is private: an anonymous client is asked for basic auth
    let anonymous = reqwest::get(format!("{repo}/info/refs?service=git-upload-pack")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Basic realm=\"gitfaas-test\"");
    let authenticated = reqwest::Client::new()
        .get(format!("{repo}/info/refs?service=git-upload-pack"))
        .basic_auth(GIT_USERNAME, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(authenticated.status(), 200);

    let result = run(stack, &job(&repo, "main", Some(&token))).await;
    assert_eq!(result["status"], "succeeded", "{result}\nserver log:\n{}", server.log());
    assert_eq!(result["output"], json!({"sum": 42, "had_token": true}));
    assert_eq!(result["commit_sha"].as_str().map(str::len), Some(40), "{result}");
    assert!(server.log().contains("POST /"), "the executor fetched over http: {}", server.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_without_a_git_token_fails_promptly_naming_authentication() {
    let stack = stack();
    let (server, repo) = private_repo(&new_token()).await;
    let started = Instant::now();
    let result = run(stack, &job(&repo, "main", None)).await;
    assert_refused_for_authentication(stack, &result, started.elapsed()).await;
    assert!(server.log().contains("(credentials missing)"), "{}", server.log());
    assert!(!server.log().contains("(credentials accepted)"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_git_token_cannot_fetch_nor_read_the_mirror_the_right_one_filled() {
    let stack = stack();
    let token = new_token();
    let (server, repo) = private_repo(&token).await;

    let right = run(stack, &job(&repo, "main", Some(&token))).await;
    assert_eq!(right["status"], "succeeded", "{right}\nserver log:\n{}", server.log());
    // naming the commit the executor already holds is the way past a fetch, if any
    let sha = right["commit_sha"].as_str().expect("commit sha").to_owned();

    for (git_ref, wrong) in [("main", Some(new_token())), (sha.as_str(), Some(new_token())), (sha.as_str(), None)] {
        let started = Instant::now();
        let result = run(stack, &job(&repo, git_ref, wrong.as_deref())).await;
        assert_refused_for_authentication(stack, &result, started.elapsed()).await;
    }
    assert!(server.log().contains("(credentials refused)"), "{}", server.log());

    // the right token's mirror is still there and still used: no request at all
    let requests_before = server.log().lines().count();
    let again = run(stack, &job(&repo, &sha, Some(&token))).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["output"], json!({"sum": 42, "had_token": true}));
    assert_eq!(server.log().lines().count(), requests_before, "{}", server.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_git_token_is_nowhere_but_in_the_authorization_header() {
    use base64::Engine;
    let stack = stack();
    let token = new_token();
    let (server, repo) = private_repo(&token).await;
    let id = stack.submit_ok(&job(&repo, "main", Some(&token))).await;
    let result = stack.result(&id).await;
    assert_eq!(result["status"], "succeeded", "{result}\nserver log:\n{}", server.log());
    let event = finished(stack, &id).await;

    let topics = stack.topics();
    let raw = topics_bytes(&[&topics.jobs, &topics.results, &topics.logs]);
    assert!(contains(&raw, &id), "the job is on the topics");
    let server_log = server.log();
    assert!(server_log.contains("(credentials accepted)"), "the server checked the header: {server_log}");
    let logs = capture_logs().lock().unwrap().clone();
    assert!(contains(&logs, &id), "the services logged the job");

    // the token, and the header that carried it
    let header = base64::engine::general_purpose::STANDARD.encode(format!("{GIT_USERNAME}:{token}"));
    for secret in [&token, &header] {
        assert!(!contains(result.to_string().as_bytes(), secret), "in the result");
        assert!(!contains(event.to_string().as_bytes(), secret), "in the result event");
        assert!(!contains(&raw, secret), "on a topic");
        assert!(!contains(server_log.as_bytes(), secret), "in the git server's log");
        assert!(!contains(&logs, secret), "in the service logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetched_submodule_gets_the_git_token_only_on_the_repositorys_own_origin() {
    let stack = stack();
    let token = new_token();
    let (home, repo) = private_repo(&token).await;
    // another server on the same address, another port, accepting the same token
    let elsewhere = GitHttpServer::start(&token).await;
    let (same, other) = (home.repo(&[("value.txt", "home")]), elsewhere.repo(&[("value.txt", "away")]));
    let head = |dir: std::path::PathBuf| {
        let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).current_dir(dir).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (same_head, other_head) = (head(home.dir_of(&same)), head(elsewhere.dir_of(&other)));
    let dir = home.dir_of(&repo);
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").args(args).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let same_name = same.rsplit('/').next().unwrap();
    let gitmodules = format!(
        "[submodule \"same\"]\n\tpath = same\n\turl = ../{same_name}\n\
         [submodule \"zother\"]\n\tpath = zother\n\turl = {other}\n"
    );
    std::fs::write(dir.join(".gitmodules"), gitmodules).unwrap();
    git(&["add", ".gitmodules"]);
    git(&["update-index", "--add", "--cacheinfo", &format!("160000,{same_head},same")]);
    git(&["update-index", "--add", "--cacheinfo", &format!("160000,{other_head},zother")]);
    git(&["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "submodules"]);

    let mut body = job(&repo, "main", Some(&token));
    body["submodules"] = json!("fetch");
    let result = run(stack, &body).await;
    // `same` was fetched with the token; `zother`, another origin, was asked for one without it
    assert_eq!(result["status"], "failed", "{result}");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.starts_with("submodule `zother`: repository authentication failed"), "{reason}");
    let fetched_with_token =
        |line: &&str| line.contains(&format!("/{same_name}/")) && line.contains("(credentials accepted)");
    assert!(home.log().lines().any(|line| fetched_with_token(&line)), "{}", home.log());
    let away = elsewhere.log();
    assert!(away.contains("missing") && !away.contains("accepted") && !away.contains("refused"), "{away}");
}

//! The `gitfaas` binary against a real stack (frontend + executor in-process, Kafka,
//! Redis, Docker, the test git daemon) that trusts the real Keycloak: login with the
//! client credentials grant and with the device grant (approved in Keycloak's pages
//! by a real browser), the token cache and its refresh, `run` of succeeding and
//! failing jobs (stdout holds the output JSON only; one exit code per ending), every
//! job command, the live log of `run` and `logs -f`, the pushed upstream of a
//! checkout, problems with hints, completions.

use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use gitfaas_tests::{git_repo, infra, keycloak, sleep_repo, Stack};
use serde_json::Value;

const SERVICE_CLIENT: &str = "gitfaas-service";
const SERVICE_SECRET: &str = "gitfaas-service-secret";

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start_with(true, Box::new(|frontend, _| keycloak::use_keycloak(frontend))))
}

/// The binary, with a config directory of the test's own and the stack's API.
fn gitfaas(config: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(infra::bin_dir().join("gitfaas"));
    command
        .env("XDG_CONFIG_HOME", config)
        .env("GITFAAS_API", &stack().base_url)
        .env_remove("GITFAAS_TOKEN")
        .env_remove("GITFAAS_CLIENT_SECRET")
        .env_remove("GITFAAS_OUTPUT")
        .kill_on_drop(true);
    command
}

/// Runs `gitfaas args…` as alice (GITFAAS_TOKEN) and returns what it did.
async fn as_alice(args: &[&str]) -> Output {
    let config = tempfile::tempdir().unwrap();
    run(gitfaas(config.path()).env("GITFAAS_TOKEN", &stack().token).args(args)).await
}

async fn run(command: &mut tokio::process::Command) -> Output {
    let output = command.output();
    tokio::time::timeout(Duration::from_secs(120), output).await.expect("gitfaas ends in 120 s").expect("gitfaas runs")
}

fn out(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn err(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("an exit code")
}

fn cache(config: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(config.join("gitfaas/tokens.json")).expect("a token cache")).unwrap()
}

/// Makes the cached access token look expired, so the next command must refresh it.
fn expire(config: &Path) {
    let mut cached = cache(config);
    cached["expires_at"] = serde_json::json!(0);
    std::fs::write(config.join("gitfaas/tokens.json"), serde_json::to_vec(&cached).unwrap()).unwrap();
}

fn python_repo(main: &str) -> String {
    git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", main)])
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_login_caches_a_private_token_that_is_renewed_and_forgotten() {
    let config = tempfile::tempdir().unwrap();
    let login = run(gitfaas(config.path()).args([
        "login",
        "--client-credentials",
        "--client-id",
        SERVICE_CLIENT,
        "--client-secret",
        SERVICE_SECRET,
    ]))
    .await;
    assert_eq!(code(&login), 0, "{}", err(&login));
    assert!(err(&login).contains(&format!("logged in to {}", keycloak::issuer())), "{}", err(&login));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(config.path().join("gitfaas/tokens.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token cache is the user's only");
    let first = cache(config.path());
    assert_eq!(keycloak::claims(first["access_token"].as_str().unwrap())["azp"], SERVICE_CLIENT);

    let listed = run(gitfaas(config.path()).args(["ls", "-o", "json"])).await;
    assert_eq!(code(&listed), 0, "{}", err(&listed));
    assert!(serde_json::from_str::<Value>(&out(&listed)).unwrap()["jobs"].is_array());

    // no refresh token for a client: an expired token is renewed with the secret
    expire(config.path());
    let renewed = run(gitfaas(config.path()).env("GITFAAS_CLIENT_SECRET", SERVICE_SECRET).args(["ls"])).await;
    assert_eq!(code(&renewed), 0, "{}", err(&renewed));
    let second = cache(config.path());
    assert_ne!(second["access_token"], first["access_token"], "a new token");
    assert!(second["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp());
    expire(config.path());
    let cannot = run(gitfaas(config.path()).args(["ls"])).await;
    assert_eq!((code(&cannot), out(&cannot)), (6, String::new()), "{}", err(&cannot));
    assert!(err(&cannot).contains("cannot be refreshed"), "{}", err(&cannot));

    let logout = run(gitfaas(config.path()).arg("logout")).await;
    assert_eq!(code(&logout), 0);
    assert!(!config.path().join("gitfaas/tokens.json").exists());
    let after = run(gitfaas(config.path()).arg("ls")).await;
    assert_eq!(code(&after), 6);
    assert!(err(&after).contains("error: not logged in") && err(&after).contains("hint: run `gitfaas login`"));
    let wrong = run(gitfaas(config.path())
        .args(["login", "--client-credentials", "--client-id", SERVICE_CLIENT])
        .args(["--client-secret", "wrong"]))
    .await;
    assert_eq!(code(&wrong), 6);
    assert!(err(&wrong).contains("login failed: "), "{}", err(&wrong));
}

#[tokio::test(flavor = "multi_thread")]
async fn device_login_approved_in_keycloaks_pages_runs_jobs_and_refreshes_its_token() {
    use tokio::io::AsyncBufReadExt;
    let config = tempfile::tempdir().unwrap();
    let mut login = gitfaas(config.path()).arg("login").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(login.stderr.take().unwrap()).lines();
    let (mut url, mut user_code) = (None, None);
    while url.is_none() || user_code.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap();
        let line = line.expect("login prints the url and the code");
        url = url.or(line.strip_prefix("to sign in, open: ").map(str::to_owned));
        user_code = user_code.or(line.strip_prefix("and enter the code: ").map(str::to_owned));
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let approve = tokio::process::Command::new("node")
        .arg(web.join("device.mjs"))
        .env("GITFAAS_DEVICE_URL", url.unwrap())
        .env("GITFAAS_DEVICE_USER_CODE", user_code.unwrap())
        .env("GITFAAS_DEVICE_USER", "bob")
        .env("GITFAAS_DEVICE_PASSWORD", keycloak::demo_password())
        .kill_on_drop(true)
        .output();
    let approved = tokio::time::timeout(Duration::from_secs(120), approve).await.expect("in 120 s").unwrap();
    assert!(approved.status.success(), "{}\n{}", out(&approved), err(&approved));
    let mut rest = String::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap() {
        rest.push_str(&line);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), login.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("as bob"), "{rest}");
    let first = cache(config.path());
    assert!(first["refresh_token"].is_string(), "{first}");

    let repo = python_repo("def main(data, credentials):\n    return {'hello': data}\n");
    let ran = run(gitfaas(config.path()).args(["run", &repo, "--input", "\"bob\""])).await;
    assert_eq!((code(&ran), out(&ran)), (0, "{\"hello\":\"bob\"}\n".into()), "{}", err(&ran));
    expire(config.path());
    let listed = run(gitfaas(config.path()).args(["ls", "-o", "json"])).await;
    assert_eq!(code(&listed), 0, "{}", err(&listed));
    assert_eq!(serde_json::from_str::<Value>(&out(&listed)).unwrap()["jobs"][0]["repo"], repo.as_str());
    let refreshed = cache(config.path());
    assert_ne!(refreshed["access_token"], first["access_token"], "refreshed with the refresh token");
    assert_eq!(keycloak::claims(refreshed["access_token"].as_str().unwrap())["preferred_username"], "bob");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_prints_only_the_output_on_stdout_and_follows_a_longer_job_through_its_states() {
    let quick = python_repo("def main(data, credentials):\n    print('to the log')\n    return {'n': data['n'] * 2}\n");
    let ran = as_alice(&["run", &format!("{quick}@main"), "--input", "{\"n\": 21}"]).await;
    assert_eq!((code(&ran), out(&ran)), (0, "{\"n\":42}\n".into()), "{}", err(&ran));
    assert!(err(&ran).contains("to the log") && err(&ran).contains(" succeeded (queue "), "{}", err(&ran));

    // past the submit's own wait: queued, running, then the long-polled result
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), r#"{"secs": 4, "n": [1, 2]}"#).unwrap();
    let slow = as_alice(&["run", &sleep_repo(), "--input", &format!("@{}", input.path().display())]).await;
    assert_eq!((code(&slow), out(&slow)), (0, "[1,2]\n".into()), "{}", err(&slow));
    let stderr = err(&slow);
    eprintln!("gitfaas run of a 4 s job:\n{stderr}");
    assert!(!stderr.contains("no event stream"), "followed on the events websocket: {stderr}");
    let at = |what: &str| stderr.find(what).unwrap_or_else(|| panic!("no `{what}` in {stderr}"));
    assert!(at(" queued") < at(" running") && at(" running") < at(" succeeded"), "{stderr}");

    let mut piped = gitfaas(tempfile::tempdir().unwrap().path());
    piped
        .env("GITFAAS_TOKEN", &stack().token)
        .args(["run", &quick, "--input", "-"])
        .stdin(std::process::Stdio::piped());
    let mut child = piped.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    use tokio::io::AsyncWriteExt;
    child.stdin.take().unwrap().write_all(br#"{"n": 5}"#).await.unwrap();
    let from_stdin = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!((code(&from_stdin), out(&from_stdin)), (0, "{\"n\":10}\n".into()), "{}", err(&from_stdin));

    let clock = std::time::Instant::now();
    let whole = as_alice(&["run", &quick, "--input", "{\"n\": 1}", "-o", "json"]).await;
    eprintln!("gitfaas run of a quick python job, process start to exit: {:?}", clock.elapsed());
    let result: Value = serde_json::from_str(&out(&whole)).unwrap();
    assert_eq!((result["status"].as_str(), &result["output"]), (Some("succeeded"), &serde_json::json!({"n": 2})));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_ending_of_a_job_has_its_exit_code_and_nothing_on_stdout() {
    let failing = python_repo("def main(data, credentials):\n    raise ValueError('no such thing')\n");
    let failed = as_alice(&["run", &failing]).await;
    assert_eq!((code(&failed), out(&failed)), (1, String::new()));
    assert!(
        err(&failed).contains("ValueError: no such thing") && err(&failed).contains(" failed: "),
        "{}",
        err(&failed)
    );

    let rejected = as_alice(&["run", &failing, "--runtime", "node"]).await;
    assert_eq!((code(&rejected), out(&rejected)), (3, String::new()), "{}", err(&rejected));
    assert!(err(&rejected).contains("rejected: job asks for runtime `node`"), "{}", err(&rejected));

    let timed_out = as_alice(&["run", &sleep_repo(), "--input", r#"{"secs": 30, "n": 1}"#, "--timeout", "1"]).await;
    assert_eq!((code(&timed_out), out(&timed_out)), (4, String::new()), "{}", err(&timed_out));

    let detached = as_alice(&["run", "-d", &sleep_repo(), "--input", r#"{"secs": 30, "n": 1}"#]).await;
    let id = out(&detached).trim().to_owned();
    assert_eq!(code(&detached), 0);
    assert_eq!(as_alice(&["cancel", &id]).await.status.code(), Some(0));
    let cancelled = as_alice(&["result", &id, "--wait", "30", "-o", "json"]).await;
    assert_eq!(code(&cancelled), 5, "{}", err(&cancelled));
    assert_eq!(serde_json::from_str::<Value>(&out(&cancelled)).unwrap()["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_job_command_shows_what_the_api_answers_and_refusals_with_a_hint() {
    let repo = python_repo(
        "import time\ndef main(data, credentials):\n    print('working on', data['n'])\n    time.sleep(data['secs'])\n    return data['n']\n",
    );
    let detached = as_alice(&["run", "--detach", &repo, "--input", r#"{"secs": 5, "n": 7}"#]).await;
    let id = out(&detached).trim().to_owned();
    assert_eq!((code(&detached), id.len()), (0, 36), "{}", err(&detached));

    let status = as_alice(&["status", &id, "-o", "json"]).await;
    let view: Value = serde_json::from_str(&out(&status)).unwrap();
    assert!(["queued", "running"].contains(&view["status"].as_str().unwrap()), "{view}");
    let table = out(&as_alice(&["status", &id]).await);
    assert!(table.contains(&format!("id:           {id}")), "{table}");
    let early = as_alice(&["result", &id]).await;
    assert_eq!(code(&early), 6);
    assert!(err(&early).contains("The job has not finished (409)"), "{}", err(&early));
    let busy = as_alice(&["rm", &id]).await;
    assert_eq!(code(&busy), 6);
    assert!(err(&busy).contains("(409)") && err(&busy).contains("hint: see the job's state"), "{}", err(&busy));

    let logs = as_alice(&["logs", "-f", &id]).await;
    assert_eq!((code(&logs), out(&logs)), (0, "working on 7\n".into()), "{}", err(&logs));
    let result = as_alice(&["result", &id]).await;
    assert_eq!(code(&result), 0);
    assert!(
        out(&result).contains("status:       succeeded") && out(&result).contains("output:\n7"),
        "{}",
        out(&result)
    );
    let listed = as_alice(&["ls", "--limit", "100"]).await;
    let row = out(&listed).lines().find(|l| l.starts_with(&id)).map(str::to_owned);
    assert!(row.is_some_and(|r| r.contains("succeeded")), "{}", out(&listed));
    assert!(out(&listed).starts_with("ID "), "a header");
    let finished = as_alice(&["cancel", &id]).await;
    assert_eq!(code(&finished), 6);
    assert!(err(&finished).contains("(409)"), "{}", err(&finished));

    assert_eq!(code(&as_alice(&["rm", &id]).await), 0);
    let gone = as_alice(&["status", &id]).await;
    assert_eq!((code(&gone), out(&gone)), (6, String::new()));
    assert!(err(&gone).contains("Not found (404)") && err(&gone).contains("hint: no job of yours"), "{}", err(&gone));

    let invalid = as_alice(&["run", "ftp://example.org/x"]).await;
    assert_eq!(code(&invalid), 6);
    let stderr = err(&invalid);
    assert!(stderr.contains("The request is invalid (400)") && stderr.contains("[field `repo`]"), "{stderr}");
    assert!(stderr.contains("hint: fix the named field"), "{stderr}");
    let bad_input = as_alice(&["run", "git://127.0.0.1:1/x", "--input", "{nope"]).await;
    assert_eq!(code(&bad_input), 2, "a usage error: {}", err(&bad_input));
    let unauthorised = run(gitfaas(tempfile::tempdir().unwrap().path()).env("GITFAAS_TOKEN", "forged").arg("ls")).await;
    assert_eq!(code(&unauthorised), 6);
    assert!(err(&unauthorised).contains("(401)") && err(&unauthorised).contains("gitfaas login"));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_without_a_repository_runs_the_pushed_upstream_commit_of_the_checkout() {
    let repo = python_repo("def main(data, credentials):\n    return 'pushed'\n");
    let work = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").args(args).current_dir(work.path()).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(&["clone", "-q", &repo, "."]);
    let pushed = git(&["rev-parse", "HEAD"]);
    std::fs::write(work.path().join("main.py"), "def main(data, credentials):\n    return 'local'\n").unwrap();
    git(&["-c", "user.name=t", "-c", "user.email=t@l", "commit", "-qam", "not pushed"]);

    let config = tempfile::tempdir().unwrap();
    let ran =
        run(gitfaas(config.path()).env("GITFAAS_TOKEN", &stack().token).arg("run").current_dir(work.path())).await;
    assert_eq!((code(&ran), out(&ran)), (0, "\"pushed\"\n".into()), "{}", err(&ran));
    assert!(err(&ran).contains(&format!("running {repo} at {pushed} (origin/main, the upstream of `main`)")));
    assert!(err(&ran).contains("1 local commit(s) not pushed"), "{}", err(&ran));
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_are_printed_for_each_shell() {
    for (shell, mark) in [("bash", "complete -F"), ("zsh", "#compdef gitfaas"), ("fish", "complete -c gitfaas")] {
        let printed = run(gitfaas(tempfile::tempdir().unwrap().path()).args(["completions", shell])).await;
        assert_eq!(code(&printed), 0);
        assert!(out(&printed).contains(mark) && out(&printed).contains("local"), "{shell}");
    }
    // a reader that stops early (`| head -1`) ends the output, not in a panic
    for args in [&["completions", "zsh"][..], &["ls", "-o", "json"]] {
        let mut child = gitfaas(tempfile::tempdir().unwrap().path())
            .env("GITFAAS_TOKEN", &stack().token)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let ended = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
        assert_eq!(code(&ended), 0, "{args:?}: {}", err(&ended));
        assert!(!err(&ended).contains("panicked"), "{}", err(&ended));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_comes_from_the_flag_then_the_environment_then_the_config_file() {
    let config = tempfile::tempdir().unwrap();
    std::fs::create_dir(config.path().join("gitfaas")).unwrap();
    std::fs::write(config.path().join("gitfaas/config.toml"), "api = \"http://127.0.0.1:1\"\noutput = \"json\"\n")
        .unwrap();
    let alice = |command: &mut tokio::process::Command| {
        command.env("GITFAAS_TOKEN", &stack().token).env_remove("GITFAAS_API");
    };
    let mut from_file = gitfaas(config.path());
    alice(&mut from_file);
    let refused = run(from_file.arg("ls")).await;
    assert_eq!(code(&refused), 6);
    assert!(
        err(&refused).contains("cannot reach http://127.0.0.1:1") && err(&refused).contains("hint: is the frontend up")
    );
    let mut from_env = gitfaas(config.path());
    alice(&mut from_env);
    let listed = run(from_env.env("GITFAAS_API", &stack().base_url).arg("ls")).await;
    assert_eq!(code(&listed), 0, "{}", err(&listed));
    assert!(serde_json::from_str::<Value>(&out(&listed)).unwrap()["jobs"].is_array(), "json from the file");
    let mut from_flag = gitfaas(config.path());
    alice(&mut from_flag);
    let table = run(from_flag.args(["ls", "-o", "table", "--api", &stack().base_url])).await;
    assert!(code(&table) == 0 && out(&table).starts_with("ID "), "{}", err(&table));

    std::fs::write(config.path().join("gitfaas/config.toml"), "colour = \"blue\"\n").unwrap();
    let bad = run(gitfaas(config.path()).arg("ls")).await;
    assert_eq!(code(&bad), 6);
    assert!(err(&bad).contains("config.toml") && err(&bad).contains("unknown field `colour`"), "{}", err(&bad));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_leaves_the_job_running_and_says_how_to_find_it() {
    use tokio::io::AsyncBufReadExt;
    let config = tempfile::tempdir().unwrap();
    let mut command = gitfaas(config.path());
    command.env("GITFAAS_TOKEN", &stack().token).args(["run", &sleep_repo(), "--input", r#"{"secs": 4, "n": 5}"#]);
    let mut child = command.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut id = None;
    while id.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
        id = line.strip_prefix("job ").and_then(|l| l.strip_suffix(" running")).map(str::to_owned);
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    let id = id.unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains(&format!("`gitfaas cancel {id}` stops it")), "{rest}");
    let result = as_alice(&["result", &id, "--wait", "30", "-o", "json"]).await;
    assert_eq!(code(&result), 0, "the job went on: {}", err(&result));
    assert_eq!(serde_json::from_str::<Value>(&out(&result)).unwrap()["output"], 5);
}

/// Prints `line 0` … `line 4`, one a second.
const SLOW_PRINTER: &str = "import time\ndef main(data, credentials):\n    for i in range(5):\n        \
    print(f'line {i}', flush=True)\n        time.sleep(1)\n    return 'done'\n";

/// Runs `gitfaas args…` as alice; each line of `stream` (stdout or stderr, the other
/// collected whole) with when it came, and the exit instant.
async fn timed_lines(args: &[&str], stdout: bool) -> (Vec<(String, std::time::Instant)>, std::time::Instant, i32) {
    use std::process::Stdio;
    use tokio::io::AsyncBufReadExt;
    let config = tempfile::tempdir().unwrap();
    let mut command = gitfaas(config.path());
    command.env("GITFAAS_TOKEN", &stack().token).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if stdout { Box::new(out) } else { Box::new(err) };
    let mut lines = tokio::io::BufReader::new(reader).lines();
    let mut seen = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push((line, std::time::Instant::now()));
        }
    };
    tokio::time::timeout(Duration::from_secs(90), read).await.expect("gitfaas ends in 90 s");
    let status = child.wait().await.unwrap();
    (seen, std::time::Instant::now(), status.code().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn run_and_logs_follow_print_the_log_while_the_job_runs() {
    let repo = python_repo(SLOW_PRINTER);
    let (stderr, ended, status) = timed_lines(&["run", &repo], false).await;
    assert_eq!(status, 0, "{stderr:?}");
    let line = |n: usize| stderr.iter().find(|(l, _)| l.ends_with(&format!("line {n}"))).map(|(_, at)| *at);
    let first = line(0).unwrap_or_else(|| panic!("the log on stderr: {stderr:?}"));
    assert!(ended - first >= Duration::from_secs(3), "`run` printed the log live: {stderr:?}");
    let count = stderr.iter().filter(|(l, _)| l.contains("line ")).count();
    assert_eq!(count, 5, "each line once (not again from the tail): {stderr:?}");

    let detached = as_alice(&["run", &repo, "--detach"]).await;
    let id = out(&detached).trim().to_owned();
    let (stdout, ended, status) = timed_lines(&["logs", "-f", &id], true).await;
    assert_eq!(status, 0);
    let texts: Vec<&str> = stdout.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(texts, ["line 0", "line 1", "line 2", "line 3", "line 4"]);
    assert!(ended - stdout[0].1 >= Duration::from_secs(2), "`logs -f` printed the log live");
    let whole = as_alice(&["logs", &id]).await;
    assert_eq!((code(&whole), out(&whole)), (0, "line 0\nline 1\nline 2\nline 3\nline 4\n".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_are_deployed_invoked_rolled_back_and_removed_by_name() {
    let version = |v: u32| python_repo(&format!("def main(data, credentials):\n    return {{'v': {v}, 'in': data}}\n"));
    let name = gitfaas_tests::unique("cli-fn").to_lowercase();
    for (repo, expected) in [(version(1), 1), (version(2), 2)] {
        let deployed = as_alice(&["fn", "deploy", &name, &format!("{repo}@main"), "-o", "json"]).await;
        assert_eq!(code(&deployed), 0, "{}", err(&deployed));
        let function: Value = serde_json::from_str(&out(&deployed)).unwrap();
        assert_eq!(function["current"]["version"], expected, "{function}");
    }
    let invoke = |input: &'static str| {
        let name = name.clone();
        async move { as_alice(&["fn", "invoke", &name, "--input", input]).await }
    };
    let invoked = invoke("7").await;
    assert_eq!(code(&invoked), 0, "{}", err(&invoked));
    assert_eq!(serde_json::from_str::<Value>(&out(&invoked)).unwrap(), serde_json::json!({"v": 2, "in": 7}));
    let versions = out(&as_alice(&["fn", "versions", &name]).await);
    assert_eq!(versions.lines().count(), 2, "{versions}");
    assert!(versions.lines().nth(1).unwrap().starts_with("* v2"), "the current version is marked: {versions}");
    assert_eq!(code(&as_alice(&["fn", "rollback", &name, "1"]).await), 0);
    let invoked = invoke("8").await;
    assert_eq!(serde_json::from_str::<Value>(&out(&invoked)).unwrap(), serde_json::json!({"v": 1, "in": 8}));
    assert!(out(&as_alice(&["fn", "ls"]).await).lines().any(|l| l.starts_with(&format!("{name}\tv1\t"))));
    // a schedule of it, listed, paused, removed
    let trigger = format!("{name}-nightly");
    let scheduled = as_alice(&["trigger", "schedule", &trigger, &name, "0 3 * * *", "--timezone", "UTC"]).await;
    assert_eq!(code(&scheduled), 0, "{}", err(&scheduled));
    assert!(out(&scheduled).contains("T03:00:00Z"), "the next tick is shown: {}", out(&scheduled));
    let listed = out(&as_alice(&["trigger", "ls"]).await);
    assert!(
        listed.lines().any(|l| l.starts_with(&format!("{trigger}\t{name}\tactive\tschedule 0 3 * * *"))),
        "{listed}"
    );
    let paused = as_alice(&["trigger", "pause", &trigger, "-o", "json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&out(&paused)).unwrap()["enabled"], false);
    let refused = as_alice(&["trigger", "schedule", &trigger, &name, "every day"]).await;
    assert_ne!(code(&refused), 0);
    assert!(err(&refused).contains("cron"), "{}", err(&refused));
    assert_eq!(code(&as_alice(&["trigger", "rm", &trigger]).await), 0);
    assert_eq!(code(&as_alice(&["fn", "rm", &name]).await), 0);
    let gone = invoke("9").await;
    assert_ne!(code(&gone), 0);
    assert!(err(&gone).contains("function not found"), "{}", err(&gone));
}

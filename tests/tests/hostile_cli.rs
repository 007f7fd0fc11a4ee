//! The `gitfaas` binary against servers it must not trust: a function whose log and
//! output carry terminal escape sequences (the real stack), and a server that is no
//! gitfaas frontend — one that never answers, one that sends 300 MB, one whose
//! answers are full of escape sequences (`ls`, `status`, refusals, `-o json`) — and
//! the timeouts that must not cut a long-poll or a followed log short.

use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitfaas_tests::{git_repo, infra, Stack};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the hostile server sends for a request path.
enum Answer {
    /// A body of this status, with its length.
    Json(u16, String),
    /// An answer after a pause (a long-poll's).
    Later(Duration, Box<Answer>),
    /// Nothing, ever; the connection stays open.
    Never,
    /// 300 MB: with its length declared, or chunked; as JSON or as one endless event.
    Flood { declared: bool, event_stream: bool },
    /// An event stream: each text after its pause, then the connection closes.
    Events(Vec<(Duration, String)>),
}

const FLOOD_BYTES: u64 = 300 << 20;

/// A server that is not a gitfaas frontend; `sent` counts the body bytes it wrote.
struct Hostile {
    url: String,
    sent: Arc<AtomicU64>,
}

async fn hostile(route: fn(&str) -> Answer) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, route, counter.clone()));
        }
    });
    Hostile { url, sent }
}

async fn serve(mut socket: TcpStream, route: fn(&str) -> Answer, sent: Arc<AtomicU64>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut answer = route(&path);
    while let Answer::Later(pause, then) = answer {
        tokio::time::sleep(pause).await;
        answer = *then;
    }
    let _ = write_answer(&mut socket, answer, &sent).await;
}

async fn write_answer(socket: &mut TcpStream, answer: Answer, sent: &AtomicU64) -> std::io::Result<()> {
    match answer {
        Answer::Json(status, body) => {
            let kind = if status >= 400 { "application/problem+json" } else { "application/json" };
            let head = format!("HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n", body.len());
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(body.as_bytes()).await
        }
        Answer::Never | Answer::Later(..) => {
            std::future::pending::<()>().await;
            Ok(())
        }
        Answer::Flood { declared, event_stream } => {
            let kind = if event_stream { "text/event-stream" } else { "application/json" };
            let length =
                if declared { format!("content-length: {FLOOD_BYTES}") } else { "transfer-encoding: chunked".into() };
            socket.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n{length}\r\n\r\n").as_bytes()).await?;
            let mut chunk = if event_stream { b"data: ".to_vec() } else { b"[".to_vec() };
            chunk.resize(1 << 20, b'0');
            for _ in 0..FLOOD_BYTES >> 20 {
                if declared {
                    socket.write_all(&chunk).await?;
                } else {
                    socket.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                    socket.write_all(&chunk).await?;
                    socket.write_all(b"\r\n").await?;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                chunk.fill(b'0');
            }
            Ok(())
        }
        Answer::Events(events) => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await?;
            for (pause, text) in events {
                tokio::time::sleep(pause).await;
                socket.write_all(format!("{:x}\r\n{text}\r\n", text.len()).as_bytes()).await?;
            }
            socket.write_all(b"0\r\n\r\n").await
        }
    }
}

/// Text with every escape a terminal acts on: a clipboard write, a title, a clear,
/// a C1 CSI, DEL, a carriage return.
const HOSTILE: &str = "ok\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{7f}\r!";

/// Control characters a terminal would act on (C0 but newline and tab, DEL, C1).
fn raw_controls(bytes: &[u8]) -> Vec<char> {
    let text = String::from_utf8_lossy(bytes);
    text.chars().filter(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}')).collect()
}

fn hostile_routes(path: &str) -> Answer {
    let job = json!({"id": "01hostile", "status": "failed", "repo": format!("https://git.example/{HOSTILE}"),
        "ref": HOSTILE, "runtime": "python", "submitted_at": "2026-12-07T00:00:00Z"});
    match path {
        p if p.starts_with("/v1/jobs?") => Answer::Json(200, json!({"jobs": [job], "next": HOSTILE}).to_string()),
        "/v1/jobs/escapes" => Answer::Json(200, job.to_string()),
        "/v1/jobs/refused" => Answer::Json(
            400,
            json!({"type": "x", "title": format!("title {HOSTILE}"), "status": 400, "detail": HOSTILE, "field": HOSTILE})
                .to_string(),
        ),
        "/v1/jobs/quiet" => Answer::Never,
        "/v1/jobs/flood" => Answer::Flood { declared: false, event_stream: false },
        "/v1/jobs/declared" => Answer::Flood { declared: true, event_stream: false },
        "/v1/jobs/endless/logs?follow=true" => Answer::Flood { declared: false, event_stream: true },
        "/v1/jobs/silent/logs?follow=true" => Answer::Events(vec![(Duration::from_secs(3600), String::new())]),
        p if p.starts_with("/v1/jobs/slow/result?wait=") => {
            let result = json!({"job_id": "slow", "status": "succeeded", "output": {"n": 1}, "attempt": 1,
                "timings": {"queue_ms": 1, "run_ms": 1, "total_ms": 2}});
            Answer::Later(Duration::from_secs(3), Box::new(Answer::Json(200, result.to_string())))
        }
        "/v1/jobs/slow/logs?follow=true" => {
            let keep_alive = || (Duration::from_millis(1500), ": keep-alive\n\n".to_owned());
            let chunk = json!({"attempt": 1, "seq": 0, "stream": "stderr", "text": format!("{HOSTILE}\n"), "truncated": false});
            let end = json!({"status": "succeeded", "attempt": 1});
            Answer::Events(vec![
                keep_alive(),
                keep_alive(),
                keep_alive(),
                (Duration::ZERO, format!("event: log\nid: 0\ndata: {chunk}\n\n")),
                (Duration::ZERO, format!("event: end\ndata: {end}\n\n")),
            ])
        }
        _ => Answer::Json(404, json!({"title": "Not found", "status": 404}).to_string()),
    }
}

/// `gitfaas args…` against `api` with a token, a config directory of its own and
/// `env`; what it did, and how long it took.
async fn gitfaas(api: &str, env: &[(&str, &str)], args: &[&str]) -> (Output, Duration) {
    let config = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(infra::bin_dir().join("gitfaas"));
    command
        .env("XDG_CONFIG_HOME", config.path())
        .env("GITFAAS_API", api)
        .env("GITFAAS_TOKEN", "a-token")
        .env_remove("GITFAAS_OUTPUT")
        .env_remove("GITFAAS_HTTP_TIMEOUT")
        .env_remove("GITFAAS_CONNECT_TIMEOUT")
        .envs(env.iter().copied())
        .args(args)
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(90), command.output()).await;
    (output.expect("gitfaas ends within 90 s").expect("gitfaas runs"), started.elapsed())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_sequences_in_what_a_server_answers_are_shown_not_sent() {
    let server = hostile(hostile_routes).await;
    for args in [&["ls"][..], &["status", "escapes"][..], &["status", "refused"][..]] {
        let (ran, _) = gitfaas(&server.url, &[], args).await;
        let (stdout, stderr) = (text(&ran.stdout), text(&ran.stderr));
        assert_eq!(raw_controls(&ran.stdout), Vec::<char>::new(), "{args:?} stdout: {stdout:?}");
        assert_eq!(raw_controls(&ran.stderr), Vec::<char>::new(), "{args:?} stderr: {stderr:?}");
        assert!(format!("{stdout}{stderr}").contains("ok\\x1b]52;c;cHduZWQ=\\x07"), "{args:?}: {stdout:?} {stderr:?}");
    }
    let (listed, _) = gitfaas(&server.url, &[], &["ls"]).await;
    assert_eq!(text(&listed.stdout).lines().count(), 2, "one row for the job, its cells on one line each");

    // json: the same value, only escaped the lossless way
    for args in [&["ls", "-o", "json"][..], &["status", "escapes", "-o", "json"][..]] {
        let (ran, _) = gitfaas(&server.url, &[], args).await;
        assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
        assert_eq!(raw_controls(&ran.stdout), Vec::<char>::new(), "{args:?}: {}", text(&ran.stdout));
        let value: Value = serde_json::from_slice(&ran.stdout).unwrap();
        let job = if args[0] == "ls" { &value["jobs"][0] } else { &value };
        assert_eq!(job["ref"], HOSTILE, "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_past_64_mib_is_refused_as_it_streams_in_without_buffering_the_rest() {
    let server = hostile(hostile_routes).await;
    for (args, what) in [
        (&["status", "flood"][..], "a chunked answer"),
        (&["status", "declared"][..], "an answer whose length says 300 MB"),
        (&["logs", "-f", "endless"][..], "one event that never ends"),
    ] {
        server.sent.store(0, Ordering::Relaxed);
        let (ran, took) = gitfaas(&server.url, &[], args).await;
        let stderr = text(&ran.stderr);
        assert_eq!(ran.status.code(), Some(6), "{what}: {stderr}");
        assert!(stderr.contains("larger than 64 MiB"), "{what}: {stderr}");
        let sent = server.sent.load(Ordering::Relaxed);
        assert!(sent < 100 << 20, "{what}: the server wrote {sent} bytes before the CLI let go");
        eprintln!("{what}: refused after {took:?}, {} MiB sent", sent >> 20);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_is_given_up_on_after_the_timeout() {
    let server = hostile(hostile_routes).await;
    let (ran, took) = gitfaas(&server.url, &[("GITFAAS_HTTP_TIMEOUT", "2")], &["status", "quiet"]).await;
    let stderr = text(&ran.stderr);
    assert_eq!(ran.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("did not answer in time") && stderr.contains("--http-timeout"), "{stderr}");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10), "gave up after {took:?}");
    let (flag, took) = gitfaas(&server.url, &[], &["status", "quiet", "--http-timeout", "1"]).await;
    assert_eq!(flag.status.code(), Some(6), "{}", text(&flag.stderr));
    assert!(took < Duration::from_secs(8), "the flag sets it too: {took:?}");

    // a followed log whose server goes silent ends after the stream's floor of 30 s
    let (silent, took) = gitfaas(&server.url, &[("GITFAAS_HTTP_TIMEOUT", "1")], &["logs", "-f", "silent"]).await;
    assert_eq!(silent.status.code(), Some(6), "{}", text(&silent.stderr));
    assert!(took >= Duration::from_secs(29) && took < Duration::from_secs(60), "a silent stream ended after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn long_polls_and_followed_logs_outlast_the_request_timeout() {
    let server = hostile(hostile_routes).await;
    let short = [("GITFAAS_HTTP_TIMEOUT", "1")];
    let (polled, took) = gitfaas(&server.url, &short, &["result", "slow", "--wait", "5", "-o", "json"]).await;
    assert_eq!(polled.status.code(), Some(0), "{}", text(&polled.stderr));
    assert!(took >= Duration::from_secs(3), "the server held it 3 s: {took:?}");
    assert_eq!(serde_json::from_slice::<Value>(&polled.stdout).unwrap()["output"], json!({"n": 1}));

    let (followed, took) = gitfaas(&server.url, &short, &["logs", "-f", "slow"]).await;
    assert_eq!(followed.status.code(), Some(0), "{}", text(&followed.stderr));
    assert!(took >= Duration::from_secs(4), "keep-alives for 4.5 s, past the 1 s timeout: {took:?}");
    assert_eq!(text(&followed.stdout), "ok\\x1b]52;c;cHduZWQ=\\x07\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\x7f\\x0d!\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_functions_escape_sequences_reach_the_terminal_shown_and_raw_only_when_asked() {
    let stack = Stack::shared();
    let main = "import sys\ndef main(data, credentials):\n    print(data['text'], file=sys.stderr)\n    return {'text': data['text']}\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", main)]);
    let input = json!({"text": HOSTILE}).to_string();
    let api = stack.base_url.as_str();
    let as_alice = |args: Vec<String>| async move {
        let env = [("GITFAAS_TOKEN", stack.token.as_str())];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gitfaas(api, &env, &args).await.0
    };
    let ran = as_alice(vec!["run".into(), repo.clone(), "--input".into(), input.clone()]).await;
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    assert_eq!(raw_controls(&ran.stdout), Vec::<char>::new(), "output: {}", text(&ran.stdout));
    assert_eq!(raw_controls(&ran.stderr), Vec::<char>::new(), "log: {}", text(&ran.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&ran.stdout).unwrap(), json!({"text": HOSTILE}), "the same value");
    assert!(text(&ran.stderr).contains("ok\\x1b]52;c;cHduZWQ=\\x07"), "{}", text(&ran.stderr));

    let whole = as_alice(vec!["run".into(), repo, "--input".into(), input, "-o".into(), "json".into()]).await;
    let result: Value = serde_json::from_slice(&whole.stdout).unwrap();
    let id = result["job_id"].as_str().unwrap().to_owned();
    let logs = as_alice(vec!["logs".into(), id.clone()]).await;
    assert_eq!(raw_controls(&logs.stdout), Vec::<char>::new(), "{}", text(&logs.stdout));
    assert!(text(&logs.stdout).contains("\\x9b31m\\x7f\\x0d!"), "{}", text(&logs.stdout));
    let raw = as_alice(vec!["logs".into(), "--raw".into(), id]).await;
    assert!(text(&raw.stdout).contains(HOSTILE), "--raw prints the log unchanged: {:?}", text(&raw.stdout));
}

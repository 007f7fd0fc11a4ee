//! Data sources downloaded into /input and outputs uploaded from /output, by the
//! executor: the container itself has no network.

use gitfaas_tests::sandbox::{finished, HttpServer};
use gitfaas_tests::{git_repo, Stack};
use serde_json::json;

const UPPER: &str = "def main(d, c):\n    text = open('/input/in.txt').read()\n    open('/output/out.txt', 'w').write(text.upper())\n    return len(text)\n";

fn repo() -> String {
    git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", UPPER)])
}

#[tokio::test(flavor = "multi_thread")]
async fn source_is_downloaded_and_output_is_uploaded() {
    let stack = Stack::shared();
    let server = HttpServer::start().await;
    server.files.lock().unwrap().insert("data/in".into(), b"hello links".to_vec());
    let id = stack
        .submit_ok(&json!({
            "repo": repo(),
            "sources": [{"name": "in.txt", "url": server.url("data/in")}],
            "sinks": [{"name": "out.txt", "url": server.url("up/out"), "method": "POST"}],
        }))
        .await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], 11);
    let received = server.received.lock().unwrap().get("up/out").cloned().expect("uploaded");
    assert_eq!(received, ("POST".to_owned(), b"HELLO LINKS".to_vec()));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_source_and_unwritten_output_fail_with_clear_reasons() {
    let stack = Stack::shared();
    let server = HttpServer::start().await;
    let id =
        stack.submit_ok(&json!({"repo": repo(), "sources": [{"name": "in.txt", "url": server.url("nothing")}]})).await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["reason"], "source `in.txt` could not be downloaded: http status 404 Not Found");

    server.files.lock().unwrap().insert("in".into(), b"x".to_vec());
    let id = stack
        .submit_ok(&json!({
            "repo": repo(),
            "sources": [{"name": "in.txt", "url": server.url("in")}],
            "sinks": [{"name": "never.txt", "url": server.url("up/never")}],
        }))
        .await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["reason"], "output `never.txt` could not be uploaded: the function did not write it");
    assert!(server.received.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_symlink_to_a_host_file_is_not_uploaded() {
    let stack = Stack::shared();
    let server = HttpServer::start().await;
    let main = "import os\ndef main(d, c):\n    os.symlink('/etc/hostname', '/output/out.txt')\n    return 1\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", main)]);
    let id = stack.submit_ok(&json!({"repo": repo, "sinks": [{"name": "out.txt", "url": server.url("up")}]})).await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["reason"], "output `out.txt` could not be uploaded: not a regular file");
    assert!(server.received.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn links_with_paths_or_other_schemes_are_refused_at_submit() {
    let stack = Stack::shared();
    for sources in
        [json!([{"name": "../x", "url": "http://127.0.0.1/x"}]), json!([{"name": "x", "url": "file:///etc/passwd"}])]
    {
        let response = stack.submit(&json!({"repo": repo(), "sources": sources})).await;
        assert_eq!(response.status(), 400, "{sources}");
    }
}

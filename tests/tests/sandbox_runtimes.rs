//! The node runtime, and images a repository may (not) choose itself.

use gitfaas_tests::sandbox::finished;
use gitfaas_tests::{git_repo, Stack};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn node_job_returns_what_its_exported_main_resolved_to() {
    let stack = Stack::shared();
    let main = "exports.main = async (data, credentials) => {\n  console.log('to the log');\n  return {sum: data.reduce((a, b) => a + b, 0), creds: credentials};\n};\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"node\"\n"), ("main.js", main)]);
    let id = stack.submit_ok(&json!({"repo": repo, "input": [1, 2, 39]})).await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"sum": 42, "creds": {}}));
    assert!(result["stderr_tail"].as_str().unwrap().contains("to the log"), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_exception_fails_the_job_with_its_stack() {
    let stack = Stack::shared();
    let main = "exports.main = () => { throw new Error('node says no'); };\n";
    let repo = git_repo(&[("gitfaas.toml", "runtime = \"node\"\n"), ("main.js", main)]);
    let id = stack.submit_ok(&json!({"repo": repo})).await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "failed", "{result}");
    assert!(result["stderr_tail"].as_str().unwrap().contains("Error: node says no"), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_the_operator_did_not_allow_is_rejected() {
    let stack = Stack::shared();
    let manifest = "runtime = \"python\"\nimage = \"gitfaas/executor:local\"\n";
    let repo = git_repo(&[("gitfaas.toml", manifest), ("main.py", "def main(d, c):\n    return 1\n")]);
    let id = stack.submit_ok(&json!({"repo": repo})).await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["reason"], "image `gitfaas/executor:local` is not in this executor's allowed images");
}

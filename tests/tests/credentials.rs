//! Credentials end to end: sealed by the frontend (or by the client to the key it
//! publishes), opened only by the executor, handed to the function on stdin — and
//! found nowhere in the clear: not on the topics, not in Redis, not in the logs.

use gitfaas_tests::sandbox::{capture_logs, contains, finished, keyed_stack as stack};
use gitfaas_tests::{git_repo, topics_bytes};
use serde_json::{json, Value};

/// Returns a digest of each credential, never the value itself.
const MAIN: &str =
    "import hashlib\ndef main(d, c):\n    return {k: hashlib.sha256(v.encode()).hexdigest() for k, v in c.items()}\n";

fn sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn repo() -> String {
    git_repo(&[("gitfaas.toml", "runtime = \"python\"\n"), ("main.py", MAIN)])
}

/// Every value stored under the stack's Redis prefix, whatever its type.
async fn redis_dump(prefix: &str) -> Vec<u8> {
    let client = redis::Client::open(gitfaas_tests::infra::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty(), "the stack wrote to redis");
    let mut dump = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        let cmd = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).clone(),
            "hash" => redis::cmd("HGETALL").arg(&key).clone(),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
            "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
            "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).clone(),
            "stream" => redis::cmd("XRANGE").arg(&key).arg("-").arg("+").clone(),
            _ => continue,
        };
        let value: redis::Value = cmd.query_async(&mut conn).await.unwrap();
        dump.extend_from_slice(format!("{key} {value:?}\n").as_bytes());
    }
    dump
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_reach_the_function_and_their_plaintext_is_nowhere_else() {
    let stack = stack();
    let plain = format!("plain-{}", uuid::Uuid::now_v7().simple());
    let client_sealed_plain = format!("client-{}", uuid::Uuid::now_v7().simple());

    // sealed by the frontend
    let id = stack.submit_ok(&json!({"repo": repo(), "credentials": {"api_key": plain}})).await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], json!({"api_key": sha256(&plain)}));

    // sealed by the client to the published key
    let key: Value = stack.get("/v1/keys/executor").await.json().await.unwrap();
    assert_eq!(key["algorithm"], "x25519-sealed-box");
    let box_text = json!({"token": client_sealed_plain}).to_string();
    let sealed = gitfaas_common::sealed::seal(key["public_key"].as_str().unwrap(), box_text.as_bytes()).unwrap();
    let id2 = stack.submit_ok(&json!({"repo": repo(), "sealed_credentials": sealed})).await;
    let result2 = finished(stack, &id2).await;
    assert_eq!(result2["status"], "succeeded", "{result2}");
    assert_eq!(result2["output"], json!({"token": sha256(&client_sealed_plain)}));

    let topics = stack.topics();
    let raw = topics_bytes(&[&topics.jobs, &topics.results, &topics.logs]);
    assert!(contains(&raw, &id) && contains(&raw, &id2), "the jobs are on the topics");
    let redis = redis_dump(&stack.redis_prefix).await;
    assert!(contains(&redis, &id), "the job is in redis");
    let logs = capture_logs().lock().unwrap().clone();
    assert!(contains(&logs, &id), "the services logged the job");
    for secret in [&plain, &client_sealed_plain] {
        assert!(!contains(&raw, secret), "plaintext on a topic");
        assert!(!contains(&redis, secret), "plaintext in redis");
        assert!(!contains(&logs, secret), "plaintext in the logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_sealed_to_another_key_are_rejected_by_the_executor() {
    let stack = stack();
    let other = gitfaas_common::sealed::PrivateKey::generate();
    let sealed = gitfaas_common::sealed::seal(&other.public_base64(), br#"{"a":"b"}"#).unwrap();
    let id = stack.submit_ok(&json!({"repo": repo(), "sealed_credentials": sealed})).await;
    let result = finished(stack, &id).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(result["reason"], "sealed credentials could not be opened with this executor's key");
    let both = json!({"repo": repo(), "credentials": {"a": "b"}, "sealed_credentials": sealed});
    assert_eq!(stack.submit(&both).await.status(), 400);
}

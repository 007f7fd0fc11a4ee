//! The operators' listener of the services without an HTTP API (executor,
//! observer, scaler): `GET /metrics` (Prometheus text), `GET /health/live` and
//! `GET /health/ready`. A plain HTTP/1.1 answer per connection on tokio, so that
//! these services need no web framework; the frontend serves the same routes
//! from its own API.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::kafka::{Publisher, Topic};
use crate::metrics::{encode, Registry, CONTENT_TYPE};
use crate::tasks::Tasks;

/// Whether the service is ready: `Err` says why not.
pub type ReadyCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Whether the broker answers for `topic` within 2 s: readiness of a service
/// whose work needs nothing more than a reachable broker.
pub async fn broker_reachable(publisher: &Publisher, topic: Topic) -> Result<(), String> {
    publisher.serves(topic, Duration::from_secs(2)).await.map_err(|e| format!("broker not reachable: {e}"))
}

/// A [`ReadyCheck`] that is [`broker_reachable`].
pub fn broker_ready(publisher: Publisher, topic: Topic) -> ReadyCheck {
    Arc::new(move || {
        let publisher = publisher.clone();
        Box::pin(async move { broker_reachable(&publisher, topic).await })
    })
}

/// Largest request head read; these routes take no body.
const MAX_HEAD_BYTES: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The listener bound, for logs and tests.
pub struct OpsListener {
    pub port: u16,
}

/// Binds `address` (port 0 picks one) and serves the three routes, as `tasks`,
/// until they stop.
pub async fn serve(
    address: &str,
    registry: Arc<Registry>,
    ready: ReadyCheck,
    tasks: &Tasks,
) -> std::io::Result<OpsListener> {
    let listener = TcpListener::bind(address).await?;
    let port = listener.local_addr()?.port();
    let (stop, requests) = (tasks.stopping(), tasks.clone());
    tasks.spawn("ops listener", async move {
        loop {
            let stream = tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "ops listener accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (registry, ready) = (registry.clone(), ready.clone());
            requests.spawn("ops request", async move {
                if let Err(error) = answer(stream, &registry, &ready).await {
                    tracing::debug!(%error, "ops request failed");
                }
            });
        }
    });
    Ok(OpsListener { port })
}

async fn answer(mut stream: TcpStream, registry: &Registry, ready: &ReadyCheck) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (status, content_type, body) = route(&head, registry, ready).await;
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The request line and headers, up to the blank line.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn route(head: &str, registry: &Registry, ready: &ReadyCheck) -> (&'static str, &'static str, String) {
    const JSON: &str = "application/json";
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => ("200 OK", CONTENT_TYPE, encode(registry)),
        ("GET", "/health/live") => ("200 OK", JSON, r#"{"status":"ok"}"#.into()),
        ("GET", "/health/ready") => match ready().await {
            Ok(()) => ("200 OK", JSON, r#"{"status":"ready"}"#.into()),
            Err(why) => {
                ("503 Service Unavailable", JSON, serde_json::json!({"status": "not ready", "reason": why}).to_string())
            }
        },
        (_, "/metrics" | "/health/live" | "/health/ready") => {
            ("405 Method Not Allowed", JSON, r#"{"status":"method not allowed"}"#.into())
        }
        _ => ("404 Not Found", JSON, r#"{"status":"not found"}"#.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(port: u16, request: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn the_listener_serves_metrics_liveness_and_readiness_and_refuses_the_rest() {
        let mut registry = crate::metrics::registry();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        registry.register("probes", "Probes", counter.clone());
        counter.inc();
        let is_ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = is_ready.clone();
        let ready: ReadyCheck = Arc::new(move || {
            let ready = flag.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                if ready {
                    Ok(())
                } else {
                    Err("no partitions assigned".into())
                }
            })
        });
        let tasks = Tasks::new();
        let listener = serve("127.0.0.1:0", Arc::new(registry), ready, &tasks).await.unwrap();
        let port = listener.port;

        let metrics = get(port, "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains("gitfaas_probes_total 1\n"), "{metrics}");
        assert!(get(port, "GET /health/live HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(port, "GET /health/ready HTTP/1.1\r\n\r\n").await;
        assert!(not_ready.starts_with("HTTP/1.1 503") && not_ready.contains("no partitions assigned"), "{not_ready}");
        is_ready.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(get(port, "GET /health/ready?x=1 HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 200"));
        assert!(get(port, "POST /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405"));
        assert!(get(port, "GET /nothing HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
        assert!(get(port, "garbage\r\n\r\n").await.starts_with("HTTP/1.1 404"));
    }
}

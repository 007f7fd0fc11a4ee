//! Kafka helpers: client configuration from [`KafkaSettings`], idempotent topic
//! creation, and W3C trace context (`traceparent`) carried in message headers.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::settings::KafkaSettings;

/// Base client configuration: brokers plus the operator's pass-through map.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.client {
        config.set(key, value);
    }
    config
}

/// Producer configuration for messages that must not be lost or duplicated by
/// producer retries: idempotence and acknowledgement by all in-sync replicas.
pub fn reliable_producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = client_config(settings);
    config.set("enable.idempotence", "true").set("acks", "all").set("message.timeout.ms", "30000");
    config
}

/// Creates every configured topic that does not exist yet, retrying for about a
/// minute while the broker is starting.
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let mut attempt = 0;
    loop {
        match create_topics(settings).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 12 => {
                attempt += 1;
                tracing::warn!(%error, attempt, "kafka not ready for topic creation; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn create_topics(settings: &KafkaSettings) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings).create()?;
    let topics: Vec<NewTopic<'_>> = settings
        .topics
        .all()
        .into_iter()
        .map(|name| NewTopic::new(name, settings.partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(%topic, ?code, "topic creation failed");
                })
            }
        }
    }
    Ok(())
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Headers carrying the current span's trace context (`traceparent`, `tracestate`).
pub fn trace_headers() -> OwnedHeaders {
    let mut carrier = HashMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut MapInjector(&mut carrier)));
    carrier.into_iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(rdkafka::message::Header { key: &key, value: Some(value.as_bytes()) })
    })
}

/// Makes the trace context found in `headers` (if any) the parent of `span`.
pub fn set_parent_from_headers<H: Headers>(span: &tracing::Span, headers: Option<&H>) {
    let Some(headers) = headers else { return };
    let carrier: HashMap<String, String> =
        headers.iter().filter_map(|h| Some((h.key.to_owned(), String::from_utf8(h.value?.to_vec()).ok()?))).collect();
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&MapExtractor(&carrier)));
    let _ = span.set_parent(parent);
}

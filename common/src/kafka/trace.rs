//! W3C trace context (`traceparent`, `tracestate`) carried in message headers, so
//! a job's trace runs from the request through the executor and back.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

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

/// Headers carrying the current span's trace context.
pub(super) fn trace_headers() -> OwnedHeaders {
    let mut carrier = HashMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut MapInjector(&mut carrier)));
    carrier.into_iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header { key: &key, value: Some(value.as_bytes()) })
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

//! A reader of a Server-Sent Events response (the follow stream of a job's log),
//! event by event, with the instant each one arrived.

use std::time::{Duration, Instant};

use serde_json::Value;

/// One event: its name (`message` when it has none), id, data (as JSON when it is
/// JSON), and when it arrived.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub id: Option<String>,
    pub data: Value,
    pub at: Instant,
}

pub struct EventReader {
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self { response, buf: Vec::new() }
    }

    /// The next event (comments skipped), `None` when the stream ended; panics
    /// when none came within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(event) = parse(&String::from_utf8_lossy(&block)) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.expect("an event in time");
            match chunk.expect("the stream reads") {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => return None,
            }
        }
    }

    /// Every event up to and including `end` (or the stream's end).
    pub async fn until_end(&mut self, limit: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = self.next(limit).await {
            let end = event.name == "end";
            events.push(event);
            if end {
                break;
            }
        }
        events
    }
}

fn parse(block: &str) -> Option<Event> {
    let (mut name, mut id, mut data) = ("message".to_owned(), None, Vec::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = value.to_owned(),
            "id" => id = Some(value.to_owned()),
            "data" => data.push(value.to_owned()),
            _ => {} // a comment (keep-alive) or an unknown field
        }
    }
    if data.is_empty() && name == "message" {
        return None;
    }
    let text = data.join("\n");
    let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Some(Event { name, id, data, at: Instant::now() })
}

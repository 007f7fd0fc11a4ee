//! A job's live log, followed over the logs route's Server-Sent Events
//! (`GET /v1/jobs/{id}/logs?follow=true`): each `log` event's chunk as it comes,
//! until the `end` event. `logs -f` prints the chunks on stdout, `run` on stderr.

use serde_json::Value;

use crate::api::{transport, Api, MAX_BODY_BYTES};
use crate::error::CliError;

/// One followed log: its events, read from the response as they arrive. An event
/// is bounded like an answer ([`MAX_BODY_BYTES`]); the stream is not: it lasts
/// as long as the job.
pub struct LiveLog {
    response: reqwest::Response,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no event's end.
    scanned: usize,
    attempt: Option<u64>,
    base: String,
}

/// What the stream brought next.
pub enum Piece {
    /// Text of the log; a later attempt's first chunk starts with a line naming it.
    Text(String),
    /// The job ended: the `end` event's data (`status`, `attempt`).
    End(Value),
}

impl LiveLog {
    pub async fn open(api: &Api, id: &str) -> Result<Self, CliError> {
        let response = api.follow_logs(id).await?;
        Ok(Self { response, buf: Vec::new(), scanned: 0, attempt: None, base: api.base().to_owned() })
    }

    /// The next piece; `None` when the stream closed without an `end`.
    pub async fn next(&mut self) -> Result<Option<Piece>, CliError> {
        loop {
            // only what came since the last look is searched: a long event costs no
            // more than its length
            let from = self.scanned.saturating_sub(1);
            if let Some(at) = self.buf[from..].windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..from + at + 2).collect();
                self.scanned = 0;
                if let Some(piece) = self.piece(&String::from_utf8_lossy(&block)) {
                    return Ok(Some(piece));
                }
                continue;
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_BODY_BYTES {
                return Err(CliError::TooLarge { url: self.base.clone(), limit: MAX_BODY_BYTES });
            }
            match self.response.chunk().await.map_err(|e| transport(&self.base, &e))? {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    fn piece(&mut self, block: &str) -> Option<Piece> {
        let (mut name, mut data) = ("message", String::new());
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                name = if value.trim() == "end" { "end" } else { "log" };
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        let data: Value = serde_json::from_str(&data).ok()?;
        if name == "end" {
            return Some(Piece::End(data));
        }
        let attempt = data["attempt"].as_u64();
        let mut text = String::new();
        if self.attempt.is_some() && attempt != self.attempt {
            text.push_str(&format!("[gitfaas: attempt {}]\n", attempt.unwrap_or(0)));
        }
        self.attempt = attempt;
        text.push_str(data["text"].as_str().unwrap_or_default());
        if data["truncated"] == true {
            text.push_str("\n[gitfaas: the log reached its size limit; the rest was dropped]\n");
        }
        Some(Piece::Text(text))
    }
}

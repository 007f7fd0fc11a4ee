//! The bounded stderr tail of a run, cold or warm, and the run's stderr as the
//! sandbox reads it: into the tail and into the live log.

use crate::logs::LogSink;

/// Keeps the last `cap` bytes written to it, and whether any were dropped.
pub struct Tail {
    buf: Vec<u8>,
    cap: usize,
    dropped: bool,
}

impl Tail {
    pub fn new(cap: usize) -> Self {
        Self { buf: Vec::new(), cap, dropped: false }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.cap {
            let excess = self.buf.len() - self.cap;
            self.buf.drain(..excess);
            self.dropped = true;
        }
    }

    pub fn text(&self) -> String {
        let marker = if self.dropped { "[gitfaas: earlier stderr truncated]\n" } else { "" };
        format!("{marker}{}", String::from_utf8_lossy(&self.buf))
    }
}

/// A run's stderr: the tail its result keeps, and the live log it goes to as it comes.
pub struct Stderr<'a> {
    tail: Tail,
    log: &'a LogSink,
}

impl<'a> Stderr<'a> {
    pub fn new(tail_bytes: usize, log: &'a LogSink) -> Self {
        Self { tail: Tail::new(tail_bytes), log }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.tail.push(bytes);
        self.log.push(bytes);
    }

    pub fn text(&self) -> String {
        self.tail.text()
    }
}

//! The bounded stderr tail of a run, cold or warm.

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

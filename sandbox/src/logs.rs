//! A running function's live log: what it writes besides its result (stderr — the
//! function's prints for python and node, whose runners keep stdout for the
//! result), cut into bounded chunks and handed to an outlet (the logs topic for a
//! job, the terminal for `gitfaas local run`).
//!
//! The sandbox pushes bytes into a [`LogSink`] without ever waiting: the sink keeps
//! at most the per-job cap, drops the rest and remembers that it did. A
//! [`LogStreamer`] task takes them out as chunks — at least `interval_ms` apart
//! unless `chunk_bytes` are waiting — cut after the last whole line where there is
//! one, with every credential value of the job redacted before any text leaves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use gitfaas_common::logs::{LogChunk, LogLimits, LogRun, LogStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use zeroize::Zeroizing;

/// What stands in a chunk's text for a credential value the function wrote.
pub const REDACTED: &str = "[redacted]";

/// How long a finished run waits for its last chunks to be published.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// Where the bytes a function writes go while it runs. Cloning shares it; `off`
/// drops everything.
#[derive(Clone, Default)]
pub struct LogSink {
    shared: Option<Arc<Shared>>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Bytes taken into `buf` so far, and the most it may take.
    accepted: usize,
    cap: usize,
    /// Bytes were dropped at the cap.
    dropped: bool,
    /// The function ended: what is buffered is all there will be.
    closed: bool,
}

impl LogSink {
    /// A sink that keeps nothing.
    pub fn off() -> Self {
        Self { shared: None }
    }

    /// Takes `bytes` (up to the cap); never waits.
    pub fn push(&self, bytes: &[u8]) {
        let Some(shared) = &self.shared else { return };
        let mut pending = shared.pending.lock().expect("log sink lock");
        let room = pending.cap.saturating_sub(pending.accepted);
        let taken = &bytes[..bytes.len().min(room)];
        pending.buf.extend_from_slice(taken);
        pending.accepted += taken.len();
        pending.dropped |= taken.len() < bytes.len();
        drop(pending);
        shared.wake.notify_one();
    }

    fn close(&self) {
        if let Some(shared) = &self.shared {
            shared.pending.lock().expect("log sink lock").closed = true;
            shared.wake.notify_one();
        }
    }
}

/// Every credential value of a job (and each line of a value of several lines, so
/// that a value cut across chunks is still caught), replaced wherever it appears.
#[derive(Default)]
pub struct Redactor {
    needles: Vec<Zeroizing<Vec<u8>>>,
}

impl Redactor {
    /// The values of a JSON object of strings (opened credentials); anything else redacts nothing.
    pub fn of_credentials(json: &[u8]) -> Self {
        let Ok(map) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(json) else {
            return Self::default();
        };
        let mut needles: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for value in map.values().filter_map(serde_json::Value::as_str) {
            let lines = value.lines().map(str::trim).filter(|line| line.len() >= 8 && line.len() < value.len());
            for needle in std::iter::once(value).chain(lines).filter(|n| !n.is_empty()) {
                needles.push(Zeroizing::new(needle.as_bytes().to_vec()));
            }
        }
        // the longest first: a value containing another is replaced whole
        needles.sort_by_key(|needle| std::cmp::Reverse(needle.len()));
        Self { needles }
    }

    /// Bytes at the end of a buffer that may be the start of a value still arriving.
    fn hold_back(&self) -> usize {
        self.needles.iter().map(|needle| needle.len() - 1).max().unwrap_or(0)
    }

    fn redact(&self, buf: &mut Vec<u8>) {
        for needle in &self.needles {
            let mut at = 0;
            while let Some(found) = find(&buf[at..], needle) {
                let start = at + found;
                buf.splice(start..start + needle.len(), REDACTED.bytes());
                at = start + REDACTED.len();
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Sends a chunk on its way; chunks of one run are sent one at a time, in order.
pub type Outlet = Box<dyn FnMut(LogChunk) -> BoxFuture<'static, ()> + Send>;

/// The task turning one run's sink into chunks.
pub struct LogStreamer {
    sink: LogSink,
    task: tokio::task::JoinHandle<u64>,
}

impl LogStreamer {
    pub fn start(run: LogRun, limits: &LogLimits, redactor: Redactor, outlet: Outlet) -> Self {
        let shared = Arc::new(Shared::default());
        shared.pending.lock().expect("log sink lock").cap = limits.max_bytes_per_job;
        let chunker = Chunker {
            run,
            limits: limits.clone(),
            redactor,
            seq: 0,
            emitted: 0,
            truncated: false,
            partial_since: None,
        };
        let task = tokio::spawn(chunker.run(shared.clone(), outlet));
        Self { sink: LogSink { shared: Some(shared) }, task }
    }

    pub fn sink(&self) -> LogSink {
        self.sink.clone()
    }

    /// Ends the run's log: what is buffered goes out, then the last chunk (none
    /// when the run wrote nothing). How many chunks the log was sent in, once the
    /// last is out; `None` when it was not out in time.
    pub async fn finish(self) -> Option<u64> {
        self.sink.close();
        match tokio::time::timeout(FLUSH_LIMIT, self.task).await {
            Ok(Ok(chunks)) => Some(chunks),
            Ok(Err(_)) => None,
            Err(_) => {
                tracing::warn!("the last log chunks were not published in time");
                None
            }
        }
    }
}

struct Chunker {
    run: LogRun,
    limits: LogLimits,
    redactor: Redactor,
    seq: u64,
    /// Text bytes sent so far (after redaction).
    emitted: usize,
    truncated: bool,
    /// Since when a line without its end waits: it goes out alone only after an
    /// interval (a writer often sends a line's text and its newline apart).
    partial_since: Option<Instant>,
}

impl Chunker {
    async fn run(mut self, shared: Arc<Shared>, mut outlet: Outlet) -> u64 {
        let interval = Duration::from_millis(self.limits.interval_ms);
        let mut next_allowed = Instant::now();
        // nothing could be cut (all held back): wait for more, or for the next interval
        let mut stalled = false;
        loop {
            let (size, closed) = {
                let pending = shared.pending.lock().expect("log sink lock");
                if pending.closed && pending.buf.is_empty() && !pending.dropped && self.seq == 0 {
                    return 0; // the run wrote nothing: its result says so, no closing chunk
                }
                (pending.buf.len(), pending.closed)
            };
            let due = closed || size >= self.limits.chunk_bytes || (size > 0 && Instant::now() >= next_allowed);
            if !due || (stalled && !closed) {
                let deadline = (size > 0).then_some(next_allowed);
                tokio::select! {
                    () = shared.wake.notified() => {}
                    () = sleep_until(deadline) => {}
                }
                stalled = false;
                continue;
            }
            let taken = self.take(&mut shared.pending.lock().expect("log sink lock"), Instant::now());
            next_allowed = Instant::now() + interval;
            match taken {
                Some(chunk) => {
                    let last = chunk.last;
                    outlet(chunk).await;
                    if last {
                        return self.seq;
                    }
                }
                None => stalled = true,
            }
        }
    }

    /// The next chunk out of `pending`, if there is one to send now.
    fn take(&mut self, pending: &mut Pending, now: Instant) -> Option<LogChunk> {
        self.redactor.redact(&mut pending.buf);
        let held = if pending.closed { 0 } else { self.redactor.hold_back() };
        let mut cut = pending.buf.len().saturating_sub(held).min(self.limits.chunk_bytes);
        // whole lines where there are any; a line's start alone once it waited an interval
        match pending.buf[..cut].iter().rposition(|b| *b == b'\n') {
            Some(newline) => cut = newline + 1,
            None if !pending.closed && cut < self.limits.chunk_bytes => {
                let since = *self.partial_since.get_or_insert(now);
                if now.duration_since(since) < Duration::from_millis(self.limits.interval_ms) {
                    return None;
                }
            }
            None => {}
        }
        self.partial_since = None;
        cut = char_boundary(&pending.buf, cut);
        let bytes: Vec<u8> = pending.buf.drain(..cut).collect();
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        let drained = pending.buf.is_empty();
        let last = pending.closed && drained;
        if self.truncated {
            // past the cap: only the closing chunk goes out, empty
            return last.then(|| self.chunk(String::new(), false, true));
        }
        let room = self.limits.max_bytes_per_job.saturating_sub(self.emitted);
        let mut truncated = pending.dropped && drained;
        if text.len() > room {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            truncated = true;
        }
        if text.is_empty() && !truncated && !last {
            return None;
        }
        self.truncated = truncated;
        self.emitted += text.len();
        Some(self.chunk(text, truncated, last))
    }

    fn chunk(&mut self, text: String, truncated: bool, last: bool) -> LogChunk {
        let chunk = LogChunk { truncated, last, ..LogChunk::new(self.run.clone(), self.seq, LogStream::Stderr, text) };
        self.seq += 1;
        chunk
    }
}

/// `cut`, moved back off the middle of a UTF-8 sequence (unless that leaves nothing).
fn char_boundary(buf: &[u8], cut: usize) -> usize {
    let mut at = cut;
    for _ in 0..3 {
        if at > 0 && at < buf.len() && (buf[at] & 0xC0) == 0x80 {
            at -= 1;
        } else {
            break;
        }
    }
    if at == 0 {
        cut
    } else {
        at
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;

//! A run's stdout and stderr as WASI output streams: stdout kept in memory up to
//! its cap (a write past it stops the run), stderr handed on as it is written
//! (the live log) and its last bytes kept (the result's tail).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// What stderr's bytes go to while the function runs (the live log).
pub type StderrOutlet = Box<dyn FnMut(&[u8]) + Send>;

/// The marker a run stopped by its stdout cap traps with.
#[derive(Debug, thiserror::Error)]
#[error("stdout passed its limit of {0} bytes")]
pub struct StdoutCapped(pub usize);

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    overflow: bool,
}

/// Stdout: at most `cap` bytes; the write that would pass it traps the run.
#[derive(Clone)]
pub struct Stdout {
    shared: Arc<Mutex<Captured>>,
    cap: usize,
}

impl Stdout {
    pub fn new(cap: usize) -> Self {
        Self { shared: Arc::default(), cap }
    }

    /// The bytes written, and whether a write passed the cap.
    pub fn taken(&self) -> (Vec<u8>, bool) {
        let mut shared = self.shared.lock().expect("stdout lock");
        (std::mem::take(&mut shared.bytes), shared.overflow)
    }

    fn take(&self, bytes: &[u8]) -> Result<(), StdoutCapped> {
        let mut shared = self.shared.lock().expect("stdout lock");
        if shared.bytes.len() + bytes.len() > self.cap {
            shared.overflow = true;
            return Err(StdoutCapped(self.cap));
        }
        shared.bytes.extend_from_slice(bytes);
        Ok(())
    }
}

struct TailState {
    tail: Vec<u8>,
    dropped: bool,
    outlet: StderrOutlet,
}

/// Stderr: every byte to the outlet, the last `cap` kept.
#[derive(Clone)]
pub struct Stderr {
    shared: Arc<Mutex<TailState>>,
    cap: usize,
}

impl Stderr {
    pub fn new(cap: usize, outlet: StderrOutlet) -> Self {
        Self { shared: Arc::new(Mutex::new(TailState { tail: Vec::new(), dropped: false, outlet })), cap }
    }

    /// The kept tail as text, marked when earlier bytes were dropped.
    pub fn tail(&self) -> String {
        let shared = self.shared.lock().expect("stderr lock");
        let marker = if shared.dropped { "[gitfaas: earlier stderr truncated]\n" } else { "" };
        format!("{marker}{}", String::from_utf8_lossy(&shared.tail))
    }

    fn take(&self, bytes: &[u8]) {
        let mut shared = self.shared.lock().expect("stderr lock");
        (shared.outlet)(bytes);
        let keep = &bytes[bytes.len().saturating_sub(self.cap)..];
        shared.tail.extend_from_slice(keep);
        if shared.tail.len() > self.cap {
            let excess = shared.tail.len() - self.cap;
            shared.tail.drain(..excess);
            shared.dropped = true;
        }
    }
}

/// One of the two, as the stream the guest writes to.
#[derive(Clone)]
pub enum Sink {
    Stdout(Stdout),
    Stderr(Stderr),
}

impl Sink {
    fn take(&self, bytes: &[u8]) -> Result<(), StdoutCapped> {
        match self {
            Sink::Stdout(out) => out.take(bytes),
            Sink::Stderr(err) => {
                err.take(bytes);
                Ok(())
            }
        }
    }
}

impl IsTerminal for Sink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Sink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Sink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes).map_err(|capped| StreamError::Trap(wasmtime::Error::new(capped)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Sink {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Sink {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.take(buf).map(|()| buf.len()).map_err(|capped| io::Error::other(capped.to_string())))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

//! One warm sandbox: a long-lived container whose resident runner serves one
//! invocation at a time over its attached stdin/stdout (the frames are described
//! in `runner.py`), and the workspace (checkout, input, output) it was started
//! with, which lives as long as it does. The same limits as a cold run hold per
//! invocation; any invocation that ends other than by its function's own exit
//! leaves the container unfit for another one.

use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::docker::{Sandbox, SandboxError, SandboxOutcome, SandboxSpec, STDOUT_CAP_MARKER};
use crate::logs::LogSink;
use crate::tail::Stderr;
use crate::workspace::Workspace;

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// No frame the runner writes is larger than its read chunk and a small header.
const MAX_FRAME_BYTES: usize = 1 << 20;

pub struct WarmContainer {
    pub id: String,
    network: Option<String>,
    input: Input,
    output: Output,
    buf: Vec<u8>,
    pub workspace: Workspace,
}

/// What one invocation did, and whether the container may serve another.
pub struct Invocation {
    pub outcome: SandboxOutcome,
    pub reusable: bool,
}

enum Frame {
    Ready,
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit { code: i64, oom: bool },
}

#[derive(serde::Deserialize)]
struct Exit {
    code: i64,
    oom: bool,
}

impl WarmContainer {
    pub async fn start(sandbox: &Sandbox, spec: &SandboxSpec, workspace: Workspace) -> Result<Self, SandboxError> {
        let (id, io) = sandbox.start_attached(spec).await?;
        let network = spec.job_network.then(|| spec.name.clone());
        Ok(Self { id, network, input: io.input, output: io.output, buf: Vec::new(), workspace })
    }

    /// Removes the container while still reading its output: the engine does not
    /// complete a kill while the attach stream of a flooding runner is full.
    pub async fn remove(self, sandbox: &Sandbox) {
        let Self { id, network, mut output, .. } = self;
        let drainer = tokio::spawn(async move { while output.next().await.is_some() {} });
        sandbox.discard(&id, network.as_deref()).await;
        drainer.abort();
    }

    /// Names the function a ready sandbox serves from now on: the cold runner's
    /// arguments, the runner's first request.
    pub async fn name_function(&mut self, args: &[String]) -> std::io::Result<()> {
        let named = serde_json::to_vec(args).map_err(std::io::Error::other)?;
        let mut framed = (named.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&named);
        self.input.write_all(&framed).await?;
        self.input.flush().await
    }

    /// Runs one invocation: `request` is what a cold runner reads on stdin; the
    /// function's stderr frames go to `log` as they come.
    pub async fn invoke(
        &mut self,
        sandbox: &Sandbox,
        request: &[u8],
        timeout: Duration,
        log: &LogSink,
        cancel: &CancellationToken,
    ) -> Invocation {
        let policy = sandbox.policy();
        let mut outcome = SandboxOutcome::default();
        let mut stderr = Stderr::new(policy.stderr_tail_bytes, log);
        let mut framed = zeroize::Zeroizing::new(Vec::with_capacity(request.len() + 4));
        framed.extend_from_slice(&(request.len() as u32).to_be_bytes());
        framed.extend_from_slice(request);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let sent = tokio::select! {
            sent = async { self.input.write_all(&framed).await?; self.input.flush().await } => sent.is_ok(),
            () = &mut deadline => { outcome.timed_out = true; false }
            () = cancel.cancelled() => { outcome.cancelled = true; false }
        };
        drop(framed);
        let mut reusable = false;
        if sent {
            loop {
                tokio::select! {
                    frame = self.next_frame() => match frame {
                        Some(Frame::Ready) => {}
                        Some(Frame::Stdout(bytes)) => {
                            if outcome.stdout.len() + bytes.len() > policy.stdout_max_bytes {
                                outcome.stdout_overflow = true;
                                break;
                            }
                            outcome.stdout.extend_from_slice(&bytes);
                        }
                        Some(Frame::Stderr(bytes)) => stderr.push(&bytes),
                        Some(Frame::Exit { code, oom }) => {
                            outcome.exit_code = Some(code);
                            outcome.oom_killed = oom;
                            // a function killed by a signal (a crash) or by the kernel leaves the container behind
                            reusable = !oom && code < 128;
                            break;
                        }
                        None => {
                            tracing::warn!(container = %self.id, "warm runner ended or broke its protocol");
                            // the container itself died (e.g. the whole sandbox was out of memory): Docker says how
                            if let Ok((code, oom)) = sandbox.wait_exit_if_exited(&self.id).await {
                                outcome.exit_code = code;
                                outcome.oom_killed = oom;
                            }
                            break;
                        }
                    },
                    () = &mut deadline => { outcome.timed_out = true; break; }
                    () = cancel.cancelled() => { outcome.cancelled = true; break; }
                }
            }
        }
        outcome.stderr_tail = stderr.text();
        if outcome.stdout_overflow {
            outcome.stdout.clear();
            outcome.stderr_tail.push_str(STDOUT_CAP_MARKER);
        }
        Invocation { outcome, reusable }
    }

    /// The next whole frame; `None` when the stream ended or a frame is malformed.
    async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(parsed) = self.parse_frame() {
                return parsed;
            }
            match self.output.next().await? {
                Ok(LogOutput::StdOut { message }) => self.buf.extend_from_slice(&message),
                Ok(LogOutput::StdErr { message }) => {
                    tracing::warn!(container = %self.id, stderr = %String::from_utf8_lossy(&message), "warm runner")
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(container = %self.id, %error, "warm output stream error");
                    return None;
                }
            }
        }
    }

    /// `Some(frame)` for a whole frame at the front of the buffer, `Some(None)` for
    /// a malformed one, `None` when more bytes are needed.
    fn parse_frame(&mut self) -> Option<Option<Frame>> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Some(None);
        }
        if self.buf.len() < 5 + len {
            return None;
        }
        let kind = self.buf[0];
        let payload: Vec<u8> = self.buf.drain(..5 + len).skip(5).collect();
        Some(match kind {
            b'R' => Some(Frame::Ready),
            b'O' => Some(Frame::Stdout(payload)),
            b'E' => Some(Frame::Stderr(payload)),
            b'X' => serde_json::from_slice::<Exit>(&payload).ok().map(|e| Frame::Exit { code: e.code, oom: e.oom }),
            _ => None,
        })
    }
}

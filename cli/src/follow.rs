//! `gitfaas run`: submits a job and follows it to its end. The submit asks for a
//! short synchronous wait (`Prefer: wait`), so a quick job is one round trip; a
//! longer one is followed with the result route's long-poll, while the events
//! websocket (opened before the submit, so no transition is missed) moves the
//! progress line on stderr through queued → running → done, and the job's live log
//! (the logs route's event stream) is printed on stderr as it comes. The output
//! JSON is the only thing on stdout.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::api::{Api, EventStream, Submitted};
use crate::args::{Output, RunArgs};
use crate::error::{exit_of, CliError};
use crate::escape;
use crate::jobs::{status_of, MAX_WAIT_SECS};
use crate::live::{LiveLog, Piece};
use crate::show::{err, out};
use crate::{input, show, upstream};

/// How long the submit itself waits for the job's end before following it.
const SUBMIT_WAIT_SECS: u64 = 2;

pub async fn run(api: &Api, output: Output, args: RunArgs) -> Result<ExitCode, CliError> {
    let body = request_body(&args)?;
    if args.detach {
        let id = match api.submit(&body, 0).await? {
            Submitted::Accepted { id } => id,
            Submitted::Finished(result) => result["job_id"].as_str().unwrap_or_default().to_owned(),
        };
        err!("submitted {id}: `gitfaas result {id} --wait 60` waits for its result");
        out!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut events = open_events(api).await;
    let mut progress = Progress::new();
    progress.show("submitting");
    let (result, logged) = match api.submit(&body, SUBMIT_WAIT_SECS).await? {
        Submitted::Finished(result) => (result, false),
        Submitted::Accepted { id } => {
            progress.id = id.clone();
            progress.show("queued");
            follow(api, &id, events.as_mut(), &mut progress).await?
        }
    };
    let status = status_of(&result)?;
    progress.id = result["job_id"].as_str().unwrap_or_default().to_owned();
    progress.finish(&result, logged);
    if output == Output::Json {
        show::json(&result);
    } else if let Some(out) = result.get("output").filter(|_| status == gitfaas_common::JobStatus::Succeeded) {
        show::json(out);
    }
    Ok(exit_of(status))
}

/// The submit body: the named repository, or the current checkout's pushed upstream.
fn request_body(args: &RunArgs) -> Result<Value, CliError> {
    let (repo, git_ref) = match &args.repo {
        Some(arg) => {
            let (repo, git_ref) = upstream::split_ref(arg);
            (repo.to_owned(), git_ref.map(str::to_owned))
        }
        None => {
            let found = upstream::of_checkout(Path::new("."))?;
            err!("running {} at {} ({}, the upstream of `{}`)", found.url, found.commit, found.upstream, found.branch);
            if found.unpushed > 0 {
                err!("note: {} local commit(s) not pushed do not run; `git push` first", found.unpushed);
            }
            (found.url, Some(found.commit))
        }
    };
    let mut body = json!({"repo": repo});
    if let Some(git_ref) = git_ref {
        body["ref"] = json!(git_ref);
    }
    if let Some(runtime) = &args.runtime {
        body["runtime"] = json!(runtime);
    }
    if let Some(timeout) = args.timeout {
        body["timeout_secs"] = json!(timeout);
    }
    if let Some(submodules) = &args.submodules {
        body["submodules"] = json!(submodules);
    }
    args.target.add_to(&mut body);
    if let Some(value) = input::read(args.input.as_deref())? {
        body["input"] = value;
    }
    Ok(body)
}

/// Long-polls the result; meanwhile moves the progress line on each transition the
/// websocket reports (or, without one, on a status read every second) and prints
/// the live log. The result, and whether any of the log was printed live.
async fn follow(
    api: &Api,
    id: &str,
    mut events: Option<&mut EventStream>,
    progress: &mut Progress,
) -> Result<(Value, bool), CliError> {
    let mut live = LiveLog::open(api, id).await.ok();
    let mut logged = false;
    let mut poll = Box::pin(api.result(id, MAX_WAIT_SECS));
    let mut tick = tokio::time::interval(Duration::from_millis(if events.is_some() { 200 } else { 1000 }));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            answer = &mut poll => match answer? {
                Some(result) => {
                    // the log's end follows the result: print what is still on its way
                    let rest = drain(live.as_mut(), progress, &mut logged);
                    let _ = tokio::time::timeout(LOG_DRAIN_LIMIT, rest).await;
                    return Ok((result, logged));
                }
                None => poll = Box::pin(api.result(id, MAX_WAIT_SECS)),
            },
            piece = next_piece(live.as_mut()) => match piece {
                Some(Piece::Text(text)) => {
                    progress.log(&text);
                    logged = true;
                }
                Some(Piece::End(_)) | None => live = None,
            },
            event = next_event(events.as_deref_mut()) => match event {
                Some(event) if event["id"] == id => progress.transition(&event),
                Some(_) => {}
                None => events = None, // the stream ended: the ticks read the status
            },
            _ = &mut interrupted => return Err(CliError::Interrupted { id: id.to_owned() }),
            _ = tick.tick() => {
                if events.is_none() {
                    if let Ok(view) = api.status(id).await {
                        progress.transition(&view);
                    }
                }
                progress.redraw();
            }
        }
    }
}

/// How long `run` waits, after the result, for the rest of the live log.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The next piece of the live log; never resolves without one (or after its end).
async fn next_piece(live: Option<&mut LiveLog>) -> Option<Piece> {
    let Some(live) = live else { return std::future::pending().await };
    live.next().await.ok().flatten()
}

/// Prints the live log up to its end.
async fn drain(live: Option<&mut LiveLog>, progress: &mut Progress, logged: &mut bool) {
    let Some(live) = live else { return };
    while let Ok(Some(Piece::Text(text))) = live.next().await {
        progress.log(&text);
        *logged = true;
    }
}

/// The caller's events websocket, or `None` when it cannot be opened (the
/// progress then comes from status reads).
async fn open_events(api: &Api) -> Option<EventStream> {
    match api.open_events().await {
        Ok(stream) => Some(stream),
        Err(why) => {
            err!("note: no event stream ({why}); following the job's status instead");
            None
        }
    }
}

/// The next event as JSON; `None` when there is no stream or it ended. Without a
/// stream this never resolves, so the `select!` branch stays quiet.
async fn next_event(events: Option<&mut EventStream>) -> Option<Value> {
    let Some(events) = events else { return std::future::pending().await };
    loop {
        match events.next().await? {
            Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The progress line on stderr: redrawn in place on a terminal, one line per
/// transition otherwise.
struct Progress {
    id: String,
    state: String,
    started: Instant,
    terminal: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            id: String::new(),
            state: String::new(),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, state: &str) {
        if self.state == state {
            return;
        }
        self.state = state.to_owned();
        if self.terminal {
            self.redraw();
        } else {
            err!("{}", escape::line(&self.line()));
        }
    }

    fn line(&self) -> String {
        let id = if self.id.is_empty() { String::new() } else { format!("job {} ", self.id) };
        format!("{id}{}", self.state)
    }

    fn redraw(&self) {
        if self.terminal {
            let elapsed = self.started.elapsed().as_secs_f64();
            // our own control sequences; the line's text (an id, a status) shown
            eprint!("\r\x1b[2K{} {elapsed:.1}s", escape::line(&self.line()));
            let _ = std::io::stderr().flush();
        }
    }

    /// A job event or view: `queued`, or `running (attempt N)`.
    fn transition(&mut self, update: &Value) {
        match (update["status"].as_str(), update["attempt"].as_u64()) {
            (Some("running"), Some(attempt)) if attempt > 1 => self.show(&format!("running (attempt {attempt})")),
            (Some(status @ ("queued" | "running")), _) => self.show(status),
            _ => {} // the result's long-poll reports the end
        }
    }

    /// A piece of the live log, above the progress line.
    fn log(&mut self, text: &str) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
        eprint!("{}", escape::text(text));
        if self.terminal && !text.ends_with('\n') {
            eprintln!();
        }
        self.redraw();
    }

    /// The log tail (unless the live log was printed), then the terminal line with
    /// the reason and timings.
    fn finish(&mut self, result: &Value, logged: bool) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
        let log = result["stderr_tail"].as_str().unwrap_or_default();
        if !logged && !log.is_empty() {
            eprint!("{}", escape::text(log));
            if !log.ends_with('\n') {
                eprintln!();
            }
        }
        let status = result["status"].as_str().unwrap_or("unknown");
        let reason = result["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
        self.state = format!("{status}{reason} ({})", show::timings(result));
        err!("{}", self.line());
    }
}

//! The chunker with short intervals, and an outlet that keeps what it is given.

use super::*;
use gitfaas_common::JobId;

fn run() -> LogRun {
    LogRun { job_id: JobId::new(), attempt: 1, executor_id: "e".into(), started_at: chrono::Utc::now() }
}

fn collecting() -> (Outlet, Arc<Mutex<Vec<LogChunk>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let into = kept.clone();
    let outlet: Outlet = Box::new(move |chunk| {
        into.lock().unwrap().push(chunk);
        Box::pin(async {})
    });
    (outlet, kept)
}

fn text_of(chunks: &[LogChunk]) -> String {
    chunks.iter().map(|c| c.text.as_str()).collect()
}

#[tokio::test]
async fn lines_go_out_whole_in_order_and_the_last_chunk_closes_the_run() {
    let (outlet, kept) = collecting();
    let limits = LogLimits { interval_ms: 20, ..LogLimits::default() };
    let streamer = LogStreamer::start(run(), &limits, Redactor::default(), outlet);
    let sink = streamer.sink();
    for i in 0..5 {
        // the text and its newline apart, as python's print writes them
        sink.push(format!("line {i}").as_bytes());
        tokio::time::sleep(Duration::from_millis(5)).await;
        sink.push(b"\n");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    sink.push("ü no newline".as_bytes());
    let sent = streamer.finish().await;
    let chunks = kept.lock().unwrap().clone();
    assert_eq!(sent, Some(chunks.len() as u64), "finish counts the chunks sent");
    assert!(chunks.len() >= 5, "one chunk per line, a line every 3 intervals: {chunks:?}");
    assert_eq!(text_of(&chunks), "line 0\nline 1\nline 2\nline 3\nline 4\nü no newline");
    assert!(chunks.iter().enumerate().all(|(i, c)| c.seq == i as u64));
    assert!(chunks.iter().rev().skip(1).all(|c| !c.last && c.text.ends_with('\n')));
    assert!(chunks.last().unwrap().last);
    assert!(chunks.iter().all(|c| !c.truncated));
}

#[tokio::test]
async fn a_run_that_writes_nothing_sends_no_chunk_and_says_so() {
    let (outlet, kept) = collecting();
    let limits = LogLimits { interval_ms: 20, ..LogLimits::default() };
    let streamer = LogStreamer::start(run(), &limits, Redactor::default(), outlet);
    let sink = streamer.sink();
    sink.push(b""); // an empty write is no log
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(streamer.finish().await, Some(0));
    assert!(kept.lock().unwrap().is_empty(), "no closing chunk for an empty log");

    // one byte is a log: it goes out, closed
    let (outlet, kept) = collecting();
    let streamer = LogStreamer::start(run(), &limits, Redactor::default(), outlet);
    streamer.sink().push(b"x");
    assert_eq!(streamer.finish().await, Some(1));
    let chunks = kept.lock().unwrap().clone();
    assert_eq!((chunks.len(), chunks[0].text.as_str(), chunks[0].last), (1, "x", true));
}

#[tokio::test]
async fn a_flood_is_capped_in_bounded_chunks_and_marked_truncated_once() {
    let (outlet, kept) = collecting();
    let limits = LogLimits { max_bytes_per_job: 100_000, chunk_bytes: 4096, interval_ms: 200 };
    let streamer = LogStreamer::start(run(), &limits, Redactor::default(), outlet);
    let sink = streamer.sink();
    let line = "x".repeat(99) + "\n";
    for _ in 0..50_000 {
        sink.push(line.as_bytes()); // 5 MB
    }
    streamer.finish().await;
    let chunks = kept.lock().unwrap().clone();
    let total: usize = chunks.iter().map(|c| c.text.len()).sum();
    assert!(total <= limits.max_bytes_per_job && total > limits.max_bytes_per_job - 4096, "{total}");
    assert!(chunks.iter().all(|c| c.text.len() <= limits.chunk_bytes));
    assert_eq!(chunks.iter().filter(|c| c.truncated).count(), 1);
    assert!(chunks.last().unwrap().last);
}

#[tokio::test]
async fn a_credential_value_is_redacted_even_when_it_arrives_in_pieces() {
    let (outlet, kept) = collecting();
    let limits = LogLimits { chunk_bytes: 64, interval_ms: 20, ..LogLimits::default() };
    let redactor =
        Redactor::of_credentials(br#"{"api":"s3cr3t-t0ken","pem":"-----BEGIN-----\nAAAABBBBCCCCDDDD\n-----END-----"}"#);
    let streamer = LogStreamer::start(run(), &limits, redactor, outlet);
    let sink = streamer.sink();
    sink.push(b"token is s3cr3t-");
    tokio::time::sleep(Duration::from_millis(100)).await;
    sink.push(b"t0ken and a long line that is longer than one chunk of sixty-four bytes ... s3cr3t-t0ken\n");
    sink.push(b"key line AAAABBBBCCCCDDDD\n");
    streamer.finish().await;
    let text = text_of(&kept.lock().unwrap());
    assert!(!text.contains("s3cr3t") && !text.contains("t0ken") && !text.contains("AAAABBBB"), "{text}");
    assert_eq!(text.matches(REDACTED).count(), 3, "{text}");
    assert!(text.starts_with("token is [redacted] and a long line"), "{text}");
}

#[test]
fn a_sink_that_is_off_keeps_nothing_and_redactors_ignore_what_is_not_credentials() {
    LogSink::off().push(b"dropped");
    assert_eq!(Redactor::of_credentials(b"[1]").hold_back(), 0);
    assert_eq!(Redactor::of_credentials(br#"{"a":"abcd"}"#).hold_back(), 3);
    assert_eq!(char_boundary("aü".as_bytes(), 2), 1);
}

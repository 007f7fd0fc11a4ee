//! Benchmark (not a test) of the git mirror cache: a fresh clone into an empty
//! cache versus a cached re-fetch of the same repository, served by a local
//! `git daemon`. The repository is generated: `--files` files changed over
//! `--commits` commits (git fast-import). Writes the figures as JSON.
//!
//! `cargo run -p gitfaas-executor --release --bin bench-git -- --out bench/git.json`

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gitfaas_executor::GitCache;

struct Args {
    out: String,
    files: usize,
    commits: usize,
    runs: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args { out: "bench/git.json".into(), files: 3000, commits: 2000, runs: 5 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => args.out = value,
            "--files" => args.files = value.parse()?,
            "--commits" => args.commits = value.parse()?,
            "--runs" => args.runs = value.parse()?,
            _ => bail!("unknown flag {flag} (--out, --files, --commits, --runs)"),
        }
    }
    Ok(args)
}

/// A repository with `files` files of source-like text over `commits` commits.
fn generate(dir: &Path, files: usize, commits: usize) -> anyhow::Result<()> {
    let status = Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(dir).status()?;
    anyhow::ensure!(status.success(), "git init failed");
    let mut import =
        Command::new("git").args(["fast-import", "--quiet"]).current_dir(dir).stdin(Stdio::piped()).spawn()?;
    let mut stdin = std::io::BufWriter::new(import.stdin.take().unwrap());
    for c in 0..commits {
        writeln!(stdin, "commit refs/heads/main\ncommitter bench <bench@localhost> {} +0000", 1_700_000_000 + c)?;
        let message = format!("change {c}");
        writeln!(stdin, "data {}\n{message}", message.len())?;
        // the first commit adds every file; later ones each touch a few
        let touched: Vec<usize> =
            if c == 0 { (0..files).collect() } else { (0..3).map(|k| (c * 7 + k * 101) % files).collect() };
        for f in touched {
            let body: String =
                (0..40).map(|line| format!("fn item_{f}_{line}() -> u64 {{ {} }}\n", f * line + c)).collect();
            writeln!(stdin, "M 644 inline src/mod{}/file{f}.rs\ndata {}\n{body}", f % 50, body.len())?;
        }
    }
    drop(stdin);
    anyhow::ensure!(import.wait()?.success(), "git fast-import failed");
    Ok(())
}

fn serve(root: &Path) -> anyhow::Result<(Child, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("git")
        .args(["daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
        .arg(format!("--base-path={}", root.display()))
        .arg(root)
        .stderr(Stdio::null())
        .spawn()?;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, port));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("git daemon did not start")
}

fn time_checkout(cache: &GitCache, url: &str) -> anyhow::Result<f64> {
    let dest = tempfile::tempdir()?;
    let started = Instant::now();
    cache.checkout(url, "main", dest.path(), None)?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let root = tempfile::tempdir()?;
    generate(&root.path().join("bench.git"), args.files, args.commits)?;
    let (mut daemon, port) = serve(root.path())?;
    let url = format!("git://127.0.0.1:{port}/bench.git");
    let (mut fresh, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let dir = tempfile::tempdir()?;
        let cache = GitCache::new(dir.path(), 1024)?;
        fresh.push(time_checkout(&cache, &url)?);
        cached.push(time_checkout(&cache, &url)?);
    }
    let _ = daemon.kill();
    let (fresh_ms, cached_ms) = (median(fresh.clone()), median(cached.clone()));
    let report = serde_json::json!({
        "repository": {"files": args.files, "commits": args.commits, "served_by": "git daemon on 127.0.0.1"},
        "runs": args.runs,
        "fresh_clone_ms": {"median": fresh_ms, "all": fresh},
        "cached_refetch_ms": {"median": cached_ms, "all": cached},
        "speedup": fresh_ms / cached_ms,
        "note": "each figure includes the checkout of the tree into a new directory",
    });
    if let Some(dir) = Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

//! A private git host for the tests: `git http-backend` (git's own smart-HTTP CGI
//! program) behind a small HTTP/1.1 server on 127.0.0.1 that demands HTTP basic
//! auth with one token, presented the way the executor presents it (user
//! [`GIT_USERNAME`], the token as the password). Anything else gets
//! `401` with `WWW-Authenticate: Basic`.
//!
//! The server keeps a log of what it did — request line, status, and whether the
//! credentials were missing, refused or accepted, plus whatever `http-backend`
//! wrote to stderr — and never the `Authorization` header's value, so tests can
//! check the token appears nowhere but in that header.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The basic-auth user name the executor sends with a `git_token` (its password).
pub const GIT_USERNAME: &str = "x-access-token";

/// Requests whose head or body is larger than this are refused (the tests' are tiny).
const MAX_REQUEST_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct GitHttpServer {
    pub port: u16,
    root: Arc<tempfile::TempDir>,
    /// The whole `Authorization` header value a request must carry.
    expected_authorization: Arc<String>,
    log: Arc<Mutex<Vec<String>>>,
}

/// An HTTP request as read off the socket.
struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl GitHttpServer {
    /// Starts serving on a free port of 127.0.0.1 (on the caller's runtime); only
    /// requests authenticated with `token` reach the repositories.
    pub async fn start(token: &str) -> GitHttpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{GIT_USERNAME}:{token}"));
        let server = GitHttpServer {
            port: listener.local_addr().expect("local addr").port(),
            root: Arc::new(tempfile::tempdir().expect("repository root")),
            expected_authorization: Arc::new(format!("Basic {credentials}")),
            log: Arc::default(),
        };
        let state = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(state.clone().serve(stream));
            }
        });
        server
    }

    /// Creates a repository (branch `main`, one commit of `files`) and returns its URL.
    pub fn repo(&self, files: &[(&str, &str)]) -> String {
        let name = crate::unique("private");
        let dir = self.root.path().join(&name);
        std::fs::create_dir_all(&dir).expect("repo dir");
        for (path, content) in files {
            std::fs::write(dir.join(path), content).expect("write file");
        }
        git(&dir, &["init", "-q", "-b", "main"]);
        git(&dir, &["add", "."]);
        git(&dir, &["-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "private"]);
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// The work tree of repository `url` of this server.
    pub fn dir_of(&self, url: &str) -> std::path::PathBuf {
        self.root.path().join(url.rsplit('/').next().expect("a repository name"))
    }

    /// Everything the server logged so far, one line per entry.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    async fn serve(self, mut stream: TcpStream) {
        let Some(request) = read_request(&mut stream).await else { return };
        let target = format!("{} /{}?{}", request.method, request.path, request.query);
        let auth = match request.header("authorization") {
            None => "missing",
            Some(value) if value == self.expected_authorization.as_str() => "accepted",
            Some(_) => "refused",
        };
        let (status, headers, body) = if auth == "accepted" {
            self.backend(&request).await
        } else {
            let headers = vec![("WWW-Authenticate".to_owned(), "Basic realm=\"gitfaas-test\"".to_owned())];
            ("401 Unauthorized".to_owned(), headers, b"authentication required\n".to_vec())
        };
        self.note(format!("{target} -> {status} (credentials {auth})"));
        let mut head = format!("HTTP/1.1 {status}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
        let _ = stream.shutdown().await;
    }

    /// Runs `git http-backend` on the request as a CGI program; returns its status,
    /// headers and body.
    async fn backend(&self, request: &Request) -> (String, Vec<(String, String)>, Vec<u8>) {
        let mut command = tokio::process::Command::new("git");
        command
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", self.root.path())
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", &request.method)
            .env("PATH_INFO", format!("/{}", request.path))
            .env("QUERY_STRING", &request.query)
            .env("CONTENT_LENGTH", request.body.len().to_string())
            .env("REMOTE_USER", GIT_USERNAME)
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (header, variable) in [
            ("content-type", "CONTENT_TYPE"),
            ("git-protocol", "GIT_PROTOCOL"),
            ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ] {
            if let Some(value) = request.header(header) {
                command.env(variable, value);
            }
        }
        let mut child = command.spawn().expect("git http-backend starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let body = request.body.clone();
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&body).await;
        });
        let output = child.wait_with_output().await.expect("git http-backend runs");
        let _ = writer.await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !stderr.trim().is_empty() {
            self.note(format!("http-backend: {}", stderr.trim()));
        }
        parse_cgi(&output.stdout)
    }
}

/// Splits a CGI program's output into status, headers and body.
fn parse_cgi(output: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let (head, body) = match output.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&output[..i], &output[i + 4..]),
        None => match output.windows(2).position(|w| w == b"\n\n") {
            Some(i) => (&output[..i], &output[i + 2..]),
            None => return ("502 Bad Gateway".into(), Vec::new(), output.to_vec()),
        },
    };
    let mut status = "200 OK".to_owned();
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("status") {
            status = value.trim().to_owned();
        } else {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    (status, headers, body.to_vec())
}

/// Reads one request: head, then a body of `Content-Length` bytes or chunked.
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(stream, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut words = lines.next()?.split_whitespace();
    let method = words.next()?.to_owned();
    let target = words.next()?;
    // absolute-form, as a request arrives through a proxy (a server must accept it, RFC 9112 3.2.2)
    let target = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.trim_start_matches('/').to_owned(), query.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut rest = buf.split_off(head_end);
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(stream, rest).await?
    } else {
        let length: usize = find("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        if length > MAX_REQUEST_BYTES {
            return None;
        }
        while rest.len() < length {
            read_more(stream, &mut rest).await?;
        }
        rest.truncate(length);
        rest
    };
    Some(Request { method, path, query, headers, body })
}

/// Decodes a chunked body, of which `buf` holds what was already read.
async fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            read_more(stream, &mut buf).await?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body); // trailers, if any, are not needed
        }
        while buf.len() < line_end + 2 + size + 2 {
            read_more(stream, &mut buf).await?;
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        if body.len() > MAX_REQUEST_BYTES {
            return None;
        }
        buf.drain(..line_end + 2 + size + 2);
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 || buf.len() + n > MAX_REQUEST_BYTES {
        return None;
    }
    buf.extend_from_slice(&chunk[..n]);
    Some(())
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

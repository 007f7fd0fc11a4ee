//! Package indexes on 127.0.0.1 for the dependency tests: `pypiserver` (from
//! `scripts/setup.sh`'s venv) serving wheels and sdists the tests write
//! (`tests/deps/dists.py`), and a static npm registry served by the test itself —
//! `npm ci` from a lock file only GETs the tarballs the lock names, so a file
//! server speaking the registry's JSON is all it needs.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const STATE: &str = "/var/lib/gitfaas";

/// `pypi-server run` on 127.0.0.1, serving a directory of its own.
pub struct PyPi {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl PyPi {
    pub fn start() -> Self {
        let server = Path::new(STATE).join("venv-pypiserver/bin/pypi-server");
        assert!(server.exists(), "{} missing: run scripts/setup.sh", server.display());
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let packages = dir.path().join("packages");
        std::fs::create_dir(&packages).unwrap();
        let port = free_port();
        // `auto` picks waitress, which setup.sh installs beside it (see there why)
        let mut child = Command::new(server)
            .args(["run", "-i", "127.0.0.1", "-p", &port.to_string(), "-a", ".", "-P", ".", "--disable-fallback", "-v"])
            .arg("--log-file")
            .arg(&log)
            .arg(&packages)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pypi-server starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "pypi-server did not listen");
            assert!(child.try_wait().unwrap().is_none(), "pypi-server exited");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port, dir, log }
    }

    pub fn index_url(&self) -> String {
        format!("http://127.0.0.1:{}/simple/", self.port)
    }

    pub fn packages(&self) -> PathBuf {
        self.dir.path().join("packages")
    }

    /// Writes a wheel of module `name` holding `source` into the index.
    pub fn add_wheel(&self, name: &str, source: &str) {
        dists(&["wheel", self.packages().to_str().unwrap(), name, "1.0", source]);
    }

    /// Writes a wheel of package `name` holding `mb` MiB of random bytes into the
    /// index; `name.size()` is their number.
    pub fn add_large_wheel(&self, name: &str, mb: u32) {
        dists(&["large", self.packages().to_str().unwrap(), name, &mb.to_string()]);
    }

    /// Requests the index logged (`<LocalRequest: GET http://…/path>`) for `path`.
    pub fn requests(&self, path: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter(|l| l.contains("LocalRequest: GET") && l.contains(&format!("{path}>"))).count()
    }
}

impl Drop for PyPi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn dists(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deps/dists.py");
    let python = Path::new(STATE).join("venv-pypiserver/bin/python");
    let out = Command::new(python).arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "dists.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A static npm registry on 127.0.0.1: `GET /NAME` answers the package document,
/// `GET /NAME/-/NAME-VERSION.tgz` the tarball.
pub struct Npm {
    pub port: u16,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl Npm {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let served = files.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let served = served.clone();
                std::thread::spawn(move || serve(stream, &served));
            }
        });
        Self { port, files }
    }

    /// Publishes `name@1.0.0` whose `index.js` is `source`; returns the lock
    /// file entry of it (resolved URL, integrity).
    pub fn publish(&self, name: &str, source: &str) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("package");
        std::fs::create_dir(&package).unwrap();
        std::fs::write(package.join("index.js"), source).unwrap();
        std::fs::write(
            package.join("package.json"),
            json!({"name": name, "version": "1.0.0", "main": "index.js"}).to_string(),
        )
        .unwrap();
        let out = Command::new("tar").args(["-czf", "p.tgz", "package"]).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success());
        let tarball = std::fs::read(dir.path().join("p.tgz")).unwrap();
        use base64::Engine;
        use sha2::Digest;
        let integrity =
            format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&tarball)));
        let resolved = format!("http://127.0.0.1:{}/{name}/-/{name}-1.0.0.tgz", self.port);
        let document = json!({
            "name": name,
            "dist-tags": {"latest": "1.0.0"},
            "versions": {"1.0.0": {"name": name, "version": "1.0.0", "dist": {"tarball": resolved, "integrity": integrity}}},
        });
        let mut files = self.files.lock().unwrap();
        files.insert(format!("/{name}"), document.to_string().into_bytes());
        files.insert(format!("/{name}/-/{name}-1.0.0.tgz"), tarball);
        json!({"version": "1.0.0", "resolved": resolved, "integrity": integrity})
    }
}

fn serve(mut stream: std::net::TcpStream, files: &Mutex<HashMap<String, Vec<u8>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
    // through a proxy the target is absolute: keep its path
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split_once("://").map_or(target, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let body = files.lock().unwrap().get(path).cloned();
    let (status, body) = match body {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", b"{}".to_vec()),
    };
    let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(&body);
}

/// A package or module name of its own for each test (an index's names are
/// shared by every test of its stack).
pub fn module_name(prefix: &str) -> String {
    crate::unique(prefix).replace('-', "_").to_lowercase()
}

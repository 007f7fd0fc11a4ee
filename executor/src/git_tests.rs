//! Tests of the git cache against repositories made with the git command line.

use super::*;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn source_repo() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join("a.txt"), "one").unwrap();
    git(p, &["add", "."]);
    git(p, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one"]);
    git(p, &["tag", "v1"]);
    std::fs::write(p.join("a.txt"), "two").unwrap();
    git(p, &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two"]);
    let url = format!("file://{}", p.display());
    (dir, url)
}

#[test]
fn checks_out_branch_tag_head_and_sha_from_one_mirror() {
    let (src, url) = source_repo();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path(), 10).unwrap();
    let head = git(src.path(), &["rev-parse", "HEAD"]);
    let v1 = git(src.path(), &["rev-parse", "v1^{commit}"]);

    for (git_ref, sha, content) in
        [("main", &head, "two"), ("HEAD", &head, "two"), ("v1", &v1, "one"), (v1.as_str(), &v1, "one")]
    {
        let dest = tempfile::tempdir().unwrap();
        let got = cache.checkout(&url, git_ref, dest.path(), None).unwrap();
        assert_eq!(&got, sha, "ref {git_ref}");
        assert_eq!(std::fs::read_to_string(dest.path().join("a.txt")).unwrap(), content);
    }
    assert_ne!(cache.mirror_path_of(&url, None), cache.mirror_path_of(&url, Some("t")));
    assert_eq!(
        std::fs::read_dir(cache_dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "git")
            .count(),
        1
    );
}

#[test]
fn missing_ref_and_missing_repository_are_distinct_errors() {
    let (_src, url) = source_repo();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path(), 10).unwrap();
    let dest = tempfile::tempdir().unwrap();
    assert!(matches!(cache.checkout(&url, "nope", dest.path(), None), Err(GitError::RefNotFound(_))));
    assert!(matches!(cache.checkout(&url, "--upload-pack=x", dest.path(), None), Err(GitError::RefNotFound(_))));
    let missing = format!("file://{}/does-not-exist", cache_dir.path().display());
    assert!(matches!(cache.checkout(&missing, "main", dest.path(), None), Err(GitError::Fetch(_))));
}

#[test]
fn an_unreachable_server_is_an_infrastructure_failure() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path(), 10).unwrap();
    let dest = tempfile::tempdir().unwrap();
    // nothing listens on loopback port 1
    let err = cache.checkout("git://127.0.0.1:1/nothing", "main", dest.path(), None).unwrap_err();
    assert!(matches!(err, GitError::Unreachable(_)), "{err}");
    assert!(err.is_infrastructure());
}

/// A server on loopback that answers every request with 401 and a basic-auth
/// challenge; returns its URL and the request heads it received.
fn server_demanding_basic_auth() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = String::new();
            let mut reader = BufReader::new(&stream);
            while reader.read_line(&mut head).is_ok_and(|n| n > 2) {}
            seen.lock().unwrap().push(head);
            let reply = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"t\"\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n";
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (format!("http://127.0.0.1:{port}/private"), heads)
}

#[test]
fn a_refused_or_missing_token_is_an_authentication_failure_of_the_job() {
    let (url, heads) = server_demanding_basic_auth();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path(), 10).unwrap();
    let dest = tempfile::tempdir().unwrap();
    for token in [None, Some("wrong")] {
        let err = cache.checkout(&url, "main", dest.path(), token).unwrap_err();
        assert!(matches!(err, GitError::Authentication(_)), "{err}");
        assert!(!err.is_infrastructure());
        assert!(!cache.mirror_path_of(&url, token).exists(), "no empty mirror is kept");
    }
    let missing = cache.checkout(&url, "main", dest.path(), None).unwrap_err().to_string();
    let refused = cache.checkout(&url, "main", dest.path(), Some("wrong")).unwrap_err().to_string();
    assert!(missing.contains("has no `git_token`"), "{missing}");
    assert!(refused.contains("refused the job's `git_token`"), "{refused}");
    // the token was presented once, as a basic-auth password, then not again
    let with_auth =
        heads.lock().unwrap().iter().filter(|h| h.to_ascii_lowercase().contains("authorization: basic ")).count();
    assert_eq!(with_auth, 2);
}

#[test]
fn repository_over_the_size_limit_is_refused() {
    let (src, url) = source_repo();
    // incompressible content well over 1 MB
    let mut noise = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(File::open("/dev/urandom").unwrap(), 3_000_000), &mut noise)
        .unwrap();
    std::fs::write(src.path().join("big.bin"), noise).unwrap();
    git(src.path(), &["add", "."]);
    git(src.path(), &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "big"]);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path(), 1).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = cache.checkout(&url, "main", dest.path(), None).unwrap_err();
    assert!(matches!(err, GitError::TooLarge { limit_mb: 1 }), "{err}");
}

#[test]
fn an_https_fetch_goes_through_the_checking_proxy() {
    use std::io::Read;
    // a plain TCP server: what arrives through the tunnel is the TLS client hello
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let first = std::thread::spawn(move || {
        let (mut stream, peer) = server.accept().unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        (byte[0], peer)
    });
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path(), 10).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let allowed = PolicySettings { allowed_ranges: vec!["127.0.0.0/8".parse().unwrap()], ..Default::default() };
    let url = RepoUrl::parse(&format!("https://127.0.0.1:{port}/r.git"), &allowed).unwrap();
    assert!(cache.checkout_checked(&url, &allowed, "main", dest.path(), None).is_err());
    let (byte, _peer) = first.join().unwrap();
    assert_eq!(byte, 0x16, "a TLS handshake record came through the tunnel");
    // nothing listens on port 1: still the infrastructure failure it was without the proxy
    let closed = RepoUrl::parse("https://127.0.0.1:1/r.git", &allowed).unwrap();
    let err = cache.checkout_checked(&closed, &allowed, "main", dest.path(), None).unwrap_err();
    assert!(matches!(err, GitError::Unreachable(_)) && err.is_infrastructure(), "{err}");

    // under the default policy a name that resolves to loopback is refused before any connection
    let blocking = PolicySettings::default();
    let name = std::fs::read_to_string("/etc/hostname").unwrap().trim().to_owned();
    let url = RepoUrl::parse(&format!("https://{name}:{port}/r.git"), &blocking).unwrap();
    let err = cache.checkout_checked(&url, &blocking, "main", dest.path(), None).unwrap_err();
    assert!(matches!(err, GitError::Refused(PolicyError::Internal { .. })), "{err}");
    assert!(err.is_policy());
}

#[test]
fn a_known_commit_is_checked_out_without_a_fetch_and_a_push_is_still_seen() {
    let (src, url) = source_repo();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path(), 10).unwrap();
    let first = cache.checkout(&url, "main", tempfile::tempdir().unwrap().path(), None).unwrap();
    // the mirror's own branch is left behind: only the advertisement can say where main is now
    let mirror = Repository::open_bare(cache.mirror_path_of(&url, None)).unwrap();
    let v1 = mirror.revparse_single("v1^{commit}").unwrap().id();
    mirror.reference("refs/heads/main", v1, true, "test").unwrap();
    let dest = tempfile::tempdir().unwrap();
    assert_eq!(cache.checkout(&url, "main", dest.path(), None).unwrap(), first, "the advertised commit, known");
    assert_eq!(std::fs::read_to_string(dest.path().join("a.txt")).unwrap(), "two");
    std::fs::write(src.path().join("a.txt"), "three").unwrap();
    git(src.path(), &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "three"]);
    let pushed = git(src.path(), &["rev-parse", "HEAD"]);
    let dest = tempfile::tempdir().unwrap();
    assert_eq!(cache.checkout(&url, "main", dest.path(), None).unwrap(), pushed, "a push is seen");
    assert_eq!(std::fs::read_to_string(dest.path().join("a.txt")).unwrap(), "three");
    assert_eq!(cache.checkout(&url, "v1", tempfile::tempdir().unwrap().path(), None).unwrap(), v1.to_string());
}

/// A `git daemon` serving `base` on a free loopback port, behind a forwarder
/// that counts the connections made to it; its port, the count, and the daemon.
fn counted_git_daemon(base: &Path) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>, std::process::Child) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port = free();
    // the daemon itself (`git daemon` would leave it behind as a child when killed), holding
    // none of the test's output
    let daemon = Command::new(Path::new(&git(base, &["--exec-path"])).join("git-daemon"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .spawn()
        .unwrap();
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "git daemon did not start");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let front = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            let server = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (front, count, daemon)
}

#[test]
fn a_commit_new_to_the_mirror_is_fetched_on_the_connection_that_advertised_it() {
    use std::sync::atomic::Ordering;
    let (src, _) = source_repo();
    let (port, connections, mut daemon) = counted_git_daemon(src.path().parent().unwrap());
    let name = src.path().file_name().unwrap().to_str().unwrap();
    let url = format!("git://127.0.0.1:{port}/{name}");
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path(), 10).unwrap();
    let checkout = |expected: &str| {
        let dest = tempfile::tempdir().unwrap();
        let got = cache.checkout(&url, "main", dest.path(), None);
        assert_eq!(std::fs::read_to_string(dest.path().join("a.txt")).unwrap(), expected);
        got.unwrap()
    };
    let first = checkout("two");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "a new mirror: advertisement and fetch on one connection");
    std::fs::write(src.path().join("a.txt"), "three").unwrap();
    git(src.path(), &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "three"]);
    let pushed = checkout("three");
    assert_ne!(pushed, first);
    assert_eq!(connections.load(Ordering::SeqCst), 2, "a pushed commit: one more connection");
    assert_eq!(checkout("three"), pushed);
    assert_eq!(connections.load(Ordering::SeqCst), 3, "a known commit: the advertisement alone");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

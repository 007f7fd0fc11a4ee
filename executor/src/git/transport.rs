//! The `git://` transport, ours rather than libgit2's: the same protocol on a
//! socket that never waits on a delayed acknowledgement. A fetch's negotiation
//! is small writes both ways (libgit2's wants and haves in rounds of 20, then
//! `done`; the server's `ACK … common` and `NAK` lines one by one), and with
//! Nagle's algorithm one side's second small write waits for the other's
//! acknowledgement of its first, which Linux delays by 40 ms. With libgit2's own
//! transport every fetch of a new commit from a repository with 20 commits or
//! more paid that (a checkout of a new commit from a local `git daemon`, a
//! repository of 100 commits: ≈ 60 ms; on this socket ≈ 11 ms). So this socket
//! acknowledges what the server sends at once (`TCP_QUICKACK`, around every
//! read — the kernel resets it; this is what removes the wait) and sends at once
//! (`TCP_NODELAY`). One connection serves the advertisement and the fetch, as in
//! libgit2's own transport; only `upload-pack` is offered (an executor never
//! pushes).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Mutex, Once};
use std::time::Duration;

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use gitfaas_sandbox::quickack;

/// How long a connection may take, and a read or write wait, before the fetch fails.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
const IO_LIMIT: Duration = Duration::from_secs(120);
const DEFAULT_PORT: u16 = 9418;

/// Registers the transport for `git://` URLs, once per process, before any fetch.
/// The crate's one `unsafe`: libgit2's list of transports is not locked, so it
/// must not change while another thread looks a transport up.
#[allow(unsafe_code)]
pub(crate) fn register() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: runs once, before any fetch of this process (every fetch goes
        // through a `GitCache`, whose constructor calls this first)
        let registered = unsafe {
            git2::transport::register("git", |remote| Transport::smart(remote, false, GitProtocol::default()))
        };
        if let Err(error) = registered {
            tracing::warn!(%error, "the git:// transport was not registered; libgit2's own serves");
        }
    });
}

/// One remote's connection: opened by the advertisement, reused by the fetch.
#[derive(Default)]
struct GitProtocol {
    connection: Mutex<Option<TcpStream>>,
}

/// The host (for `host=`), the address to connect to and the path of `url`.
fn parts(url: &str) -> Result<(String, String, String), git2::Error> {
    let malformed = || git2::Error::from_str(&format!("malformed git URL: {url}"));
    let rest = url.strip_prefix("git://").ok_or_else(malformed)?;
    let slash = rest.find('/').ok_or_else(malformed)?;
    let (authority, path) = rest.split_at(slash);
    let (host, port) = match authority.strip_prefix('[') {
        // [v6]:port
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(malformed)?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| malformed())?,
        None => DEFAULT_PORT,
    };
    if host.is_empty() || path.contains('\0') || host.contains('\0') {
        return Err(malformed());
    }
    let address = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    // `~user` paths as libgit2 sends them
    let path = path.strip_prefix("/~").map_or(path.to_owned(), |user| format!("~{user}"));
    Ok((host.to_owned(), address, path))
}

/// The URLs this transport connected to (tests: that it, not libgit2's, served).
#[cfg(test)]
static CONNECTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn connect(url: &str) -> Result<TcpStream, git2::Error> {
    #[cfg(test)]
    CONNECTED.lock().unwrap().push(url.to_owned());
    let (host, address, path) = parts(url)?;
    let failed = |e: std::io::Error| git2::Error::from_str(&format!("failed to connect to {address}: {e}"));
    let mut last = None;
    for candidate in address.to_socket_addrs().map_err(failed)? {
        match TcpStream::connect_timeout(&candidate, CONNECT_LIMIT) {
            Ok(stream) => {
                let setup = |stream: &TcpStream| {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(IO_LIMIT))?;
                    stream.set_write_timeout(Some(IO_LIMIT))
                };
                setup(&stream).map_err(failed)?;
                let mut stream = stream;
                let request = format!("git-upload-pack {path}\0host={host}\0");
                let line = format!("{:04x}{request}", request.len() + 4);
                stream.write_all(line.as_bytes()).map_err(failed)?;
                return Ok(stream);
            }
            Err(error) => last = Some(error),
        }
    }
    Err(failed(last.unwrap_or_else(|| std::io::Error::other("no address"))))
}

impl SmartSubtransport for GitProtocol {
    fn action(&self, url: &str, action: Service) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let mut connection = self.connection.lock().map_err(|_| git2::Error::from_str("git transport lock"))?;
        let stream = match action {
            Service::UploadPackLs => {
                let stream = connect(url)?;
                *connection = Some(stream.try_clone().map_err(|e| git2::Error::from_str(&e.to_string()))?);
                stream
            }
            Service::UploadPack => match connection.as_ref() {
                Some(stream) => stream.try_clone().map_err(|e| git2::Error::from_str(&e.to_string()))?,
                None => return Err(git2::Error::from_str("must call UPLOADPACK_LS before UPLOADPACK")),
            },
            Service::ReceivePackLs | Service::ReceivePack => {
                return Err(git2::Error::from_str("the executor's git transport does not push"))
            }
        };
        Ok(Box::new(Connection(stream)))
    }

    fn close(&self) -> Result<(), git2::Error> {
        if let Ok(mut connection) = self.connection.lock() {
            if let Some(stream) = connection.take() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
        Ok(())
    }
}

/// A handle on the connection, as libgit2 reads and writes it.
struct Connection(TcpStream);

impl Read for Connection {
    /// Reads, acknowledging at once what the server sends (`TCP_QUICKACK`, which
    /// the kernel resets, so set around every read): `upload-pack` writes its
    /// acknowledgements of a negotiation (`ACK … common`, `NAK`) one by one, and
    /// with Nagle's algorithm on its side each waits for ours of the one before.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        quickack(&self.0);
        let read = self.0.read(buf);
        quickack(&self.0);
        read
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::parts;
    use std::io::Read;

    #[test]
    fn a_git_fetch_goes_through_this_transport_and_asks_for_upload_pack_as_libgit2_does() {
        super::register();
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let seen = std::thread::spawn(move || {
            let (mut socket, _) = server.accept().unwrap();
            let mut head = [0u8; 4];
            socket.read_exact(&mut head).unwrap();
            let len = usize::from_str_radix(std::str::from_utf8(&head).unwrap(), 16).unwrap();
            let mut request = vec![0u8; len - 4];
            socket.read_exact(&mut request).unwrap();
            String::from_utf8(request).unwrap() // then closes: no advertisement
        });
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let url = format!("git://127.0.0.1:{port}/some/repo");
        let mut remote = repo.remote_anonymous(&url).unwrap();
        assert!(remote.fetch(&["+refs/heads/*:refs/heads/*"], None, None).is_err(), "the server said nothing");
        assert_eq!(seen.join().unwrap(), "git-upload-pack /some/repo\0host=127.0.0.1\0");
        assert!(super::CONNECTED.lock().unwrap().contains(&url), "served by this transport");
        let connection = super::connect(&format!("git://127.0.0.1:{port}/r"));
        assert!(connection.is_err_and(|e| e.message().contains("failed to connect")), "nothing listens now");
    }

    #[test]
    fn a_git_url_gives_its_host_address_and_path_as_libgit2_sends_them() {
        let split = |url: &str| parts(url).map_err(|e| e.message().to_owned());
        let owned = |h: &str, a: &str, p: &str| Ok((h.to_owned(), a.to_owned(), p.to_owned()));
        assert_eq!(split("git://127.0.0.1:9419/repo-1"), owned("127.0.0.1", "127.0.0.1:9419", "/repo-1"));
        assert_eq!(split("git://example.org/a/b.git"), owned("example.org", "example.org:9418", "/a/b.git"));
        assert_eq!(split("git://[::1]:9000/r"), owned("::1", "[::1]:9000", "/r"));
        assert_eq!(split("git://[::1]/r"), owned("::1", "[::1]:9418", "/r"));
        assert_eq!(split("git://h/~alice/r"), owned("h", "h:9418", "~alice/r"));
        for bad in ["http://h/r", "git://h", "git://:1/r", "git://h:x/r", "git://h:70000/r", "git://[::1/r"] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }
}

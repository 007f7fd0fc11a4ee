//! A proxy on loopback that an `http(s)://` git fetch goes through, so the address
//! libgit2 reaches is the one the policy checked: the proxy resolves the name
//! itself, refuses it if any address is internal, and only then connects. For
//! `https` libgit2 asks for a `CONNECT` tunnel and TLS stays end to end (libgit2
//! verifies the server's certificate for the name in the URL); for plain `http`
//! it sends absolute-form requests, which are passed on unchanged to the host
//! the first one names (git follows no redirect, so every request on a
//! connection is for that host). The proxy only moves bytes.
//!
//! The same proxy guards a dependency build ([`Gate::Only`]): bound on the build
//! network's gateway address, it forwards to the configured package index's
//! `host:port` and refuses every other target. A plain-http request to the index
//! goes on as a proxy forwards one to an origin server (RFC 9112 §3.2.1): in
//! origin-form (`GET /path`), since some servers refuse absolute-form targets
//! (verdaccio: "must be relative"; wsgiref), with `Connection: close`, so that every
//! request on the connection is one this proxy has rewritten.
//!
//! One proxy per fetch or build, on a thread of its own, gone when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gitfaas_common::policy::{self, PolicyError, PolicySettings};

const MAX_HEAD_BYTES: usize = 8 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a proxy lets through.
pub enum Gate {
    /// Any host the policy allows, after resolving it.
    Policy(PolicySettings),
    /// Only these `host:port` targets, as written (the package index).
    Only(Vec<(String, u16)>),
}

pub struct ConnectProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    refused: Arc<Mutex<Option<PolicyError>>>,
    refused_targets: Arc<Mutex<Vec<String>>>,
    unreachable: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectProxy {
    /// A proxy on loopback for a git fetch, checking targets against `policy`.
    pub fn start(policy: PolicySettings) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), Gate::Policy(policy))
    }

    /// A proxy listening on `bind` (port 0: any) that lets through what `gate` allows.
    pub fn start_on(bind: SocketAddr, gate: Gate) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (refused, unreachable) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)));
        let refused_targets = Arc::new(Mutex::new(Vec::new()));
        let seen = Seen { refusals: refused.clone(), targets: refused_targets.clone(), failures: unreachable.clone() };
        let stopping = stop.clone();
        let (gate, seen) = (Arc::new(gate), Arc::new(seen));
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (gate, seen) = (gate.clone(), seen.clone());
                std::thread::spawn(move || tunnel(client, &gate, &seen));
            }
        });
        Ok(Self { addr, stop, refused, refused_targets, unreachable, thread: Some(thread) })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `host:port` targets a [`Gate::Only`] proxy refused, in order.
    pub fn refused_targets(&self) -> Vec<String> {
        self.refused_targets.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The proxy URL to hand libgit2.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The policy's refusal of a tunnel asked for, if there was one.
    pub fn refusal(&self) -> Option<PolicyError> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `host:port` a tunnel could not connect to, if one could not.
    pub fn unreachable(&self) -> Option<String> {
        self.unreachable.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)); // wakes the accept
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a proxy's connections saw: refusals and targets that did not answer.
struct Seen {
    refusals: Arc<Mutex<Option<PolicyError>>>,
    targets: Arc<Mutex<Vec<String>>>,
    failures: Arc<Mutex<Option<String>>>,
}

/// The addresses `host:port` may be reached at through `gate`, or `None` (refused;
/// the refusal is kept in `seen`).
fn admit(host: &str, port: u16, gate: &Gate, seen: &Seen) -> Option<Vec<SocketAddr>> {
    match gate {
        Gate::Policy(policy) => match policy::resolve_checked(host, port, policy) {
            Ok(addrs) => Some(addrs),
            Err(refusal) => {
                *seen.refusals.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
                None
            }
        },
        Gate::Only(targets) if targets.iter().any(|(h, p)| h.eq_ignore_ascii_case(host) && *p == port) => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            std::net::ToSocketAddrs::to_socket_addrs(&(bare, port)).ok().map(Iterator::collect)
        }
        Gate::Only(_) => {
            seen.targets.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{host}:{port}"));
            None
        }
    }
}

/// Serves one `CONNECT host:port`; a refusal of the gate (or a target that does
/// not answer) is kept before the client hears of it.
fn tunnel(mut client: TcpStream, gate: &Gate, seen: &Seen) {
    let _ = client.set_read_timeout(Some(CONNECT_TIMEOUT));
    let Some((head, target)) = read_head(&mut client) else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let Target { host, port, forward_head } = target;
    let Some(addrs) = admit(&host, port, gate, seen) else {
        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let Some(server) = addrs.iter().find_map(|a| TcpStream::connect_timeout(a, CONNECT_TIMEOUT).ok()) else {
        *seen.failures.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("failed to connect to {host}:{port}"));
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let _ = client.set_read_timeout(None);
    let mut server = server;
    let started = match forward_head {
        true if matches!(gate, Gate::Only(_)) => server.write_all(&origin_form(&head).unwrap_or(head)),
        true => server.write_all(&head),
        false => client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n"),
    };
    if started.is_ok() {
        splice(client, server);
    }
}

/// Where a proxied connection goes, and whether the request head read is the
/// first request to pass on (plain http) rather than a tunnel request.
struct Target {
    host: String,
    port: u16,
    forward_head: bool,
}

/// The request head and where it goes: `CONNECT host:port`, or an absolute-form
/// `http://host[:port]/…` request. Read byte by byte so nothing after the head
/// (the TLS hello, a request body) is consumed here.
fn read_head(client: &mut TcpStream) -> Option<(Vec<u8>, Target)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD_BYTES || client.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head).lines().next()?.to_owned();
    let mut words = line.split_whitespace();
    let (method, target) = (words.next()?, words.next()?);
    let target = if method == "CONNECT" {
        let (host, port) = target.rsplit_once(':')?;
        Target { host: host.to_owned(), port: port.parse().ok()?, forward_head: false }
    } else {
        let url = url::Url::parse(target).ok().filter(|u| u.scheme() == "http")?;
        let host = match url.host()? {
            url::Host::Ipv6(v6) => v6.to_string(),
            other => other.to_string(),
        };
        Target { host, port: url.port_or_known_default()?, forward_head: true }
    };
    (!target.host.is_empty()).then_some((head, target))
}

/// An absolute-form request head as an origin server should get it: the target's
/// path and query only, hop-by-hop connection headers dropped, and `Connection:
/// close`. `None`: not a head this can rewrite (it then goes on unchanged).
fn origin_form(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut words = lines.next()?.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    let authority_and_path = target.strip_prefix("http://").or_else(|| target.strip_prefix("HTTP://"))?;
    let path = authority_and_path.find('/').map_or("/", |i| &authority_and_path[i..]);
    let mut out = format!("{method} {path} {version}\r\n");
    let hop_by_hop = ["connection", "proxy-connection", "keep-alive", "proxy-authorization"];
    for line in lines.filter(|line| !line.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if !hop_by_hop.contains(&name.as_str()) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    Some(out.into_bytes())
}

/// Copies both ways until either side closes. Nothing waits on Nagle's
/// algorithm: libgit2 writes a request's head and body apart (and TLS records
/// one by one), and each would wait for the acknowledgement of the one before,
/// which the other end delays by 40 ms (Linux) while it has nothing to answer.
/// So both sockets send at once (`TCP_NODELAY`), and what arrives is
/// acknowledged at once (`TCP_QUICKACK`, which the kernel resets: set again
/// after every read).
fn splice(client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else { return };
    let upstream = std::thread::spawn(move || {
        relay(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    relay(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

/// Copies `from` into `to` until `from` ends or either fails, acknowledging
/// what `from` sends at once.
fn relay(from: &mut TcpStream, to: &mut TcpStream) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        quickack(from);
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        quickack(from);
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Acknowledges what `socket` receives at once rather than after the kernel's
/// delay (`TCP_QUICKACK`, Linux; nothing elsewhere). The kernel leaves that mode
/// by itself, so a reader sets it around every read. Shared with the executor's
/// `git://` transport, whose reads need the same.
#[cfg(target_os = "linux")]
pub fn quickack(socket: &TcpStream) {
    let _ = socket2::SockRef::from(socket).set_tcp_quickack(true);
}

/// Acknowledges what `socket` receives at once: a no-op off Linux.
#[cfg(not(target_os = "linux"))]
pub fn quickack(_: &TcpStream) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_allowed() -> PolicySettings {
        PolicySettings { allowed_ranges: vec!["127.0.0.0/8".parse().unwrap()], ..Default::default() }
    }

    fn connect(proxy: &ConnectProxy, target: &str) -> (TcpStream, String) {
        let mut stream = TcpStream::connect(proxy.addr).unwrap();
        write!(stream, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").unwrap();
        let mut reply = [0u8; 64];
        let n = stream.read(&mut reply).unwrap();
        (stream, String::from_utf8_lossy(&reply[..n]).into_owned())
    }

    #[test]
    fn a_tunnel_to_an_allowed_address_carries_bytes_both_ways() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let proxy = ConnectProxy::start(loopback_allowed()).unwrap();
        let (mut stream, reply) = connect(&proxy, &format!("127.0.0.1:{port}"));
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        stream.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        assert_eq!(proxy.refusal(), None);
    }

    #[test]
    fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
        let listening = TcpListener::bind("127.0.0.1:0").unwrap(); // would answer: only the policy refuses
        let port = listening.local_addr().unwrap().port();
        let proxy = ConnectProxy::start(PolicySettings::default()).unwrap();
        let (_stream, reply) = connect(&proxy, &format!("localhost:{port}"));
        assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
        assert!(matches!(proxy.refusal(), Some(PolicyError::Internal { kind: "loopback", .. })));
    }

    #[test]
    fn plain_http_requests_pass_unchanged_to_a_checked_host_only() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let seen = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut head = vec![0u8; 256];
            let n = s.read(&mut head).unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            String::from_utf8_lossy(&head[..n]).into_owned()
        });
        let proxy = ConnectProxy::start(loopback_allowed()).unwrap();
        let mut stream = TcpStream::connect(proxy.addr).unwrap();
        let request = format!("GET http://127.0.0.1:{port}/r/info/refs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = [0u8; 64];
        let n = stream.read(&mut reply).unwrap();
        assert!(reply[..n].starts_with(b"HTTP/1.1 204"));
        assert_eq!(seen.join().unwrap(), request);

        let blocking = ConnectProxy::start(PolicySettings::default()).unwrap();
        let mut stream = TcpStream::connect(blocking.addr).unwrap();
        write!(stream, "GET http://localhost:{port}/r HTTP/1.1\r\n\r\n").unwrap();
        let n = stream.read(&mut reply).unwrap();
        assert!(reply[..n].starts_with(b"HTTP/1.1 403"));
        assert!(matches!(blocking.refusal(), Some(PolicyError::Internal { kind: "loopback", .. })));
    }

    #[test]
    fn an_only_gate_forwards_to_its_targets_and_refuses_every_other() {
        let index = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = index.local_addr().unwrap().port();
        let other = TcpListener::bind("127.0.0.1:0").unwrap(); // would answer: only the gate refuses
        let other_port = other.local_addr().unwrap().port();
        let gate = Gate::Only(vec![("127.0.0.1".into(), port)]);
        let proxy = ConnectProxy::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), gate).unwrap();
        let (_stream, reply) = connect(&proxy, &format!("127.0.0.1:{port}"));
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        for target in [format!("127.0.0.1:{other_port}"), format!("localhost:{port}")] {
            let (_stream, reply) = connect(&proxy, &target);
            assert!(reply.starts_with("HTTP/1.1 403"), "{target}: {reply}");
        }
        let refused = proxy.refused_targets();
        assert_eq!(refused, [format!("127.0.0.1:{other_port}"), format!("localhost:{port}")]);
    }

    #[test]
    fn a_plain_http_request_to_the_index_goes_on_in_origin_form_one_per_connection() {
        let index = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = index.local_addr().unwrap().port();
        let seen = std::thread::spawn(move || {
            let (mut s, _) = index.accept().unwrap();
            let mut head = vec![0u8; 512];
            let n = s.read(&mut head).unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            String::from_utf8_lossy(&head[..n]).into_owned()
        });
        let gate = Gate::Only(vec![("127.0.0.1".into(), port)]);
        let proxy = ConnectProxy::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), gate).unwrap();
        let mut stream = TcpStream::connect(proxy.addr).unwrap();
        write!(
            stream,
            "GET http://127.0.0.1:{port}/root/%2Bf/a.whl?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Proxy-Connection: keep-alive\r\nconnection: keep-alive\r\nAccept: */*\r\n\r\n"
        )
        .unwrap();
        let mut reply = [0u8; 64];
        let n = stream.read(&mut reply).unwrap();
        assert!(reply[..n].starts_with(b"HTTP/1.1 204"));
        let expected = format!(
            "GET /root/%2Bf/a.whl?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(seen.join().unwrap(), expected);
        assert_eq!(
            origin_form(b"GET http://h HTTP/1.1\r\n\r\n").unwrap(),
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
        );
    }
}

//! The git server's own share of a first job: one connection to a `git://`
//! server that reads the ref advertisement and fetches a new commit (wanting it,
//! having its parent), with nothing on the client side but the socket. It is
//! the floor of what any executor pays to learn and fetch a commit it has not
//! seen: the server starts its processes (`git daemon` starts `upload-pack`,
//! which starts `pack-objects`) on every connection.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One pkt-line of `text`.
fn pkt(text: &str) -> Vec<u8> {
    let mut line = format!("{:04x}", text.len() + 4).into_bytes();
    line.extend_from_slice(text.as_bytes());
    line
}

/// Milliseconds to read the advertisement of `url` (`git://host:port/path`) and
/// fetch `want` (a commit) having `have` (its parent), with the pack's size.
pub async fn fetch_ms(url: &str, want: &str, have: &str) -> anyhow::Result<(f64, usize)> {
    let rest = url.strip_prefix("git://").context("the git floor needs a git:// URL")?;
    let (address, path) = rest.split_once('/').context("a git URL with a path")?;
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.context("connecting to the git server")?;
    stream.set_nodelay(true)?;
    let host = address.split(':').next().unwrap_or(address);
    stream.write_all(&pkt(&format!("git-upload-pack /{path}\0host={host}\0"))).await?;
    // the advertisement: pkt-lines up to a flush packet
    let mut advert = Vec::new();
    let mut buf = [0u8; 16 << 10];
    while !advert.ends_with(b"0000") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await??;
        if n == 0 {
            bail!("the git server closed the connection during the advertisement");
        }
        advert.extend_from_slice(&buf[..n]);
    }
    if !advert.windows(want.len()).any(|w| w == want.as_bytes()) {
        bail!("the git server does not advertise {want}");
    }
    let mut request = pkt(&format!("want {want} no-progress ofs-delta\n"));
    request.extend_from_slice(b"0000");
    request.extend(pkt(&format!("have {have}\n")));
    request.extend(pkt("done\n"));
    stream.write_all(&request).await?;
    let mut pack = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut pack)).await??;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if !pack.windows(4).any(|w| w == b"PACK") {
        bail!("the git server sent no pack: {}", String::from_utf8_lossy(&pack));
    }
    Ok((ms, pack.len()))
}

//! Which network addresses a job may make the executor connect to. Loopback,
//! link-local (cloud metadata), private, shared (CGNAT), unique-local, unspecified
//! and multicast addresses are blocked unless a range the operator allows holds
//! them. IPv4 addresses embedded in IPv6 (`::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`)
//! are judged as the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self { network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix }
    }

    const fn v6(first: u16, prefix: u8) -> Self {
        Self { network: IpAddr::V6(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, 0)), prefix }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => (u128::from(v4.to_bits()) << 96, 32),
            IpAddr::V6(v6) => (v6.to_bits(), 128),
        };
        let ((net, net_len), (addr, addr_len)) = (bits(self.network), bits(ip));
        if net_len != addr_len {
            return false;
        }
        let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
        net & mask == addr & mask
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{text}` is not an address range (CIDR, e.g. 127.0.0.0/8)");
        let (addr, prefix) = text.split_once('/').map_or((text, None), |(a, p)| (a, Some(p)));
        let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Blocked unless allowed: (range, what it is).
const BLOCKED: &[(IpRange, &str)] = &[
    (IpRange::v4(0, 0, 0, 0, 8), "unspecified"),
    (IpRange::v4(10, 0, 0, 0, 8), "private"),
    (IpRange::v4(100, 64, 0, 0, 10), "shared (carrier-grade NAT)"),
    (IpRange::v4(127, 0, 0, 0, 8), "loopback"),
    (IpRange::v4(169, 254, 0, 0, 16), "link-local (cloud metadata)"),
    (IpRange::v4(172, 16, 0, 0, 12), "private"),
    (IpRange::v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (IpRange::v4(192, 168, 0, 0, 16), "private"),
    (IpRange::v4(198, 18, 0, 0, 15), "benchmarking"),
    (IpRange::v4(224, 0, 0, 0, 4), "multicast"),
    (IpRange::v4(240, 0, 0, 0, 4), "reserved"),
    (IpRange { network: IpAddr::V6(Ipv6Addr::UNSPECIFIED), prefix: 128 }, "unspecified"),
    (IpRange { network: IpAddr::V6(Ipv6Addr::LOCALHOST), prefix: 128 }, "loopback"),
    (IpRange::v6(0xfc00, 7), "unique-local"),
    (IpRange::v6(0xfe80, 10), "link-local"),
    (IpRange::v6(0xfec0, 10), "site-local"),
    (IpRange::v6(0xff00, 8), "multicast"),
];

/// The IPv4 address an IPv6 address stands for, if it embeds one.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (nat64 || v6.to_ipv4_mapped().is_some()).then(|| Ipv4Addr::from_bits(v6.to_bits() as u32))
}

/// Why `ip` is blocked (e.g. `loopback`), or `None` when it may be connected to.
/// A range in `allowed` lifts the block for the addresses it holds.
pub(super) fn blocked_kind(ip: IpAddr, allowed: &[IpRange]) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if allowed.iter().any(|range| range.contains(ip)) {
        return None;
    }
    BLOCKED.iter().find(|(range, _)| range.contains(ip)).map(|(_, kind)| *kind)
}

/// Names that mean an internal address without asking DNS: `localhost` (and its
/// subdomains) and the cloud metadata names. Compared without a trailing dot.
pub(super) fn well_known_address(host: &str) -> Option<IpAddr> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let metadata = ["metadata.google.internal", "metadata.goog", "metadata", "instance-data"];
    metadata.contains(&host.as_str()).then_some(IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)))
}

/// An IP literal in any spelling WHATWG URL parsing accepts for IPv4 (decimal
/// `2130706433`, hex `0x7f000001`, octal, short forms) or a bracketed IPv6.
pub(super) fn literal_address(host: &str) -> Option<IpAddr> {
    let host = host.trim_end_matches('.');
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse().ok();
    }
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    // parsed as an http host, where the URL standard normalises numeric IPv4 forms
    match url::Url::parse(&format!("http://{host}/")).ok()?.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> Option<&'static str> {
        blocked_kind(literal_address(text).unwrap(), &[])
    }

    #[test]
    fn every_spelling_of_an_internal_address_is_blocked() {
        for (host, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.0.0.2", "loopback"),
            ("2130706433", "loopback"),
            ("0x7f000001", "loopback"),
            ("0177.0.0.1", "loopback"),
            ("127.1", "loopback"),
            ("[::1]", "loopback"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("[::ffff:7f00:1]", "loopback"),
            ("[64:ff9b::a9fe:a9fe]", "link-local (cloud metadata)"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("[fc00::1]", "unique-local"),
            ("[fd12:3456::1]", "unique-local"),
            ("[fe80::1]", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("[::]", "unspecified"),
        ] {
            assert_eq!(blocked(host), Some(kind), "{host}");
        }
        for public in ["93.184.215.14", "172.32.0.1", "[2606:4700::1]", "1.1.1.1"] {
            assert_eq!(blocked(public), None, "{public}");
        }
        assert_eq!(literal_address("example.org"), None);
    }

    #[test]
    fn allowed_ranges_lift_the_block_for_their_addresses_only() {
        let allowed: Vec<IpRange> = ["127.0.0.0/8", "::1", "10.5.0.0/16"].iter().map(|r| r.parse().unwrap()).collect();
        assert_eq!(blocked_kind("127.0.0.2".parse().unwrap(), &allowed), None);
        assert_eq!(blocked_kind("::ffff:127.0.0.1".parse().unwrap(), &allowed), None);
        assert_eq!(blocked_kind("::1".parse().unwrap(), &allowed), None);
        assert_eq!(blocked_kind("10.5.9.9".parse().unwrap(), &allowed), None);
        assert_eq!(blocked_kind("10.6.0.1".parse().unwrap(), &allowed), Some("private"));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("nonsense".parse::<IpRange>().is_err());
        assert_eq!(well_known_address("Metadata.Google.Internal."), "169.254.169.254".parse().ok());
        assert_eq!(well_known_address("app.localhost"), "127.0.0.1".parse().ok());
    }
}

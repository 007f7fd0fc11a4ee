//! Which repository URLs, data links and link names a job may use: one policy,
//! one configuration shape (`frontend.policy`, `executor.policy`), applied by the
//! frontend for early errors and by the executor as the authority.
//!
//! URLs are parsed once into checked types ([`RepoUrl`], [`DataUrl`]) whose
//! normalised text is what git and the HTTP client receive. A host that is an
//! internal address (see [`net`]) is refused here when it is a literal or a
//! well-known name; names are checked again after DNS resolution, and the
//! executor connects only to addresses that passed ([`check_resolved`]).

mod net;

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

pub use net::IpRange;

/// The operator's policy, as configured.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Schemes of repository URLs: `https`, `http`, `git` at most.
    #[serde(default = "default_schemes")]
    pub repo_schemes: Vec<String>,
    /// Hosts repositories may be on; empty allows any host.
    #[serde(default)]
    pub repo_hosts: Vec<String>,
    /// Hosts data links (sources, sinks) may name; empty allows any host.
    #[serde(default)]
    pub data_hosts: Vec<String>,
    /// Internal ranges connections may go to after all (CIDR list, or one
    /// comma-separated string for an environment variable), e.g. `127.0.0.0/8`.
    #[serde(default, deserialize_with = "ranges")]
    pub allowed_ranges: Vec<IpRange>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            repo_schemes: default_schemes(),
            repo_hosts: Vec::new(),
            data_hosts: Vec::new(),
            allowed_ranges: Vec::new(),
        }
    }
}

fn default_schemes() -> Vec<String> {
    ["https", "http", "git"].map(String::from).to_vec()
}

fn ranges<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<IpRange>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ranges {
        List(Vec<String>),
        Text(String),
    }
    let texts = match Ranges::deserialize(deserializer)? {
        Ranges::List(list) => list,
        Ranges::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    texts
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().map_err(serde::de::Error::custom))
        .collect()
}

impl PolicySettings {
    /// Refuses schemes git must never be handed.
    pub fn validate(&self) -> Result<(), String> {
        match self.repo_schemes.iter().find(|s| !["https", "http", "git"].contains(&s.as_str())) {
            Some(s) => Err(format!("policy.repo_schemes may only name https, http and git, not `{s}`")),
            None => Ok(()),
        }
    }
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("repository URL is refused: {0}")]
    Repo(String),
    #[error("ref `{0}` is refused: not a branch, tag or commit name")]
    Ref(String),
    #[error("data link `{name}` is refused: {why}")]
    Link { name: String, why: String },
    /// The address (literal, well known, or resolved) is internal.
    #[error("host `{host}` is refused: {kind} address {ip} (an operator may allow it in policy.allowed_ranges)")]
    Internal { host: String, kind: &'static str, ip: IpAddr },
    #[error("host `{0}` could not be resolved")]
    Unresolved(String),
}

/// The longest repository or data-link URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;

/// A repository URL: a URL of a scheme git may be handed (https, http, git) with a
/// host and no embedded credentials, at most [`MAX_URL_CHARS`] — what it is
/// whatever the deployment's policy, checked wherever one is read (a request, a
/// job message: `serde(try_from)`). [`RepoUrl::parse`] (or [`RepoUrl::permitted`])
/// also applies a deployment's [`PolicySettings`], and spells a literal host the
/// one canonical way; [`RepoUrl::as_str`] is the URL as it then stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoUrl(url::Url);

impl TryFrom<String> for RepoUrl {
    type Error = PolicyError;

    fn try_from(raw: String) -> Result<Self, PolicyError> {
        raw.parse()
    }
}

impl std::str::FromStr for RepoUrl {
    type Err = PolicyError;

    /// The checks no policy relaxes.
    fn from_str(raw: &str) -> Result<Self, PolicyError> {
        let refuse = |why: String| PolicyError::Repo(why);
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(refuse(format!("longer than {MAX_URL_CHARS} characters")));
        }
        let url = parse_url(raw).ok_or_else(|| refuse("not a URL".into()))?;
        if !GIT_SCHEMES.contains(&url.scheme()) {
            return Err(refuse(format!("scheme `{}` is not a git transport (https, http, git)", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("credentials must not be embedded in the URL".into()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("no host".into()));
        }
        if url.port() == Some(0) {
            return Err(refuse("port 0".into()));
        }
        Ok(Self(url))
    }
}

impl From<RepoUrl> for String {
    fn from(url: RepoUrl) -> String {
        url.0.into()
    }
}

/// The schemes a repository URL may have at all ([`PolicySettings::repo_schemes`]
/// narrows them).
const GIT_SCHEMES: [&str; 3] = ["https", "http", "git"];

impl RepoUrl {
    /// `raw` as a repository URL that `policy` allows.
    pub fn parse(raw: &str, policy: &PolicySettings) -> Result<Self, PolicyError> {
        raw.parse::<Self>()?.permitted(policy)
    }

    /// This URL if `policy` allows it (its scheme and host, and no internal
    /// address), with a literal host spelt the canonical way.
    pub fn permitted(&self, policy: &PolicySettings) -> Result<Self, PolicyError> {
        let refuse = |why: String| PolicyError::Repo(why);
        let url = self.0.clone();
        if !policy.repo_schemes.iter().any(|s| s == url.scheme()) {
            let allowed = policy.repo_schemes.join(", ");
            return Err(refuse(format!("scheme `{}` is not allowed (allowed: {allowed})", url.scheme())));
        }
        let host = self.host().to_owned();
        if !host_listed(&host, &policy.repo_hosts) {
            return Err(refuse(format!("host `{host}` is not in the allowlist")));
        }
        Ok(Self(normalise_host(url, &host, policy)?))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The port connected to: the URL's, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(9418)
    }

    /// The same URL with its host replaced by `ip` (for `git://`, whose daemon
    /// protocol carries no certificate to verify a name against).
    pub fn pinned_to(&self, ip: IpAddr) -> String {
        let mut url = self.0.clone();
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        url.set_host(Some(&host)).expect("an address is a host");
        url.to_string()
    }
}

impl std::fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data link's URL that passed the policy (http or https).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataUrl(url::Url);

impl DataUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Most sources or sinks is the operator's limit; this is the policy on one link.
pub fn check_link(
    name: &str,
    raw: &str,
    method: Option<&str>,
    sink: bool,
    policy: &PolicySettings,
) -> Result<DataUrl, PolicyError> {
    let refuse = |why: &str| PolicyError::Link { name: name.to_owned(), why: why.to_owned() };
    if !is_plain_name(name) {
        return Err(refuse("name must be a plain file name"));
    }
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(refuse("URL is longer than 2048 characters"));
    }
    let url = parse_url(raw).ok_or_else(|| refuse("not a URL"))?;
    if !["http", "https"].contains(&url.scheme()) || !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("only http(s) URLs without embedded credentials"));
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    if url.port() == Some(0) {
        return Err(refuse("port 0"));
    }
    if host.is_empty() || !host_listed(&host, &policy.data_hosts) {
        return Err(refuse("host is not in the allowlist"));
    }
    match (sink, method) {
        (false, None) | (true, None | Some("PUT" | "POST")) => {}
        _ => return Err(refuse("method must be PUT or POST (sinks only)")),
    }
    let url = normalise_host(url, &host, policy).map_err(|e| refuse(&e.to_string()))?;
    Ok(DataUrl(url))
}

/// A file name directly in a job's input or output directory.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Refuses `resolved` (the addresses a name resolved to) if any is blocked:
/// a name with one internal address among public ones is refused whole.
pub fn check_resolved(host: &str, resolved: &[SocketAddr], policy: &PolicySettings) -> Result<(), PolicyError> {
    if resolved.is_empty() {
        return Err(PolicyError::Unresolved(host.to_owned()));
    }
    for addr in resolved {
        if let Some(kind) = net::blocked_kind(addr.ip(), &policy.allowed_ranges) {
            return Err(PolicyError::Internal { host: host.to_owned(), kind, ip: addr.ip() });
        }
    }
    Ok(())
}

/// Resolves `host:port` (blocking) and returns the addresses, all checked.
pub fn resolve_checked(host: &str, port: u16, policy: &PolicySettings) -> Result<Vec<SocketAddr>, PolicyError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let resolved: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(bare, port))
            .map_err(|_| PolicyError::Unresolved(host.to_owned()))?
            .collect(),
    };
    check_resolved(host, &resolved, policy)?;
    Ok(resolved)
}

/// Parsed unless git or a shell would read it as something else.
fn parse_url(raw: &str) -> Option<url::Url> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    if raw.starts_with('-') || raw.contains("::") && !raw.contains("://[") {
        return None;
    }
    url::Url::parse(raw).ok()
}

fn host_listed(host: &str, allowed: &[String]) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
}

/// Refuses an internal literal or well-known name, and spells a literal the one
/// canonical way (a `git://` host is opaque to the URL parser: `2130706433` stays
/// as written unless turned into `127.0.0.1` here).
fn normalise_host(mut url: url::Url, host: &str, policy: &PolicySettings) -> Result<url::Url, PolicyError> {
    let literal = net::literal_address(host);
    if let Some(ip) = literal.or_else(|| net::well_known_address(host)) {
        if let Some(kind) = net::blocked_kind(ip, &policy.allowed_ranges) {
            return Err(PolicyError::Internal { host: host.to_owned(), kind, ip });
        }
    }
    if let Some(ip) = literal {
        let canonical = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        if canonical != host {
            url.set_host(Some(&canonical)).map_err(|_| PolicyError::Repo("bad host".into()))?;
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests;

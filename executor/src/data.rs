//! Data links: sources downloaded into the job's input directory before it runs,
//! and outputs uploaded from its output directory after it succeeded. The executor
//! does the transfers, so the container needs no network. Every transfer is capped
//! in size and time, redirects are not followed, and only regular files directly
//! in the output directory are uploaded (a symlink the function planted is refused).
//! Names are resolved by [`PolicyResolver`], so every address connected to passed
//! the policy: a name that resolves (or re-resolves) to an internal address fails.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gitfaas_common::policy::{self, PolicySettings};
use gitfaas_common::schema::DataLink;
use tokio::io::AsyncWriteExt;

use crate::settings::DataLimits;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data link `{name}` is refused: {why}")]
    BadLink { name: String, why: String },
    #[error("source `{name}` could not be downloaded: {why}")]
    Download { name: String, why: String },
    #[error("sources exceed the {0} byte limit")]
    InputTooLarge(u64),
    #[error("output `{name}` could not be uploaded: {why}")]
    Upload { name: String, why: String },
    #[error("outputs exceed the {0} byte limit")]
    OutputTooLarge(u64),
    #[error("data directory error: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks names, methods and URLs of all links before anything is transferred.
pub fn check_links(
    links: &[DataLink],
    sink: bool,
    limits: &DataLimits,
    policy: &PolicySettings,
) -> Result<(), DataError> {
    if links.len() > limits.max_links {
        let name = "*".to_owned();
        return Err(DataError::BadLink { name, why: format!("more than {} links", limits.max_links) });
    }
    for link in links {
        policy::check_link(&link.name, &link.url, link.method.as_deref(), sink, policy).map_err(|e| match e {
            policy::PolicyError::Link { name, why } => DataError::BadLink { name, why },
            other => DataError::BadLink { name: link.name.clone(), why: other.to_string() },
        })?;
    }
    Ok(())
}

/// Resolves names for the HTTP client and refuses internal addresses, so the
/// check holds at connect time (IP literals never reach a resolver: the policy
/// refused internal ones when the link was checked).
struct PolicyResolver(Arc<PolicySettings>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            policy::check_resolved(&host, &resolved, &policy)?;
            Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn client(limits: &DataLimits, policy: &PolicySettings) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(PolicyResolver(Arc::new(policy.clone())))
        .timeout(Duration::from_secs(limits.transfer_timeout_secs))
        .build()
        .expect("http client builds")
}

/// Why a transfer failed, with the policy's refusal spelled out when that was it.
fn why(error: reqwest::Error) -> String {
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<policy::PolicyError>() {
            return refused.to_string();
        }
        source = cause.source();
    }
    error.without_url().to_string()
}

/// Downloads every source into `dir`, streaming, within the total size cap.
pub async fn download(
    sources: &[DataLink],
    dir: &Path,
    limits: &DataLimits,
    policy: &PolicySettings,
) -> Result<(), DataError> {
    let client = client(limits, policy);
    let mut total = 0u64;
    for link in sources {
        let fail = |why: String| DataError::Download { name: link.name.clone(), why };
        let mut response = client.get(&link.url).send().await.map_err(|e| fail(why(e)))?;
        if !response.status().is_success() {
            return Err(fail(format!("http status {}", response.status())));
        }
        let mut file = tokio::fs::File::create(dir.join(&link.name)).await?;
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(why(e)))? {
            total += chunk.len() as u64;
            if total > limits.max_source_bytes {
                return Err(DataError::InputTooLarge(limits.max_source_bytes));
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
    }
    Ok(())
}

/// Uploads each sink's file from `dir`; the function must have written all of them.
pub async fn upload(
    sinks: &[DataLink],
    dir: &Path,
    limits: &DataLimits,
    policy: &PolicySettings,
) -> Result<(), DataError> {
    let mut total = 0u64;
    let mut files = Vec::new();
    for link in sinks {
        let fail = |why: &str| DataError::Upload { name: link.name.clone(), why: why.to_owned() };
        let path = dir.join(&link.name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_file() => meta,
            Ok(_) => return Err(fail("not a regular file")),
            Err(_) => return Err(fail("the function did not write it")),
        };
        total += meta.len();
        if total > limits.max_output_bytes {
            return Err(DataError::OutputTooLarge(limits.max_output_bytes));
        }
        files.push((link, path));
    }
    let client = client(limits, policy);
    for (link, path) in files {
        let fail = |why: String| DataError::Upload { name: link.name.clone(), why };
        let body = read_regular(&path, limits.max_output_bytes).map_err(|e| fail(e.to_string()))?;
        let request = match link.method.as_deref() {
            Some("POST") => client.post(&link.url),
            _ => client.put(&link.url),
        };
        let response = request.body(body).send().await.map_err(|e| fail(why(e)))?;
        if !response.status().is_success() {
            return Err(fail(format!("http status {}", response.status())));
        }
    }
    Ok(())
}

/// Reads a file without following a symlink swapped in after the check.
pub(crate) fn read_regular(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const O_NOFOLLOW: i32 = 0o400000;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(O_NOFOLLOW).open(path)?;
    let mut body = Vec::new();
    file.take(cap + 1).read_to_end(&mut body)?;
    if body.len() as u64 > cap {
        return Err(std::io::Error::other("file grew past the output limit"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, url: &str, method: Option<&str>) -> DataLink {
        DataLink { name: name.into(), url: url.into(), method: method.map(str::to_owned) }
    }

    #[test]
    fn links_are_checked_by_the_shared_policy_and_counted() {
        let limits = DataLimits { max_links: 1, ..DataLimits::default() };
        let policy = PolicySettings::default();
        assert!(check_links(&[link("in.csv", "http://data.example/x", None)], false, &limits, &policy).is_ok());
        let two = [link("a", "http://data.example/a", None), link("b", "http://data.example/b", None)];
        assert!(check_links(&two, false, &limits, &policy).is_err());
        for l in [link("../etc", "http://h.example/x", None), link("x", "http://127.0.0.1:6390/x", None)] {
            assert!(check_links(std::slice::from_ref(&l), false, &limits, &policy).is_err(), "{l:?}");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_connect_time() {
        // a real server on loopback that would answer, so only the policy can refuse
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let sources = [link("in.txt", &format!("http://localhost:{port}/x"), None)];
        let blocking = PolicySettings::default();
        let err = download(&sources, dir.path(), &DataLimits::default(), &blocking).await.unwrap_err();
        assert!(err.to_string().contains("loopback address"), "{err}");
        assert!(!dir.path().join("in.txt").exists());
    }
}

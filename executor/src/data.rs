//! Data links: sources downloaded into the job's input directory before it runs,
//! and outputs uploaded from its output directory after it succeeded. The executor
//! does the transfers, so the container needs no network. Every transfer is capped
//! in size and time, redirects are not followed, and only regular files directly
//! in the output directory are uploaded (a symlink the function planted is refused).

use std::path::Path;
use std::time::Duration;

use gitfaas_common::schema::DataLink;
use tokio::io::AsyncWriteExt;

use crate::policy::host_allowed;
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
pub fn check_links(links: &[DataLink], sink: bool, limits: &DataLimits) -> Result<(), DataError> {
    let refuse = |link: &DataLink, why: &str| Err(DataError::BadLink { name: link.name.clone(), why: why.to_owned() });
    if links.len() > limits.max_links {
        let name = "*".to_owned();
        return Err(DataError::BadLink { name, why: format!("more than {} links", limits.max_links) });
    }
    for link in links {
        let plain = !link.name.is_empty()
            && link.name.len() <= 255
            && !link.name.starts_with('.')
            && link.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !plain {
            return refuse(link, "name must be a plain file name");
        }
        let Ok(url) = url::Url::parse(&link.url) else { return refuse(link, "not a URL") };
        if !["http", "https"].contains(&url.scheme()) || !url.username().is_empty() || url.password().is_some() {
            return refuse(link, "only http(s) URLs without embedded credentials");
        }
        if !host_allowed(url.host_str().unwrap_or_default(), &limits.allowed_hosts) {
            return refuse(link, "host is not in the allowlist");
        }
        match (sink, link.method.as_deref()) {
            (false, None) | (true, None | Some("PUT" | "POST")) => {}
            _ => return refuse(link, "method must be PUT or POST (sinks only)"),
        }
    }
    Ok(())
}

fn client(limits: &DataLimits) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(limits.transfer_timeout_secs))
        .build()
        .expect("http client builds")
}

/// Downloads every source into `dir`, streaming, within the total size cap.
pub async fn download(sources: &[DataLink], dir: &Path, limits: &DataLimits) -> Result<(), DataError> {
    let client = client(limits);
    let mut total = 0u64;
    for link in sources {
        let fail = |why: String| DataError::Download { name: link.name.clone(), why };
        let mut response = client.get(&link.url).send().await.map_err(|e| fail(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("http status {}", response.status())));
        }
        let mut file = tokio::fs::File::create(dir.join(&link.name)).await?;
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.without_url().to_string()))? {
            total += chunk.len() as u64;
            if total > limits.max_input_bytes {
                return Err(DataError::InputTooLarge(limits.max_input_bytes));
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
    }
    Ok(())
}

/// Uploads each sink's file from `dir`; the function must have written all of them.
pub async fn upload(sinks: &[DataLink], dir: &Path, limits: &DataLimits) -> Result<(), DataError> {
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
    let client = client(limits);
    for (link, path) in files {
        let fail = |why: String| DataError::Upload { name: link.name.clone(), why };
        let body = read_regular(&path, limits.max_output_bytes).map_err(|e| fail(e.to_string()))?;
        let request = match link.method.as_deref() {
            Some("POST") => client.post(&link.url),
            _ => client.put(&link.url),
        };
        let response = request.body(body).send().await.map_err(|e| fail(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("http status {}", response.status())));
        }
    }
    Ok(())
}

/// Reads a file without following a symlink swapped in after the check.
fn read_regular(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
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
    fn links_with_paths_odd_schemes_or_methods_are_refused() {
        let limits = DataLimits::default();
        assert!(check_links(&[link("in.csv", "http://127.0.0.1:1/x", None)], false, &limits).is_ok());
        assert!(check_links(&[link("out.json", "https://h/x", Some("POST"))], true, &limits).is_ok());
        for (l, sink) in [
            (link("../etc", "http://h/x", None), false),
            (link("a/b", "http://h/x", None), false),
            (link("x", "file:///etc/passwd", None), false),
            (link("x", "http://u:p@h/x", None), false),
            (link("x", "http://h/x", Some("DELETE")), true),
            (link("x", "http://h/x", Some("PUT")), false),
        ] {
            assert!(check_links(std::slice::from_ref(&l), sink, &limits).is_err(), "{l:?}");
        }
    }
}

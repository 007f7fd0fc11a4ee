//! What a git server is asked before (and while) a mirror fetches: credentials,
//! answered with the job's token at most once, and the commit it advertises for a
//! ref, so that a mirror already holding it fetches nothing.

use git2::{Oid, RemoteCallbacks, Repository};

use super::Remote;

/// The answer to a server that asks a fetch or a ref advertisement for credentials:
/// the job's token, offered once as the basic-auth password. Anything else is
/// refused, and why is kept for the job's `Authentication` error.
pub(super) struct TokenAuth<'a> {
    token: Option<&'a str>,
    asked: bool,
    pub(super) refused: Option<&'static str>,
}

impl<'a> TokenAuth<'a> {
    pub(super) fn new(token: Option<&'a str>) -> Self {
        Self { token, asked: false, refused: None }
    }

    pub(super) fn answer(&mut self, allowed: git2::CredentialType) -> Result<git2::Cred, git2::Error> {
        match self.token {
            // asked twice means the token was refused: stop rather than loop
            Some(token) if !self.asked && allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) => {
                self.asked = true;
                git2::Cred::userpass_plaintext("x-access-token", token)
            }
            _ => {
                let why = match self.token {
                    None => "the server asks for credentials and the job has no `git_token`",
                    Some(_) if self.asked => "the server refused the job's `git_token`",
                    Some(_) => "the server asks for credentials other than a token as basic-auth password",
                };
                self.refused = Some(why);
                Err(git2::Error::from_str(why))
            }
        }
    }
}

/// What the server advertises for a ref, as far as the mirror is concerned.
pub(super) enum Advertised<T> {
    /// A commit the mirror already has: nothing to fetch.
    Known(Oid),
    /// A commit the mirror lacks: `fetch` ran on the advertisement's own connection
    /// (no second connection, no second advertisement), and this is what it gave.
    Fetched(T),
    /// Not known here, or the advertisement could not be read: the fetch decides
    /// (and reports any trouble).
    Unknown,
    /// The server wants credentials the job lacks, or refused its token.
    Refused(&'static str),
}

/// The commit the server advertises for `git_ref` (branch, tag, full ref name or
/// `HEAD`): one connection and the ref advertisement (`ls-remote`). When the
/// mirror lacks what it names, `fetch` runs on that same connection. The token,
/// if any, is presented at most once per connection.
pub(super) fn advertised<T>(
    repo: &Repository,
    remote: &Remote,
    git_ref: &str,
    token: Option<&str>,
    fetch: impl FnOnce(&mut git2::Remote<'_>) -> T,
) -> Advertised<T> {
    if git_ref.starts_with('-') || git_ref.is_empty() {
        return Advertised::Unknown;
    }
    // shared with the credentials callback, which the connection holds on to
    let auth = std::cell::RefCell::new(TokenAuth::new(token));
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(|_url, _user, allowed| auth.borrow_mut().answer(allowed));
    let mut proxy_options = git2::ProxyOptions::new();
    if let Some(proxy) = &remote.proxy {
        proxy_options.url(&proxy.url());
    }
    let Ok(mut anonymous) = repo.remote_anonymous(&remote.url) else { return Advertised::Unknown };
    let mut connection = match anonymous.connect_auth(git2::Direction::Fetch, Some(callbacks), Some(proxy_options)) {
        Ok(connection) => connection,
        Err(_) => return auth.borrow().refused.map_or(Advertised::Unknown, Advertised::Refused),
    };
    let heads: Vec<(String, Oid)> = match connection.list() {
        Ok(heads) => heads.iter().map(|h| (h.name().to_owned(), h.oid())).collect(),
        Err(_) => return Advertised::Unknown,
    };
    let names: Vec<String> = if git_ref == "HEAD" {
        vec!["HEAD".into()]
    } else if git_ref.starts_with("refs/") {
        vec![format!("{git_ref}^{{}}"), git_ref.to_owned()]
    } else {
        vec![format!("refs/heads/{git_ref}"), format!("refs/tags/{git_ref}^{{}}"), format!("refs/tags/{git_ref}")]
    };
    let oid = names.iter().find_map(|name| heads.iter().find(|(n, _)| n == name).map(|(_, oid)| *oid));
    match oid.and_then(|oid| repo.find_object(oid, None).ok()).and_then(|o| o.peel_to_commit().ok()) {
        Some(commit) => Advertised::Known(commit.id()),
        None => Advertised::Fetched(fetch(connection.remote())),
    }
}

//! A checkout's submodules. By default (`"submodules": "empty"`) each is the
//! empty directory `git clone` leaves, and the result says so in a note. With
//! `fetch`, each is checked out at the commit its gitlink pins, from the URL the
//! checkout's `.gitmodules` gives it (`../other.git` and `./sub.git` resolved
//! against the repository's own URL): through the same URL policy, mirror cache
//! and checkout limits as the repository — one budget for the repository and all
//! its submodules —, with the job's git token only when its scheme, host and port
//! are the repository's, and its own submodules the same way, at most `max_depth` levels
//! down. A pinned commit comes with the branches and tags fetched into the mirror, or,
//! when none of them reaches it, by its id ([`GitCache::checkout_pinned`]). All of it is
//! blocking work, like the checkout.

use std::collections::HashMap;
use std::path::Path;

use gitfaas_common::policy::{PolicySettings, RepoUrl};

use crate::git::{GitCache, GitError};
use crate::tree::{CheckedTree, CheckoutLimits};

/// The largest `.gitmodules` read.
const MAX_GITMODULES_BYTES: u64 = 64 << 10;

/// The notes of a checkout whose submodules were left empty.
pub fn notes_of_empty(checked: &CheckedTree) -> Vec<String> {
    let note = |(path, commit): &(String, git2::Oid)| {
        format!("submodule `{path}` (commit {commit}) is an empty directory; \"submodules\": \"fetch\" checks it out")
    };
    checked.gitlinks.iter().map(note).collect()
}

/// What fetching a checkout's submodules needs.
pub struct Fetch<'a> {
    pub git: &'a GitCache,
    pub policy: &'a PolicySettings,
    /// The repository the job names: the only origin (scheme, host, port) given the token.
    pub repo: &'a RepoUrl,
    pub token: Option<&'a str>,
    pub max_depth: u32,
}

impl Fetch<'_> {
    /// Checks out the submodules of the checkout in `dir` (which `checked`
    /// describes), and theirs; a note for each.
    pub fn all(&self, dir: &Path, checked: &CheckedTree) -> Result<Vec<String>, GitError> {
        let mut budget = self.git.limits().less(checked);
        let mut notes = Vec::new();
        self.level(self.repo, dir, "", &checked.gitlinks, 1, &mut budget, &mut notes)?;
        Ok(notes)
    }

    #[allow(clippy::too_many_arguments)]
    fn level(
        &self,
        parent: &RepoUrl,
        dir: &Path,
        prefix: &str,
        gitlinks: &[(String, git2::Oid)],
        depth: u32,
        budget: &mut CheckoutLimits,
        notes: &mut Vec<String>,
    ) -> Result<(), GitError> {
        if gitlinks.is_empty() {
            return Ok(());
        }
        let first = format!("{prefix}{}", gitlinks[0].0);
        if depth > self.max_depth {
            let why = format!("submodules nest deeper than {} levels", self.max_depth);
            return Err(GitError::Submodule { path: first, why });
        }
        let urls = gitmodules(dir).map_err(|why| GitError::Submodule { path: first, why })?;
        for (path, commit) in gitlinks {
            let full = format!("{prefix}{path}");
            let in_it = |error| GitError::InSubmodule { path: full.clone(), error: Box::new(error) };
            let Some(raw) = urls.get(path) else {
                let why = "`.gitmodules` gives it no url".to_owned();
                return Err(GitError::Submodule { path: full, why });
            };
            let Some(resolved) = resolve_url(parent.as_str(), raw) else {
                let why = format!("its url `{raw}` cannot be resolved against `{parent}`");
                return Err(GitError::Submodule { path: full, why });
            };
            let url = RepoUrl::parse(&resolved, self.policy).map_err(|e| in_it(GitError::Refused(e)))?;
            let origin = |u: &RepoUrl| (u.scheme().to_owned(), u.host().to_owned(), u.port());
            let same_origin = origin(&url) == origin(self.repo);
            let token = self.token.filter(|_| same_origin);
            let dest = dir.join(path);
            let sha = commit.to_string();
            let checked = self.git.checkout_pinned(&url, self.policy, &sha, &dest, token, budget).map_err(in_it)?;
            *budget = budget.less(&checked);
            notes.push(format!("submodule `{full}` checked out at {sha} from {url}"));
            self.level(&url, &dest, &format!("{full}/"), &checked.gitlinks, depth + 1, budget, notes)?;
        }
        Ok(())
    }
}

/// Each submodule's url by its path, from the `.gitmodules` of the checkout in `dir`.
fn gitmodules(dir: &Path) -> Result<HashMap<String, String>, String> {
    let file = dir.join(".gitmodules");
    let meta = std::fs::symlink_metadata(&file).map_err(|_| "the checkout has no `.gitmodules`".to_owned())?;
    if !meta.is_file() || meta.len() > MAX_GITMODULES_BYTES {
        return Err(format!("`.gitmodules` must be a regular file of at most {MAX_GITMODULES_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(&file).map_err(|_| "`.gitmodules` is not UTF-8 text".to_owned())?;
    Ok(parse_gitmodules(&text))
}

/// `path → url` of each `[submodule "name"]` section that has both (git's config
/// syntax as `.gitmodules` uses it: no includes, no continuation lines).
fn parse_gitmodules(text: &str) -> HashMap<String, String> {
    let mut sections: Vec<(Option<String>, Option<String>)> = Vec::new();
    let mut in_submodule = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_submodule = line.strip_prefix("[submodule").is_some_and(|rest| rest.trim_start().starts_with('"'));
            if in_submodule {
                sections.push((None, None));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let Some(section) = sections.last_mut().filter(|_| in_submodule) else { continue };
        let value = value.split([';', '#']).next().unwrap_or_default().trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value).to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "path" => section.0 = Some(value.trim_end_matches('/').to_owned()),
            "url" => section.1 = Some(value),
            _ => {}
        }
    }
    sections.into_iter().filter_map(|(path, url)| Some((path?, url?))).collect()
}

/// `url` as git resolves a submodule's: one starting `./` or `../` relative to
/// the superproject's `base` (each `../` drops one path segment of it), any other
/// as it is. `None` when it climbs above the host.
fn resolve_url(base: &str, url: &str) -> Option<String> {
    if !url.starts_with("./") && !url.starts_with("../") {
        return Some(url.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    let mut segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let mut url = url;
    loop {
        if let Some(tail) = url.strip_prefix("./") {
            url = tail;
        } else if let Some(tail) = url.strip_prefix("../") {
            if segments.len() < 2 {
                return None; // above the host
            }
            url = tail;
            segments.pop();
        } else {
            break;
        }
    }
    Some(format!("{scheme}://{}/{url}", segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_against_the_repository_as_git_does() {
        let base = "git://127.0.0.1:9418/team/app";
        assert_eq!(resolve_url(base, "../lib.git").as_deref(), Some("git://127.0.0.1:9418/team/lib.git"));
        assert_eq!(resolve_url(base, "./vendor/x").as_deref(), Some("git://127.0.0.1:9418/team/app/vendor/x"));
        assert_eq!(resolve_url(base, "../../other/lib").as_deref(), Some("git://127.0.0.1:9418/other/lib"));
        assert_eq!(resolve_url(base, "../../../up"), None);
        assert_eq!(resolve_url(base, "https://example.org/x.git").as_deref(), Some("https://example.org/x.git"));
    }

    #[test]
    fn gitmodules_give_each_path_its_url() {
        let text = "[core]\n\turl = nope\n[submodule \"data\"]\n\tpath = data/\n\turl = ../data.git ; a comment\n\
                    [submodule \"tools\"]\n\tpath = \"lib/tools\"\n\tURL = https://example.org/tools.git\n\
                    [submodule \"half\"]\n\tpath = half\n";
        let urls = parse_gitmodules(text);
        assert_eq!(urls.len(), 2, "{urls:?}");
        assert_eq!(urls["data"], "../data.git");
        assert_eq!(urls["lib/tools"], "https://example.org/tools.git");
    }
}
